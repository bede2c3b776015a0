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

#include "epilogue_flags.h"
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

// f(std::integral_constant<int, n>{}) for a row count n of 1-12 (below 1 as 1): the kernels
// keep one accumulator per row in registers, so the count must be a compile-time constant.
template <class F>
[[gnu::always_inline]] inline void with_row_count(int n, F&& f) {
  switch (n) {
    case 12: f(std::integral_constant<int, 12>{}); break;
    case 11: f(std::integral_constant<int, 11>{}); break;
    case 10: f(std::integral_constant<int, 10>{}); break;
    case 9: f(std::integral_constant<int, 9>{}); break;
    case 8: f(std::integral_constant<int, 8>{}); break;
    case 7: f(std::integral_constant<int, 7>{}); break;
    case 6: f(std::integral_constant<int, 6>{}); break;
    case 5: f(std::integral_constant<int, 5>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    default: f(std::integral_constant<int, 1>{}); break;
  }
}

// relu'(z) = (z > 0) as 1.0 or 0.0 (0.0 for NaN), the factor of dz_row's product.
inline __m512 relu_grad512(__m512 z) {
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_GT_OQ),
                             _mm512_set1_ps(1.f));
}

// Lanes of a direct tile: one zmm, or for a tile of at most 8 columns one ymm, per row. Loads
// and stores go through masked zmm forms either way (AVX-512F has no masked ymm forms without
// AVX-512VL); the arithmetic is the same FMA, add and activation per element in both.
struct ZmmLanes {
  using V = __m512;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V load(__mmask16 m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, __mmask16 m, V v) { _mm512_mask_storeu_ps(p, m, v); }
  static V loadu(const float* p) { return _mm512_loadu_ps(p); }
  static void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  template <Act kAct>
  static V act(V v, __m512 alpha) { return exact_act512<kAct>(v, alpha); }
  static V relu_grad(V z) { return relu_grad512(z); }
};
// On Zen 4 a ymm FMA takes one of the two 256-bit FMA pipes and a zmm FMA takes both, so a tile
// of at most 8 columns (a 1-output layer's forward: 50 x 1 x 10; the last 2 columns of a
// 50-wide dX) runs twice the FMAs per cycle in ymm.
struct YmmLanes {
  using V = __m256;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V load(__mmask16 m, const float* p) {
    return _mm512_castps512_ps256(_mm512_maskz_loadu_ps(m, p));
  }
  static void store(float* p, __mmask16 m, V v) {
    _mm512_mask_storeu_ps(p, m, _mm512_castps256_ps512(v));  // m has no lane above 7
  }
  static V loadu(const float* p) { return _mm256_loadu_ps(p); }
  static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  template <Act kAct>
  static V act(V v, __m512 alpha) {
    return _mm512_castps512_ps256(exact_act512<kAct>(_mm512_castps256_ps512(v), alpha));
  }
  static V relu_grad(V z) {
    return _mm512_castps512_ps256(relu_grad512(_mm512_castps256_ps512(z)));
  }
};

// A group's rows from its accumulators to C (and y = act(C)), with the epilogue's choices as
// template flags (epilogue_flags.h): for K = 1 (50 x 50 x 1, a 1-input layer's forward) the
// per-row tests of add_c, bias and y, with their spilled pointers, cost more than the FMAs and
// stores. With y == C (the activation in place: the caller keeps no pre-activation)
// only act(C) is stored: a second store per row was a third of a 50 x 50 x 1 GEMM's time.
// The mask (TileEpilogue::mask, rows with C's ldc) multiplies the final sum by relu'(mask).
template <Act kAct, class L, int G, int F>
[[gnu::always_inline]] inline void store_rows(const typename L::V* c, float* C,
                                              std::ptrdiff_t ldc, float* y, std::ptrdiff_t ldy,
                                              const float* mask, __mmask16 m,
                                              typename L::V bias, __m512 alpha) {
#pragma GCC unroll 12
  for (int i = 0; i < G; ++i, C += ldc) {
    typename L::V v = c[i];
    if constexpr ((F & kFlagAddC) != 0) v = L::add(L::load(m, C), v);
    if constexpr ((F & kFlagBias) != 0) v = L::add(v, bias);
    if constexpr ((F & kFlagMask) != 0) {
      v = L::mul(v, L::relu_grad(L::load(m, mask)));
      mask += ldc;
    }
    if constexpr ((F & kFlagInPlace) != 0) {
      L::store(C, m, L::template act<kAct>(v, alpha));
    } else {
      L::store(C, m, v);
      if constexpr ((F & kFlagY) != 0) {
        L::store(y, m, L::template act<kAct>(v, alpha));
        y += ldy;
      }
    }
  }
}

