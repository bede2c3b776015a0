// AVX-512 micro-kernel for the AVX2 path's packed GEMM: two adjacent 6-row A panels x one
// 16-column B strip (12 x 16) in one call. Compiled with -mavx512f -mfma; used only where the
// CPU check in cpu.cpp finds AVX-512F (and the OS saves its registers).
//
// Why: on Zen 4, 512-bit FMAs run as two 256-bit halves, so AVX-512 adds no FLOPs per cycle, but
// one zmm row covers a whole 16-wide strip: per k the AVX2 6 x 16 kernel issues 2 B loads, 6
// broadcasts and 12 ymm FMAs (20 instructions for 12 ymm FMAs); this one issues 1 B load, 12
// broadcasts and 12 zmm FMAs (25 instructions for the work of 24 ymm FMAs). The B strip stays in
// L1 exactly as before (the loop order over strips and panels is unchanged).
//
// Same bits as two calls of microkernel_to_c_avx2: each element has one accumulator, summed
// over k in ascending order from zero by the same FMA, then C + acc, + bias and act(C) in the
// same order with the same rounding (max_ps and the compare/blend of leaky ReLU behave alike
// on NaN for ymm and zmm).
// GCC 12's _mm512_max_ps passes _mm512_undefined_ps() as the unused merge source, which
// -W(maybe-)uninitialized reports as a read of an uninitialised value: a false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include "gemm.h"

namespace fastmlp {
namespace {

constexpr int kRows = 2 * kMR;

template <Act kAct>
inline __m512 exact_act512(__m512 v, __m512 alpha) {
  if constexpr (kAct == Act::relu) {
    return _mm512_max_ps(_mm512_setzero_ps(), v);  // NaN in v comes out as v: propagates
  } else if constexpr (kAct == Act::leaky_relu) {
    const __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
    return _mm512_mask_blend_ps(pos, _mm512_mul_ps(v, alpha), v);
  } else {
    return v;
  }
}

template <Act kAct, bool kLastY>
void pair_to_c(std::ptrdiff_t kc, const float* Ap, const float* Bp, float* C, std::ptrdiff_t ldc,
               std::ptrdiff_t ldy, const TileEpilogue& e) {
  for (int r = 0; r < kRows; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc + kNR - 1), _MM_HINT_T0);
  }
  const float* A0 = Ap;             // rows 0-5: panel p
  const float* A1 = Ap + kMR * kc;  // rows 6-11: panel p + 1, next in the packed block
  __m512 c[kRows];
#pragma GCC unroll 12
  for (int r = 0; r < kRows; ++r) c[r] = _mm512_setzero_ps();
  for (std::ptrdiff_t k = 0; k < kc; ++k) {
    const __m512 b = _mm512_loadu_ps(Bp);
#pragma GCC unroll 6
    for (int r = 0; r < kMR; ++r) c[r] = _mm512_fmadd_ps(_mm512_set1_ps(A0[r]), b, c[r]);
#pragma GCC unroll 6
    for (int r = 0; r < kMR; ++r)
      c[kMR + r] = _mm512_fmadd_ps(_mm512_set1_ps(A1[r]), b, c[kMR + r]);
    A0 += kMR;
    A1 += kMR;
    Bp += kNR;
  }
  const bool add_c = !e.first;
  const float* bias = e.last ? e.bias : nullptr;
  const __m512 bv = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
  const __m512 alpha = _mm512_set1_ps(e.alpha);
#pragma GCC unroll 12
  for (int r = 0; r < kRows; ++r) {
    float* cr = C + r * ldc;
    __m512 v = c[r];
    if (add_c) v = _mm512_add_ps(_mm512_loadu_ps(cr), v);
    if (bias) v = _mm512_add_ps(v, bv);
    _mm512_storeu_ps(cr, v);
    if constexpr (kLastY) _mm512_storeu_ps(e.y + r * ldy, exact_act512<kAct>(v, alpha));
  }
}

}  // namespace

void microkernel_pair_to_c_avx512(std::ptrdiff_t kc, const float* Ap, const float* Bp, float* C,
                                  std::ptrdiff_t ldc, std::ptrdiff_t ldy, const TileEpilogue& e) {
  if (!(e.last && e.y)) { pair_to_c<Act::identity, false>(kc, Ap, Bp, C, ldc, ldy, e); return; }
  switch (e.act) {
    case Act::relu: pair_to_c<Act::relu, true>(kc, Ap, Bp, C, ldc, ldy, e); return;
    case Act::leaky_relu: pair_to_c<Act::leaky_relu, true>(kc, Ap, Bp, C, ldc, ldy, e); return;
    default: pair_to_c<Act::identity, true>(kc, Ap, Bp, C, ldc, ldy, e); return;  // identity only
  }
}

}  // namespace fastmlp
