#include "test_util.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace rwkv_embed::testing {

std::filesystem::path SharedDir() {
  if (const char* env = std::getenv("RWKV_EMBED_SHARED"); env != nullptr && *env != '\0') {
    return env;
  }
  return RWKV_EMBED_SHARED_DEFAULT;
}

std::filesystem::path SharedFile(const std::string& relative) {
  std::filesystem::path p = SharedDir() / relative;
  return std::filesystem::exists(p) ? p : std::filesystem::path();
}

std::filesystem::path CliPath() { return RWKV_EMBED_CLI_PATH; }

std::filesystem::path TempDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = "rwkv_embed_test";
  if (info != nullptr) name += std::string("_") + info->test_suite_name() + "_" + info->name();
  std::replace(name.begin(), name.end(), '/', '_');
  auto dir = std::filesystem::temp_directory_path() / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::string CloseReport::Describe() const {
  std::ostringstream os;
  os << "max_abs_error=" << max_abs_error << " max_rel_error=" << max_rel_error
     << " violations=" << violations << " (worst at index " << worst_index << ")";
  return os.str();
}

CloseReport CompareClose(std::span<const float> got, std::span<const float> ref, double atol,
                         double rtol) {
  EXPECT_EQ(got.size(), ref.size());
  CloseReport r;
  double worst_excess = -1;
  for (size_t i = 0; i < std::min(got.size(), ref.size()); ++i) {
    const double a = got[i], b = ref[i];
    const double err = std::isfinite(a) ? std::abs(a - b) : INFINITY;
    r.max_abs_error = std::max(r.max_abs_error, err);
    r.max_rel_error = std::max(r.max_rel_error, err / std::max(std::abs(b), 1e-12));
    const double excess = err - (atol + rtol * std::abs(b));
    if (excess > 0) ++r.violations;
    if (excess > worst_excess) {
      worst_excess = excess;
      r.worst_index = i;
    }
  }
  return r;
}

}  // namespace rwkv_embed::testing
