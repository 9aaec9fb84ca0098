// Elementwise transcendental functions over arrays. With AVX-512F they use glibc's libmvec 16-lane
// variants (_ZGVeN16v_expf / _ZGVeN16v_tanhf), with AVX2 the 8-lane ones (_ZGVdN8v_*), each
// within 4 ulp per glibc's manual; elsewhere scalar libm. NaN and infinities behave as in libm.
// The level is the process's kernel table (kernels/dispatch.h). Single-threaded: callers split
// rows across threads.
#pragma once

#include <cstdint>

namespace rwkv_embed::kernels {

void ExpInPlace(float* x, int64_t n);
void TanhInPlace(float* x, int64_t n);

}  // namespace rwkv_embed::kernels
