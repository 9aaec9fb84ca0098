// Elementwise transcendental functions over arrays. On CPUs with AVX-512F they use glibc's
// libmvec 16-lane variants (_ZGVeN16v_expf / _ZGVeN16v_tanhf, within 4 ulp per glibc's manual),
// elsewhere scalar libm; NaN and infinities behave as in libm. Single-threaded: callers split
// rows across threads.
#pragma once

#include <cstdint>

namespace rwkv_embed::kernels {

void ExpInPlace(float* x, int64_t n);
void TanhInPlace(float* x, int64_t n);

}  // namespace rwkv_embed::kernels
