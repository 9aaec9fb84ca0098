#include "mpi_test_util.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "kernels/gemm_autotune.h"
#include "model/rwkv_embedder.h"
#include "test_util.h"

namespace rwkv_embed::testing {

std::string MpirunCommand(const std::string& mpiexec, int ranks) {
  // Containers often forbid the cross-process memory reads of Open MPI's shared-memory copies.
  std::string s =
      ShellQuote(mpiexec) + " --oversubscribe --mca btl_vader_single_copy_mechanism none";
  if (::geteuid() == 0) s += " --allow-run-as-root";
  return s + " -np " + std::to_string(ranks);
}

std::string WithGemmCache(const std::filesystem::path& cache) {
  return "env RWKV_EMBED_CACHE_DIR=" + ShellQuote(cache.string()) + " ";
}

std::filesystem::path GemmCacheChoosing(kernels::GemmPath path,
                                        const std::vector<std::filesystem::path>& models,
                                        const std::filesystem::path& dir) {
  kernels::ResetGemmAutotune();
  for (const auto& model : models) {
    auto e = RwkvEmbedder::Load(model);
    const std::vector<std::string> probe = {"shapes"};
    (void)e->Embed(probe, EmbedRequest{});
  }
  auto entries = kernels::GemmTuneTable();
  kernels::ResetGemmAutotune();
  EXPECT_FALSE(entries.empty());
  for (auto& entry : entries) {
    entry.path = path;
    entry.gflops.clear();
  }
  std::filesystem::create_directories(dir);
  const auto id = kernels::CurrentGemmCacheIdentity();
  kernels::SaveGemmCache(kernels::GemmCacheFile(dir, id), id, entries);
  return dir;
}

std::vector<kernels::GemmPath> AvailableF32GemmPaths() {
  std::vector<kernels::GemmPath> paths;
  for (auto p : {kernels::GemmPath::kAvx512F32, kernels::GemmPath::kAvx2F32,
                 kernels::GemmPath::kOneDnnF32, kernels::GemmPath::kPortable}) {
    if (kernels::GemmPathAvailable(p)) paths.push_back(p);
  }
  return paths;
}

}  // namespace rwkv_embed::testing
