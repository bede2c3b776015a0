// a[i] = act(u[i]) over a contiguous row: the activation of a batch-norm layer, which is applied
// after the normalisation and so cannot ride in the GEMM's epilogue as it does for plain dense
// layers. The run-time switch is hoisted out of the loop (a switch per element kept the loop
// scalar: in the 784-300-100-10 batch-norm step, these loops and their backward twin were ~3.5M
// instructions per step, a quarter of a 1-thread step's extra time). ReLU, the common case, has
// an SSE2 path; sigmoid, tanh, elu and selu go to the AVX2 rows of act_avx2.h on that path (the
// same vector functions as the GEMM epilogue). Semantics are act_forward's: NaN propagates
// through ReLU, as in NumPy.
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
inline void act_row(const float* __restrict u, float* __restrict a, std::ptrdiff_t n,
                    float alpha) {
#ifdef FASTMLP_HAVE_AVX2_PATH
  if constexpr (has_avx2_act_alpha(kAct)) {
    if (active_isa() == Isa::avx2) { act_row_avx2(kAct, u, a, n, alpha); return; }
  }
#endif
  std::ptrdiff_t i = 0;
#if defined(__SSE2__)
  if constexpr (kAct == Act::relu) {
    const __m128 zero = _mm_setzero_ps();
    for (; i + 4 <= n; i += 4) {
      const __m128 v = _mm_loadu_ps(u + i);
      // keep v where v > 0 or v is NaN (unordered with itself), else 0
      const __m128 keep = _mm_or_ps(_mm_cmpgt_ps(v, zero), _mm_cmpunord_ps(v, v));
      _mm_storeu_ps(a + i, _mm_and_ps(keep, v));
    }
  }
#endif
  for (; i < n; ++i) a[i] = act_forward(u[i], kAct, alpha);
}

// The same with the activation chosen at run time.
inline void act_row_any(Act act, const float* u, float* a, std::ptrdiff_t n, float alpha) {
  switch (act) {
    case Act::identity: act_row<Act::identity>(u, a, n, alpha); break;
    case Act::relu: act_row<Act::relu>(u, a, n, alpha); break;
    case Act::leaky_relu: act_row<Act::leaky_relu>(u, a, n, alpha); break;
    case Act::elu: act_row<Act::elu>(u, a, n, alpha); break;
    case Act::selu: act_row<Act::selu>(u, a, n, alpha); break;
    case Act::sigmoid: act_row<Act::sigmoid>(u, a, n, alpha); break;
    case Act::tanh: act_row<Act::tanh>(u, a, n, alpha); break;
    case Act::gelu: act_row<Act::gelu>(u, a, n, alpha); break;
  }
}

}  // namespace fastmlp
