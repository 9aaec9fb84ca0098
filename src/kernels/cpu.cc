#include "kernels/cpu.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

namespace rwkv_embed::kernels {
namespace {

// XCR0: which register states the OS saves (Intel SDM vol. 1, 13.3).
uint64_t ReadXcr0() {
  uint32_t eax = 0, edx = 0;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

bool Bit(unsigned reg, int bit) { return (reg & (1u << bit)) != 0; }

CpuFeatures Detect() {
  CpuFeatures f;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool fma = Bit(c, 12), osxsave = Bit(c, 27), avx = Bit(c, 28);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = ReadXcr0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;  // SSE(1) + AVX(2)
  // + opmask(5) + ZMM_Hi256(6) + Hi16_ZMM(7).
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  f.avx2 = os_ymm && fma && Bit(b, 5);
  const bool avx512f = Bit(b, 16), avx512dq = Bit(b, 17), avx512bw = Bit(b, 30);
  const bool avx512vl = Bit(b, 31);
  const bool amx_bf16 = Bit(d, 22), amx_tile = Bit(d, 24);
  f.avx512 = f.avx2 && os_zmm && avx512f && avx512dq && avx512bw && avx512vl;
  unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
  if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) f.avx512_bf16 = f.avx512 && Bit(a1, 5);
  // AMX tile data (XCR0 bits 17, 18) is off until the process asks Linux for it
  // (Documentation/arch/x86/xstate.rst): ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18.
  if (f.avx512_bf16 && amx_bf16 && amx_tile &&
      (xcr0 & (uint64_t{3} << 17)) == (uint64_t{3} << 17)) {
    f.amx_bf16 = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
  }
  return f;
}

}  // namespace

const CpuFeatures& DetectCpuFeatures() {
  static const CpuFeatures features = Detect();
  return features;
}

std::string DescribeCpuFeatures(const CpuFeatures& f) {
  std::string s;
  auto add = [&s](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(f.avx2, "avx2");
  add(f.avx512, "avx512");
  add(f.avx512_bf16, "avx512-bf16");
  add(f.amx_bf16, "amx-bf16");
  return s.empty() ? "none" : s;
}

std::string CpuIdentity() {
  unsigned regs[12] = {};
  std::string brand;
  unsigned max_ext = __get_cpuid_max(0x80000000u, nullptr);
  if (max_ext >= 0x80000004u) {
    for (unsigned leaf = 0; leaf < 3; ++leaf) {
      __get_cpuid(0x80000002u + leaf, &regs[4 * leaf], &regs[4 * leaf + 1], &regs[4 * leaf + 2],
                  &regs[4 * leaf + 3]);
    }
    char text[49] = {};
    std::memcpy(text, regs, 48);
    brand = text;
    const size_t first = brand.find_first_not_of(' ');
    const size_t last = brand.find_last_not_of(' ');
    brand = first == std::string::npos ? "" : brand.substr(first, last - first + 1);
  }
  if (brand.empty()) brand = "unknown x86-64";
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d)) {
    // Display family/model (Intel SDM vol. 2A, CPUID leaf 1, EAX).
    const unsigned base_family = (a >> 8) & 0xf, ext_family = (a >> 20) & 0xff;
    const unsigned base_model = (a >> 4) & 0xf, ext_model = (a >> 16) & 0xf;
    const unsigned family = base_family == 0xf ? base_family + ext_family : base_family;
    const unsigned model =
        base_family == 0x6 || base_family == 0xf ? (ext_model << 4) + base_model : base_model;
    brand += " (family " + std::to_string(family) + " model " + std::to_string(model) +
             " stepping " + std::to_string(a & 0xf) + ")";
  }
  return brand;
}

}  // namespace rwkv_embed::kernels
