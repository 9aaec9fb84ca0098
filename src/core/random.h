// A random number generator whose draws are identical on every platform and standard library.
//
// std::mt19937_64's output sequence is fixed by the C++ standard ([rand.eng.mers], the 10000th
// output of a default-seeded engine is 9981545732273789042), but std::uniform_int_distribution and
// std::shuffle are implementation-defined, so a "seeded" subset or bootstrap built on them differs
// between libstdc++, libc++ and MSVC. PortableRng keeps the engine and replaces the distributions
// with fully specified algorithms: Lemire's unbiased bounded draw and a partial Fisher–Yates.
#pragma once

#include <cassert>
#include <cstdint>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

namespace rwkv_embed {

class PortableRng {
 public:
  explicit PortableRng(uint64_t seed) : engine_(seed) {}

  // The next raw 64-bit output of std::mt19937_64.
  uint64_t Next() { return engine_(); }

  // A uniform draw from [0, n), n > 0, without modulo bias.
  // D. Lemire, "Fast Random Integer Generation in an Interval", ACM TOMACS 29(1), 2019,
  // Algorithm 5: m = x * n (128-bit); accept the high word unless the low word < (2^64 - n) mod n.
  uint64_t Below(uint64_t n) {
    assert(n > 0);
    uint64_t high = 0;
    uint64_t low = MulWide(Next(), n, &high);
    if (low < n) {
      const uint64_t reject_below = (0 - n) % n;  // (2^64 - n) mod n
      while (low < reject_below) low = MulWide(Next(), n, &high);
    }
    return high;
  }

  // k distinct indices drawn uniformly from [0, n), in the order drawn (partial Fisher–Yates:
  // step i swaps position i with a uniform position in [i, n)). k <= n.
  std::vector<size_t> SampleWithoutReplacement(size_t n, size_t k) {
    assert(k <= n);
    std::vector<size_t> perm(n);
    std::iota(perm.begin(), perm.end(), size_t{0});
    for (size_t i = 0; i < k; ++i) {
      const size_t j = i + static_cast<size_t>(Below(n - i));
      std::swap(perm[i], perm[j]);
    }
    perm.resize(k);
    return perm;
  }

 private:
  // Full 64x64 -> 128-bit product from 32-bit halves (portable; no __int128).
  static uint64_t MulWide(uint64_t a, uint64_t b, uint64_t* high) {
    const uint64_t a_lo = a & 0xffffffffu, a_hi = a >> 32;
    const uint64_t b_lo = b & 0xffffffffu, b_hi = b >> 32;
    const uint64_t lo_lo = a_lo * b_lo;
    const uint64_t hi_lo = a_hi * b_lo;
    const uint64_t lo_hi = a_lo * b_hi;
    const uint64_t hi_hi = a_hi * b_hi;
    const uint64_t cross = (lo_lo >> 32) + (hi_lo & 0xffffffffu) + lo_hi;
    *high = hi_hi + (hi_lo >> 32) + (cross >> 32);
    return (cross << 32) | (lo_lo & 0xffffffffu);
  }

  std::mt19937_64 engine_;
};

}  // namespace rwkv_embed
