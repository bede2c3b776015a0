// d[i] = p[i] * act'(z[i]) over a contiguous row: the dz = dy * act'(z) product of the backward
// pass. ReLU (the common case) has an explicit SSE2 path: compilers turn the scalar form into a
// branch on the sign of z (mispredicted every other element, which made packing dz cost more
// than the GEMM that consumes it). Sigmoid, tanh, elu and selu go to the AVX2 rows of
// act_avx2.h on that path (vector exp forms, a few ulp from the scalar libm forms kept on the
// portable path). The product keeps NumPy's semantics: NaN * 0 = NaN.
#pragma once
#include <cstddef>

#include "act_avx2.h"
#include "activation.h"
#include "cpu.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace fastmlp {

template <Act kAct>
inline void dz_row(const float* __restrict p, const float* __restrict z, float* __restrict d,
                   std::ptrdiff_t n, float alpha) {
#ifdef FASTMLP_HAVE_AVX2_PATH
  if constexpr (has_avx2_dz_row(kAct)) {
    if (active_isa() == Isa::avx2) { dz_row_avx2(kAct, p, z, d, n, alpha); return; }
  }
#endif
  std::ptrdiff_t i = 0;
#if defined(__SSE2__)
  if constexpr (kAct == Act::relu) {
    const __m128 one = _mm_set1_ps(1.f), zero = _mm_setzero_ps();
    for (; i + 4 <= n; i += 4) {
      const __m128 g = _mm_and_ps(_mm_cmpgt_ps(_mm_loadu_ps(z + i), zero), one);
      _mm_storeu_ps(d + i, _mm_mul_ps(_mm_loadu_ps(p + i), g));
    }
  }
#endif
  for (; i < n; ++i) d[i] = p[i] * act_grad(z[i], kAct, alpha);
}

// The same with the activation chosen at run time.
inline void dz_row_any(Act act, const float* p, const float* z, float* d, std::ptrdiff_t n,
                       float alpha) {
  switch (act) {
    case Act::identity: dz_row<Act::identity>(p, z, d, n, alpha); break;
    case Act::relu: dz_row<Act::relu>(p, z, d, n, alpha); break;
    case Act::leaky_relu: dz_row<Act::leaky_relu>(p, z, d, n, alpha); break;
    case Act::elu: dz_row<Act::elu>(p, z, d, n, alpha); break;
    case Act::selu: dz_row<Act::selu>(p, z, d, n, alpha); break;
    case Act::sigmoid: dz_row<Act::sigmoid>(p, z, d, n, alpha); break;
    case Act::tanh: dz_row<Act::tanh>(p, z, d, n, alpha); break;
    case Act::gelu: dz_row<Act::gelu>(p, z, d, n, alpha); break;
  }
}

}  // namespace fastmlp