// The direct path's tile (small_to_c of gemm_avx2.cpp) with one vector per row: a tile of up to
// 16 columns is one masked vector, where AVX2 needs two ymm for 9-16 columns and writes a partial
// row in pieces of 4, 2 and 1 (vmaskmovps stores are microcoded on Zen; AVX-512 masked stores
// are not). Per k a group of 12 rows issues 1 B load, 12 broadcasts and 12 FMAs, against 40
// instructions for the same rows in 6-row AVX2 groups. Per element the arithmetic is AVX2's: one
// accumulator summed over k ascending from zero by the same FMA, then C + acc, + bias, act.
template <Act kAct, class L>
void small_to_c(std::ptrdiff_t kc, const float* A, std::ptrdiff_t ars, std::ptrdiff_t acs,
                int rows, const float* B, std::ptrdiff_t ldb, int cols, float* C,
                std::ptrdiff_t ldc, std::ptrdiff_t ldy, const TileEpilogue& e) {
  using V = typename L::V;
  const __mmask16 m = static_cast<__mmask16>((1u << cols) - 1u);
  const bool add_c = !e.first;
  const bool add_bias = e.last && e.bias;
  float* const y = e.last ? e.y : nullptr;
  const __m512 alpha = _mm512_set1_ps(e.alpha);
  const V bias = add_bias ? L::load(m, e.bias) : L::zero();
  const int flags = epilogue_flags(e.mask != nullptr, y != nullptr, y == C, add_c, add_bias);
  auto group = [&](auto g, int r) {
    constexpr int G = decltype(g)::value;
    V c[G];
#pragma GCC unroll 12
    for (int i = 0; i < G; ++i) c[i] = L::zero();
    const float* a = A + r * ars;
    const float* b = B;
#pragma GCC unroll 2
    for (std::ptrdiff_t k = 0; k < kc; ++k, a += acs, b += ldb) {
      const V bv = L::load(m, b);
#pragma GCC unroll 12
      for (int i = 0; i < G; ++i) c[i] = L::fma(L::set1(a[i * ars]), bv, c[i]);
    }
    float* const cr = C + r * ldc;
    float* const yr = y ? y + r * ldy : nullptr;
    const float* const mr = e.mask ? e.mask + r * ldc : nullptr;
    const auto store = [&](auto f) {
      constexpr int F = decltype(f)::value;
      store_rows<kAct, L, G, F>(c, cr, ldc, yr, ldy, mr, m, bias, alpha);
    };
    with_epilogue_flags(flags, store);
  };
  // Rows in groups of as equal a size as 12 allows: a group's k loop runs one FMA chain per row
  // and an FMA's result is ready 4 cycles later, so a group of fewer than 4 rows waits on it.
  // 50 rows went 12+12+12+12+2 (the last group one FMA per 2 cycles) and now go 5 x 10.
  const int n_groups = (rows + 11) / 12;
  int r = 0;
  for (int gi = 0; gi < n_groups; ++gi) {
    const int g = (rows - r) / (n_groups - gi);  // the larger groups last
    with_row_count(g, [&](auto n) { group(n, r); });
    r += g;
  }
}

