// AVX-512 kernels for the AVX2 path's GEMM: the packed path's micro-kernel over two adjacent
// 6-row A panels x one 16-column B strip (12 x 16) in one call, and the direct path's tile.
// Compiled with -mavx512f -mfma; used only where the CPU check in cpu.cpp finds AVX-512F (and
// the OS saves its registers).
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

#include <type_traits>

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

// The direct path's tile (small_to_c of gemm_avx2.cpp) with one zmm per row: a tile of up to
// 16 columns is one masked vector, where AVX2 needs two ymm for 9-16 columns and writes a partial
// row in pieces of 4, 2 and 1 (vmaskmovps stores are microcoded on Zen; AVX-512 masked stores
// are not). Per k a group of 12 rows issues 1 B load, 12 broadcasts and 12 FMAs, against 40
// instructions for the same rows in 6-row AVX2 groups. Per element the arithmetic is AVX2's: one
// accumulator summed over k ascending from zero by the same FMA, then C + acc, + bias, act.
template <Act kAct>
void small_to_c(std::ptrdiff_t kc, const float* A, std::ptrdiff_t ars, std::ptrdiff_t acs,
                int rows, const float* B, std::ptrdiff_t ldb, int cols, float* C,
                std::ptrdiff_t ldc, std::ptrdiff_t ldy, const TileEpilogue& e) {
  const __mmask16 m = static_cast<__mmask16>((1u << cols) - 1u);
  const bool add_c = !e.first;
  const bool add_bias = e.last && e.bias;
  float* const y = e.last ? e.y : nullptr;
  const __m512 alpha = _mm512_set1_ps(e.alpha);
  const __m512 bias = add_bias ? _mm512_maskz_loadu_ps(m, e.bias) : _mm512_setzero_ps();
  auto group = [&](auto g, int r) {
    constexpr int G = decltype(g)::value;
    __m512 c[G];
#pragma GCC unroll 12
    for (int i = 0; i < G; ++i) c[i] = _mm512_setzero_ps();
    const float* a = A + r * ars;
    const float* b = B;
#pragma GCC unroll 2
    for (std::ptrdiff_t k = 0; k < kc; ++k, a += acs, b += ldb) {
      const __m512 bv = _mm512_maskz_loadu_ps(m, b);
#pragma GCC unroll 12
      for (int i = 0; i < G; ++i) c[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i * ars]), bv, c[i]);
    }
#pragma GCC unroll 12
    for (int i = 0; i < G; ++i) {
      float* cr = C + (r + i) * ldc;
      __m512 v = c[i];
      if (add_c) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, cr), v);
      if (add_bias) v = _mm512_add_ps(v, bias);
      _mm512_mask_storeu_ps(cr, m, v);
      if (y) _mm512_mask_storeu_ps(y + (r + i) * ldy, m, exact_act512<kAct>(v, alpha));
    }
  };
  int r = 0;
  for (; r + 12 <= rows; r += 12) group(std::integral_constant<int, 12>{}, r);
  if (r + 8 <= rows) { group(std::integral_constant<int, 8>{}, r); r += 8; }
  if (r + 4 <= rows) { group(std::integral_constant<int, 4>{}, r); r += 4; }
  if (r + 2 <= rows) { group(std::integral_constant<int, 2>{}, r); r += 2; }
  if (r < rows) group(std::integral_constant<int, 1>{}, r);
}

}  // namespace

void small_tile_to_c_avx512(std::ptrdiff_t kc, const float* A, std::ptrdiff_t ars,
                            std::ptrdiff_t acs, int rows, const float* B, std::ptrdiff_t ldb,
                            int cols, float* C, std::ptrdiff_t ldc, std::ptrdiff_t ldy,
                            const TileEpilogue& e) {
  const auto f = [&](auto kernel) { kernel(kc, A, ars, acs, rows, B, ldb, cols, C, ldc, ldy, e); };
  if (!(e.last && e.y)) { f(small_to_c<Act::identity>); return; }
  switch (e.act) {
    case Act::identity: f(small_to_c<Act::identity>); return;
    case Act::relu: f(small_to_c<Act::relu>); return;
    case Act::leaky_relu: f(small_to_c<Act::leaky_relu>); return;
    default: f(small_tile_to_c_avx2); return;  // the AVX2 forms of the other activations
  }
}

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