// small_to_c for a tile of up to kSmallWideCols (64) columns and few rows (gemm_direct sends it
// GEMMs of at most kSmallWideMaxRows rows): one row at a time with one zmm per 16 columns, so a
// 1-row GEMM runs up to 4 FMA chains at once where 16-column tiles ran one, 4 cycles per FMA
// (dW of a 1-input layer: 1 x 50 x 50). Per element the arithmetic is small_to_c's.
template <Act kAct, int T>
void wide_rows_to_c(std::ptrdiff_t kc, const float* A, std::ptrdiff_t ars, std::ptrdiff_t acs,
                    int rows, const float* B, std::ptrdiff_t ldb, int cols, float* C,
                    std::ptrdiff_t ldc, std::ptrdiff_t ldy, const TileEpilogue& e) {
  __mmask16 m[T];
#pragma GCC unroll 4
  for (int t = 0; t < T; ++t) {
    const int c = cols - 16 * t;
    m[t] = static_cast<__mmask16>(c >= 16 ? 0xFFFFu : (1u << c) - 1u);
  }
  const bool add_c = !e.first;
  const bool add_bias = e.last && e.bias;
  float* const y = e.last ? e.y : nullptr;
  const __m512 alpha = _mm512_set1_ps(e.alpha);
  for (int r = 0; r < rows; ++r) {
    __m512 c[T];
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) c[t] = _mm512_setzero_ps();
    const float* a = A + r * ars;
    const float* b = B;
    for (std::ptrdiff_t k = 0; k < kc; ++k, a += acs, b += ldb) {
      const __m512 x = _mm512_set1_ps(*a);
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t)
        c[t] = _mm512_fmadd_ps(x, _mm512_maskz_loadu_ps(m[t], b + 16 * t), c[t]);
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) {
      float* cr = C + r * ldc + 16 * t;
      __m512 v = c[t];
      if (add_c) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m[t], cr), v);
      if (add_bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m[t], e.bias + 16 * t));
      _mm512_mask_storeu_ps(cr, m[t], v);
      if (y) _mm512_mask_storeu_ps(y + r * ldy + 16 * t, m[t], exact_act512<kAct>(v, alpha));
    }
  }
}

// small_to_c for one column (N = 1) of an A whose rows are adjacent (ars = 1: A = x^T in dW),
// C and y vectors (ldc = ldy = 1): 16 rows per zmm, loaded from each k's row of the source,
// times B's k-th value. A 1-output layer's dW (10 x 50 x 1) ran as a group of 10 rows with one
// useful lane each. Per element the arithmetic is small_to_c's: a[i, k] * b[k] + acc by one FMA,
// k ascending from zero, then C + acc, + bias, act.
template <Act kAct>
void column_to_c(std::ptrdiff_t kc, const float* A, std::ptrdiff_t acs, int rows, const float* B,
                 std::ptrdiff_t ldb, float* C, const TileEpilogue& e) {
  const bool add_c = !e.first;
  const bool add_bias = e.last && e.bias;
  float* const y = e.last ? e.y : nullptr;
  const __m512 alpha = _mm512_set1_ps(e.alpha);
  const __m512 bias = add_bias ? _mm512_set1_ps(*e.bias) : _mm512_setzero_ps();
  for (int r = 0; r < rows; r += 16) {
    const int n = rows - r < 16 ? rows - r : 16;
    const __mmask16 m = static_cast<__mmask16>(n >= 16 ? 0xFFFFu : (1u << n) - 1u);
    __m512 c = _mm512_setzero_ps();
    const float* a = A + r;
    const float* b = B;
    for (std::ptrdiff_t k = 0; k < kc; ++k, a += acs, b += ldb)
      c = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a), _mm512_set1_ps(*b), c);
    if (add_c) c = _mm512_add_ps(_mm512_maskz_loadu_ps(m, C + r), c);
    if (add_bias) c = _mm512_add_ps(c, bias);
    _mm512_mask_storeu_ps(C + r, m, c);
    if (y) _mm512_mask_storeu_ps(y + r, m, exact_act512<kAct>(c, alpha));
  }
}

// small_to_c (in ymm for at most 8 columns), or wide_rows_to_c for a tile wider than 16 columns.
template <Act kAct>
void tile_to_c(std::ptrdiff_t kc, const float* A, std::ptrdiff_t ars, std::ptrdiff_t acs,
               int rows, const float* B, std::ptrdiff_t ldb, int cols, float* C,
               std::ptrdiff_t ldc, std::ptrdiff_t ldy, const TileEpilogue& e) {
  if (cols == 1 && ars == 1 && ldc == 1 && ldy == 1 && rows > 1) {
    column_to_c<kAct>(kc, A, acs, rows, B, ldb, C, e);
    if (e.mask) relu_mask_tile(C, ldc, e.mask, rows, cols);  // no fused form here
    return;
  }
  switch ((cols + 15) / 16) {
    case 1:
      if (cols <= 8) {
        small_to_c<kAct, YmmLanes>(kc, A, ars, acs, rows, B, ldb, cols, C, ldc, ldy, e);
      } else {
        small_to_c<kAct, ZmmLanes>(kc, A, ars, acs, rows, B, ldb, cols, C, ldc, ldy, e);
      }
      return;
    case 2: wide_rows_to_c<kAct, 2>(kc, A, ars, acs, rows, B, ldb, cols, C, ldc, ldy, e); break;
    case 3: wide_rows_to_c<kAct, 3>(kc, A, ars, acs, rows, B, ldb, cols, C, ldc, ldy, e); break;
    default: wide_rows_to_c<kAct, 4>(kc, A, ars, acs, rows, B, ldb, cols, C, ldc, ldy, e); break;
  }
  if (e.mask) relu_mask_tile(C, ldc, e.mask, rows, cols);  // no fused form in wide rows
}

}  // namespace

void small_tile_to_c_avx512(std::ptrdiff_t kc, const float* A, std::ptrdiff_t ars,
                            std::ptrdiff_t acs, int rows, const float* B, std::ptrdiff_t ldb,
                            int cols, float* C, std::ptrdiff_t ldc, std::ptrdiff_t ldy,
                            const TileEpilogue& e) {
  const auto f = [&](auto kernel) { kernel(kc, A, ars, acs, rows, B, ldb, cols, C, ldc, ldy, e); };
  if (!(e.last && e.y)) { f(tile_to_c<Act::identity>); return; }
  switch (e.act) {
    case Act::identity: f(tile_to_c<Act::identity>); return;
    case Act::relu: f(tile_to_c<Act::relu>); return;
    case Act::leaky_relu: f(tile_to_c<Act::leaky_relu>); return;
    default: break;
  }
  // The AVX2 forms of the other activations, 16 columns at a time.
  for (int j = 0; j < cols; j += 16) {
    TileEpilogue ej = e;
    if (ej.bias) ej.bias += j;
    if (ej.y) ej.y += j;
    if (ej.mask) ej.mask += j;
    small_tile_to_c_avx2(kc, A, ars, acs, rows, B + j, ldb, cols - j < 16 ? cols - j : 16, C + j,
                         ldc, ldy, ej);
  }
}

namespace {

// Every packed tile of the fused store, one vector per row: R rows, rows 0-5 from panel p and
// rows 6-11 from panel p + 1 (next in the packed block). kFull: two full panels x a full
// 16-column strip (the pair kernel), with plain loads and stores. Otherwise an edge tile: a
// partial strip (the right edge: N = 300 leaves 12 columns, N = 100 leaves 4), a lone panel or
// a partial one (M = 200 leaves 8 rows after 16 pairs), with C, bias and y through the column
// mask m; the packed strip is zero-padded to kNR columns, so B loads whole vectors. A strip of
// at most 8 columns runs in ymm (one FMA pipe each on Zen 4: twice the rows per cycle of zmm).
// The AVX2 kernels ran such tiles as 6 rows x 2 ymm per panel whatever their size: 1.12M FMA
// slots per mnist step where these need 0.97M. Same bits as the AVX2 kernels: one accumulator
// per element, summed over k ascending from zero by the same FMA, then C + acc, + bias, act.
template <Act kAct, bool kLastY, class L, int R, bool kFull>
void rows_to_c(std::ptrdiff_t kc, const float* Ap, const float* Bp, float* C, std::ptrdiff_t ldc,
               std::ptrdiff_t ldy, const TileEpilogue& e, __mmask16 m) {
  using V = typename L::V;
  static_assert(!kFull || R == kRows, "a full tile is two full panels");
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc), _MM_HINT_T0);
    if constexpr (kFull)
      _mm_prefetch(reinterpret_cast<const char*>(C + r * ldc + kNR - 1), _MM_HINT_T0);
  }
  const float* A0 = Ap;
  const float* A1 = Ap + kMR * kc;
  V c[R];
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) c[r] = L::zero();
  for (std::ptrdiff_t k = 0; k < kc; ++k) {
    const V b = L::loadu(Bp);
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r)
      c[r] = L::fma(L::set1(r < kMR ? A0[r] : A1[r - kMR]), b, c[r]);
    A0 += kMR;
    A1 += kMR;
    Bp += kNR;
  }
  const auto load = [m](const float* p) { return kFull ? L::loadu(p) : L::load(m, p); };
  const auto store = [m](float* p, V v) {
    if constexpr (kFull) L::storeu(p, v);
    else L::store(p, m, v);
  };
  const bool add_c = !e.first;
  const float* bias = e.last ? e.bias : nullptr;
  const V bv = bias ? load(bias) : L::zero();
  const __m512 alpha = _mm512_set1_ps(e.alpha);
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) {
    float* cr = C + r * ldc;
    V v = c[r];
    if (add_c) v = L::add(load(cr), v);
    if (bias) v = L::add(v, bv);
    store(cr, v);
    if constexpr (kLastY) store(e.y + r * ldy, L::template act<kAct>(v, alpha));
  }
}

template <Act kAct, bool kLastY>
void pair_to_c(std::ptrdiff_t kc, const float* Ap, const float* Bp, float* C, std::ptrdiff_t ldc,
               std::ptrdiff_t ldy, const TileEpilogue& e) {
  rows_to_c<kAct, kLastY, ZmmLanes, kRows, true>(kc, Ap, Bp, C, ldc, ldy, e, 0xFFFF);
}

template <Act kAct, bool kLastY, class L>
void edge_rows(std::ptrdiff_t kc, const float* Ap, const float* Bp, float* C, std::ptrdiff_t ldc,
               std::ptrdiff_t ldy, const TileEpilogue& e, int rows, __mmask16 m) {
  const auto f = [&](auto r) {
    rows_to_c<kAct, kLastY, L, decltype(r)::value, false>(kc, Ap, Bp, C, ldc, ldy, e, m);
  };
  with_row_count(rows, f);
}

template <Act kAct, bool kLastY>
void edge_lanes(std::ptrdiff_t kc, const float* Ap, const float* Bp, float* C, std::ptrdiff_t ldc,
                std::ptrdiff_t ldy, const TileEpilogue& e, int rows, int cols) {
  const __mmask16 m = static_cast<__mmask16>(cols >= kNR ? 0xFFFFu : (1u << cols) - 1u);
  if (cols <= 8) edge_rows<kAct, kLastY, YmmLanes>(kc, Ap, Bp, C, ldc, ldy, e, rows, m);
  else edge_rows<kAct, kLastY, ZmmLanes>(kc, Ap, Bp, C, ldc, ldy, e, rows, m);
}

}  // namespace

void microkernel_edge_to_c_avx512(std::ptrdiff_t kc, const float* Ap, const float* Bp, float* C,
                                  std::ptrdiff_t ldc, std::ptrdiff_t ldy, const TileEpilogue& e,
                                  int rows, int cols) {
  if (!(e.last && e.y)) {
    edge_lanes<Act::identity, false>(kc, Ap, Bp, C, ldc, ldy, e, rows, cols);
    return;
  }
  switch (e.act) {
    case Act::relu: edge_lanes<Act::relu, true>(kc, Ap, Bp, C, ldc, ldy, e, rows, cols); return;
    case Act::leaky_relu:
      edge_lanes<Act::leaky_relu, true>(kc, Ap, Bp, C, ldc, ldy, e, rows, cols);
      return;
    default:  // identity only: run_tiles sends no other activation with y
      edge_lanes<Act::identity, true>(kc, Ap, Bp, C, ldc, ldy, e, rows, cols);
      return;
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
