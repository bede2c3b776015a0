// AVX2+FMA micro-kernel and tile epilogue. Compiled with -mavx2 -mfma; only called after the
// run-time CPU check in cpu.cpp.
//
// 6 x 16 tile = 12 ymm accumulators: Zen 3 and Haswell+ have 2 FMA ports with 4-5 cycles of
// latency, so at least 8-10 independent FMAs must be in flight; 12 accumulators + 2 B vectors +
// 1 broadcast A value fit in the 16 ymm registers without spills.
#include <immintrin.h>

#include <type_traits>

#include "act_avx2.h"
#include "epilogue_flags.h"
#include "gemm.h"
#include "vmath_avx2.h"

namespace fastmlp {

namespace {

// The 6 x 16 FMA loop shared by both entry points; `out` receives the 12 accumulators.
template <class Out>
inline void microkernel_loop(std::ptrdiff_t kc, const float* Ap, const float* Bp,
                             const float* c_next, std::ptrdiff_t ldc, Out out) {
  for (int r = 0; r < kMR; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(c_next + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c_next + r * ldc + kNR - 1), _MM_HINT_T0);
  }
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (std::ptrdiff_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(Bp);
    const __m256 b1 = _mm256_loadu_ps(Bp + 8);
    __m256 a;
    a = _mm256_broadcast_ss(Ap + 0); c00 = _mm256_fmadd_ps(a, b0, c00); c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(Ap + 1); c10 = _mm256_fmadd_ps(a, b0, c10); c11 = _mm256_fmadd_ps(a, b1, c11);
    a = _mm256_broadcast_ss(Ap + 2); c20 = _mm256_fmadd_ps(a, b0, c20); c21 = _mm256_fmadd_ps(a, b1, c21);
    a = _mm256_broadcast_ss(Ap + 3); c30 = _mm256_fmadd_ps(a, b0, c30); c31 = _mm256_fmadd_ps(a, b1, c31);
    a = _mm256_broadcast_ss(Ap + 4); c40 = _mm256_fmadd_ps(a, b0, c40); c41 = _mm256_fmadd_ps(a, b1, c41);
    a = _mm256_broadcast_ss(Ap + 5); c50 = _mm256_fmadd_ps(a, b0, c50); c51 = _mm256_fmadd_ps(a, b1, c51);
    Ap += kMR;
    Bp += kNR;
  }
  out(0, c00, c01); out(1, c10, c11); out(2, c20, c21);
  out(3, c30, c31); out(4, c40, c41); out(5, c50, c51);
}

}  // namespace

void microkernel_avx2(std::ptrdiff_t kc, const float* Ap, const float* Bp, float* acc,
                      const float* c_next, std::ptrdiff_t ldc) {
  microkernel_loop(kc, Ap, Bp, c_next, ldc, [acc](int r, __m256 v0, __m256 v1) {
    _mm256_store_ps(acc + r * kNR, v0);
    _mm256_store_ps(acc + r * kNR + 8, v1);
  });
}

void small_tile_avx2(std::ptrdiff_t kc, const float* A, std::ptrdiff_t ars, std::ptrdiff_t acs,
                     int rows, const float* B, std::ptrdiff_t ldb, int cols, float* acc) {
  // Masked loads: columns past `cols` read as 0 and are never touched in memory.
  alignas(32) static const int kLane[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  const __m256i n = _mm256_set1_epi32(cols);
  const __m256i m0 = _mm256_cmpgt_epi32(n, _mm256_load_si256(reinterpret_cast<const __m256i*>(kLane)));
  const __m256i m1 = _mm256_cmpgt_epi32(n, _mm256_load_si256(reinterpret_cast<const __m256i*>(kLane + 8)));
  const bool hi = cols > 8;
  int r = 0;
  // Two rows at a time share each B load; per element the FMA chain is the packed kernel's.
  for (; r + 1 < rows; r += 2) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    const float* a0 = A + r * ars;
    const float* a1 = a0 + ars;
    for (std::ptrdiff_t k = 0; k < kc; ++k) {
      const __m256 b0 = _mm256_maskload_ps(B + k * ldb, m0);
      const __m256 x0 = _mm256_broadcast_ss(a0 + k * acs);
      const __m256 x1 = _mm256_broadcast_ss(a1 + k * acs);
      c00 = _mm256_fmadd_ps(x0, b0, c00);
      c10 = _mm256_fmadd_ps(x1, b0, c10);
      if (hi) {
        const __m256 b1 = _mm256_maskload_ps(B + k * ldb + 8, m1);
        c01 = _mm256_fmadd_ps(x0, b1, c01);
        c11 = _mm256_fmadd_ps(x1, b1, c11);
      }
    }
    _mm256_store_ps(acc + r * kNR, c00);
    _mm256_store_ps(acc + r * kNR + 8, c01);
    _mm256_store_ps(acc + (r + 1) * kNR, c10);
    _mm256_store_ps(acc + (r + 1) * kNR + 8, c11);
  }
  for (; r < rows; ++r) {
    __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps();
    const float* a0 = A + r * ars;
    for (std::ptrdiff_t k = 0; k < kc; ++k) {
      const __m256 x0 = _mm256_broadcast_ss(a0 + k * acs);
      c0 = _mm256_fmadd_ps(x0, _mm256_maskload_ps(B + k * ldb, m0), c0);
      if (hi) c1 = _mm256_fmadd_ps(x0, _mm256_maskload_ps(B + k * ldb + 8, m1), c1);
    }
    _mm256_store_ps(acc + r * kNR, c0);
    _mm256_store_ps(acc + r * kNR + 8, c1);
  }
}

namespace {

// Activations with a vector form are applied in registers: relu and leaky_relu exactly, sigmoid,
// tanh, elu and selu with the exp-based functions of vmath_avx2.h (a few ulp; libm's tanhf /
// expf per element took ~80% of a tanh 1-50-10-1 training step). gelu goes through the scalar
// libm path on the L1-resident tile.
inline bool vector_act(Act a) {
  return a == Act::identity || a == Act::relu || a == Act::leaky_relu || has_avx2_act_alpha(a);
}

inline __m256 apply_vec(__m256 v, Act a, __m256 alpha) {
  // max_ps returns its second operand when either is NaN: NaN propagates, as in NumPy.
  if (a == Act::relu) return _mm256_max_ps(_mm256_setzero_ps(), v);
  if (a == Act::leaky_relu) {
    __m256 neg = _mm256_mul_ps(v, alpha);
    __m256 pos_mask = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ);
    return _mm256_blendv_ps(neg, v, pos_mask);
  }
  if (a == Act::tanh) return tanh256(v);
  if (a == Act::sigmoid) return sigmoid256(v);
  if (a == Act::elu) return elu256(v, alpha);
  if (a == Act::selu) return selu256(v);
  return v;
}

// act'(z) for act with has_avx2_dz_row(act). relu's is scalar act_grad's 0/1 (0 for NaN z).
inline __m256 grad_vec(__m256 z, Act a, __m256 alpha) {
  if (a == Act::relu)
    return _mm256_and_ps(_mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GT_OQ), _mm256_set1_ps(1.f));
  if (a == Act::tanh) return tanh_grad256(z);
  if (a == Act::sigmoid) return sigmoid_grad256(z);
  if (a == Act::elu) return elu_grad256(z, alpha);
  return selu_grad256(z);
}

// Lanes [0, r) set.
inline __m256i lanes_below(std::ptrdiff_t r) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(r)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Writes lanes [0, n) of v to p and nothing past them (n <= 0: nothing). Pieces of 4, 2 and 1:
// an element loop over a spilled vector compiled to a memcpy call per row, 27% of a 1-50-10-1
// training step, and vmaskmovps stores are microcoded on AMD Zen.
inline void store_lanes(float* p, __m256 v, int n) {
  if (n >= 8) { _mm256_storeu_ps(p, v); return; }
  __m128 h = _mm256_castps256_ps128(v);
  if (n >= 4) {
    _mm_storeu_ps(p, h);
    h = _mm256_extractf128_ps(v, 1);
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    _mm_storel_pi(reinterpret_cast<__m64*>(p), h);
    h = _mm_movehl_ps(h, h);
    p += 2;
    n -= 2;
  }
  if (n >= 1) _mm_store_ss(p, h);
}

// Lane masks for columns [0, cols) of a 16-wide tile: m[0] covers 0-7, m[1] covers 8-15.
struct ColMasks {
  __m256i m0, m1;
  explicit ColMasks(int cols)
      : m0(lanes_below(cols)), m1(lanes_below(cols - 8)) {}
};

}  // namespace

void tile_store_avx2(const float* acc, int rows, int cols, float* C, std::ptrdiff_t ldc,
                     std::ptrdiff_t ldy, const TileEpilogue& e) {
  if (e.last && e.y && !vector_act(e.act)) {
    tile_store_generic(acc, rows, cols, C, ldc, ldy, e);
    return;
  }
  // Partial tiles (the right edge, and the narrow layers of small MLPs) use masked loads and
  // lane-by-lane stores: memory past `cols` is neither read nor written. (Not vmaskmovps for
  // the stores: it is microcoded on AMD Zen and took half of a small network's GEMM time.)
  // Same adds as the generic store.
  const ColMasks mk(cols);
  const __m256i m0 = mk.m0, m1 = mk.m1;
  const bool full = cols == kNR;
  auto load = [&](const float* p, __m256i m) { return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m); };
  auto store = [&](float* p, int first_lane, __m256 v) { store_lanes(p, v, cols - first_lane); };
  const __m256 alpha = _mm256_set1_ps(e.alpha);
  __m256 bias0 = _mm256_setzero_ps(), bias1 = _mm256_setzero_ps();
  const bool add_bias = e.last && e.bias;
  if (add_bias) { bias0 = load(e.bias, m0); bias1 = load(e.bias + 8, m1); }
  for (int r = 0; r < rows; ++r) {
    float* c = C + r * ldc;
    __m256 v0 = _mm256_load_ps(acc + r * kNR), v1 = _mm256_load_ps(acc + r * kNR + 8);
    if (!e.first) { v0 = _mm256_add_ps(load(c, m0), v0); v1 = _mm256_add_ps(load(c + 8, m1), v1); }
    if (add_bias) { v0 = _mm256_add_ps(v0, bias0); v1 = _mm256_add_ps(v1, bias1); }
    store(c, 0, v0);
    store(c + 8, 8, v1);
    if (e.last && e.y) {
      float* y = e.y + r * ldy;
      store(y, 0, apply_vec(v0, e.act, alpha));
      store(y + 8, 8, apply_vec(v1, e.act, alpha));
    }
  }
}

namespace {

// y = act(v) for the activations the fused store takes: exact, a few instructions each.
template <Act kAct>
inline __m256 exact_act(__m256 v, __m256 alpha) {
  if constexpr (kAct == Act::identity) return v;
  else return apply_vec(v, kAct, alpha);
}

// The fused store per row, with the activation a template parameter so that the lambda stays
// small enough to inline into the kernel (a run-time act pulled in the tanh/sigmoid code, left
// the store an out-of-line call per row that spilled the accumulators: 12-20% slower).
template <Act kAct, bool kLastY>
void to_c(std::ptrdiff_t kc, const float* Ap, const float* Bp, float* C, std::ptrdiff_t ldc,
          std::ptrdiff_t ldy, const TileEpilogue& e) {
  const bool add_c = !e.first;
  const float* bias = e.last ? e.bias : nullptr;
  float* y = e.y;
  const float alpha = e.alpha;
  microkernel_loop(kc, Ap, Bp, C, ldc, [=](int r, __m256 v0, __m256 v1) {
    float* c = C + r * ldc;
    if (add_c) {
      v0 = _mm256_add_ps(_mm256_loadu_ps(c), v0);
      v1 = _mm256_add_ps(_mm256_loadu_ps(c + 8), v1);
    }
    if (bias) {
      v0 = _mm256_add_ps(v0, _mm256_loadu_ps(bias));
      v1 = _mm256_add_ps(v1, _mm256_loadu_ps(bias + 8));
    }
    _mm256_storeu_ps(c, v0);
    _mm256_storeu_ps(c + 8, v1);
    if constexpr (kLastY) {
      const __m256 al = _mm256_set1_ps(alpha);
      _mm256_storeu_ps(y + r * ldy, exact_act<kAct>(v0, al));
      _mm256_storeu_ps(y + r * ldy + 8, exact_act<kAct>(v1, al));
    }
  });
}

}  // namespace

void microkernel_to_c_avx2(std::ptrdiff_t kc, const float* Ap, const float* Bp, float* C,
                           std::ptrdiff_t ldc, std::ptrdiff_t ldy, const TileEpilogue& e) {
  // tile_store_avx2's arithmetic for a full tile: C + acc in that operand order, then + bias,
  // then y = act(C) on the last block.
  if (!(e.last && e.y)) { to_c<Act::identity, false>(kc, Ap, Bp, C, ldc, ldy, e); return; }
  switch (e.act) {
    case Act::relu: to_c<Act::relu, true>(kc, Ap, Bp, C, ldc, ldy, e); return;
    case Act::leaky_relu: to_c<Act::leaky_relu, true>(kc, Ap, Bp, C, ldc, ldy, e); return;
    default: to_c<Act::identity, true>(kc, Ap, Bp, C, ldc, ldy, e); return;  // identity only
  }
}

namespace {

// small_tile_avx2 with tile_store_avx2's arithmetic applied to the sums in registers. Four rows
// at a time share each B load (8 accumulators, 2 B vectors and 4 broadcasts: 14 of the 16
// ymm registers when kHi); per element the FMA chain is small_tile's, then C + acc, + bias and
// y = act(C) as in the tile store, so the bits are the same.
template <Act kAct, bool kHi>
void small_to_c(std::ptrdiff_t kc, const float* A, std::ptrdiff_t ars, std::ptrdiff_t acs,
                int rows, const float* B, std::ptrdiff_t ldb, int cols, float* C,
                std::ptrdiff_t ldc, std::ptrdiff_t ldy, const TileEpilogue& e) {
  const ColMasks mk(cols);
  const bool add_c = !e.first;
  const bool add_bias = e.last && e.bias;
  float* const y = e.last ? e.y : nullptr;
  const __m256 alpha = _mm256_set1_ps(e.alpha);
  __m256 bias0 = _mm256_setzero_ps(), bias1 = _mm256_setzero_ps();
  if (add_bias) {
    bias0 = _mm256_maskload_ps(e.bias, mk.m0);
    if (kHi) bias1 = _mm256_maskload_ps(e.bias + 8, mk.m1);
  }
  // The epilogue's choices as template flags (epilogue_flags.h), picked once per group. With
  // y == C (the activation in place) only act(C) is stored.
  const int flags = epilogue_flags(e.mask != nullptr, y != nullptr, y == C, add_c, add_bias);
  auto out = [&](auto f, int r, __m256 v0, __m256 v1) {
    constexpr int F = decltype(f)::value;
    float* c = C + r * ldc;
    if constexpr ((F & kFlagAddC) != 0) {
      v0 = _mm256_add_ps(_mm256_maskload_ps(c, mk.m0), v0);
      if (kHi) v1 = _mm256_add_ps(_mm256_maskload_ps(c + 8, mk.m1), v1);
    }
    if constexpr ((F & kFlagBias) != 0) {
      v0 = _mm256_add_ps(v0, bias0);
      if (kHi) v1 = _mm256_add_ps(v1, bias1);
    }
    if constexpr ((F & kFlagMask) != 0) {  // dz_row's relu product: v * relu'(mask)
      const float* mr = e.mask + r * ldc;
      const __m256 m0 = kHi ? _mm256_loadu_ps(mr) : _mm256_maskload_ps(mr, mk.m0);
      v0 = _mm256_mul_ps(v0, grad_vec(m0, Act::relu, alpha));
      if (kHi)
        v1 = _mm256_mul_ps(v1, grad_vec(_mm256_maskload_ps(mr + 8, mk.m1), Act::relu, alpha));
    }
    if constexpr ((F & kFlagInPlace) != 0) {
      v0 = exact_act<kAct>(v0, alpha);
      if (kHi) v1 = exact_act<kAct>(v1, alpha);
    }
    // With kHi the first 8 columns are all inside the tile: a plain store.
    if (kHi) _mm256_storeu_ps(c, v0);
    else store_lanes(c, v0, cols);
    if (kHi) store_lanes(c + 8, v1, cols - 8);
    if constexpr ((F & kFlagY) != 0) {
      if (kHi) _mm256_storeu_ps(y + r * ldy, exact_act<kAct>(v0, alpha));
      else store_lanes(y + r * ldy, exact_act<kAct>(v0, alpha), cols);
      if (kHi) store_lanes(y + r * ldy + 8, exact_act<kAct>(v1, alpha), cols - 8);
    }
  };
  // Row groups: 6 rows x 2 vectors (12 accumulators, as the packed micro-kernel) or 8 rows x 1
  // vector; each k loads B once per group and broadcasts one A value per row. The rows left
  // over go in groups of 4, 2 and 1 (one row at a time paid a B load per FMA pair).
  auto group = [&](auto g, int r) {
    constexpr int G = decltype(g)::value;
    __m256 c0[G], c1[G];
#pragma GCC unroll 8
    for (int i = 0; i < G; ++i) c0[i] = c1[i] = _mm256_setzero_ps();
    const float* a = A + r * ars;
    const float* b = B;
#pragma GCC unroll 2
    for (std::ptrdiff_t k = 0; k < kc; ++k, a += acs, b += ldb) {
      const __m256 b0 = kHi ? _mm256_loadu_ps(b) : _mm256_maskload_ps(b, mk.m0);
      const __m256 b1 = kHi ? _mm256_maskload_ps(b + 8, mk.m1) : b0;
#pragma GCC unroll 8
      for (int i = 0; i < G; ++i) {
        const __m256 x = _mm256_broadcast_ss(a + i * ars);
        c0[i] = _mm256_fmadd_ps(x, b0, c0[i]);
        if (kHi) c1[i] = _mm256_fmadd_ps(x, b1, c1[i]);
      }
    }
    const auto store = [&](auto f) {
#pragma GCC unroll 8
      for (int i = 0; i < G; ++i) out(f, r + i, c0[i], c1[i]);
    };
    with_epilogue_flags(flags, store);
  };
  constexpr int kG = kHi ? 6 : 8;
  int r = 0;
  for (; r + kG <= rows; r += kG) group(std::integral_constant<int, kG>{}, r);
  if (r + 4 <= rows) { group(std::integral_constant<int, 4>{}, r); r += 4; }
  if (r + 2 <= rows) { group(std::integral_constant<int, 2>{}, r); r += 2; }
  if (r < rows) group(std::integral_constant<int, 1>{}, r);
}

template <Act kAct>
void small_to_c_cols(std::ptrdiff_t kc, const float* A, std::ptrdiff_t ars, std::ptrdiff_t acs,
                     int rows, const float* B, std::ptrdiff_t ldb, int cols, float* C,
                     std::ptrdiff_t ldc, std::ptrdiff_t ldy, const TileEpilogue& e) {
  if (cols > 8) small_to_c<kAct, true>(kc, A, ars, acs, rows, B, ldb, cols, C, ldc, ldy, e);
  else small_to_c<kAct, false>(kc, A, ars, acs, rows, B, ldb, cols, C, ldc, ldy, e);
}

}  // namespace

void small_tile_to_c_avx2(std::ptrdiff_t kc, const float* A, std::ptrdiff_t ars,
                          std::ptrdiff_t acs, int rows, const float* B, std::ptrdiff_t ldb,
                          int cols, float* C, std::ptrdiff_t ldc, std::ptrdiff_t ldy,
                          const TileEpilogue& e) {
  const auto f = [&](auto kernel) { kernel(kc, A, ars, acs, rows, B, ldb, cols, C, ldc, ldy, e); };
  if (!(e.last && e.y)) { f(small_to_c_cols<Act::identity>); return; }
  switch (e.act) {
    case Act::identity: f(small_to_c_cols<Act::identity>); return;
    case Act::relu: f(small_to_c_cols<Act::relu>); return;
    case Act::leaky_relu: f(small_to_c_cols<Act::leaky_relu>); return;
    case Act::sigmoid: f(small_to_c_cols<Act::sigmoid>); return;
    case Act::tanh: f(small_to_c_cols<Act::tanh>); return;
    case Act::elu: f(small_to_c_cols<Act::elu>); return;
    case Act::selu: f(small_to_c_cols<Act::selu>); return;
    case Act::gelu: break;
  }
  // gelu has no vector form here: the sums go through memory to the scalar store.
  constexpr int kRows = 64;
  alignas(64) float acc[kRows * kNR];
  for (int r0 = 0; r0 < rows; r0 += kRows) {
    const int n = rows - r0 < kRows ? rows - r0 : kRows;
    small_tile_avx2(kc, A + r0 * ars, ars, acs, n, B, ldb, cols, acc);
    TileEpilogue te = e;
    te.y = e.y + r0 * ldy;
    tile_store_avx2(acc, n, cols, C + r0 * ldc, ldc, ldy, te);
    if (e.mask) relu_mask_tile(C + r0 * ldc, ldc, e.mask + r0 * ldc, n, cols);
  }
}

namespace {

// Sums of V column vectors (the last one partial when n < 8 V) over k from 0, one accumulator
// per vector: with k outside, the V add chains run side by side (an add's result is ready 3
// cycles later; one chain per column vector at a time kept the 1-50-10-1 step's dbias sums at a
// chain's latency, 5.5% of its time).
template <int V>
void col_sums_block(std::ptrdiff_t K, const float* B, std::ptrdiff_t ldb, std::ptrdiff_t n,
                    float* sum) {
  __m256i m[V];
  __m256 s[V];
#pragma GCC unroll 8
  for (int v = 0; v < V; ++v) {
    m[v] = lanes_below(n - 8 * v);
    s[v] = _mm256_setzero_ps();
  }
  for (std::ptrdiff_t k = 0; k < K; ++k, B += ldb) {
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) s[v] = _mm256_add_ps(s[v], _mm256_maskload_ps(B + 8 * v, m[v]));
  }
#pragma GCC unroll 8
  for (int v = 0; v < V; ++v) store_lanes(sum + 8 * v, s[v], int(n - 8 * v));
}

}  // namespace

void col_sums_avx2(std::ptrdiff_t K, const float* B, std::ptrdiff_t ldb, std::ptrdiff_t N,
                   float* sum) {
  // Each column summed in k order from 0 (the packed path's colsum order), 64 columns a pass.
  for (std::ptrdiff_t j = 0; j < N; j += 64) {
    const std::ptrdiff_t n = N - j < 64 ? N - j : 64;
    switch ((n + 7) / 8) {
      case 1: col_sums_block<1>(K, B + j, ldb, n, sum + j); break;
      case 2: col_sums_block<2>(K, B + j, ldb, n, sum + j); break;
      case 3: col_sums_block<3>(K, B + j, ldb, n, sum + j); break;
      case 4: col_sums_block<4>(K, B + j, ldb, n, sum + j); break;
      case 5: col_sums_block<5>(K, B + j, ldb, n, sum + j); break;
      case 6: col_sums_block<6>(K, B + j, ldb, n, sum + j); break;
      case 7: col_sums_block<7>(K, B + j, ldb, n, sum + j); break;
      default: col_sums_block<8>(K, B + j, ldb, n, sum + j); break;
    }
  }
}

namespace {

// The row loops, one instantiation per activation so that the per-vector dispatch folds away.
template <Act kAct>
void act_row_loop(const float* u, float* a, std::ptrdiff_t n, __m256 alpha) {
  std::ptrdiff_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(a + i, apply_vec(_mm256_loadu_ps(u + i), kAct, alpha));
  if (i < n) {
    const __m256i m = lanes_below(n - i);
    store_lanes(a + i, apply_vec(_mm256_maskload_ps(u + i, m), kAct, alpha), int(n - i));
  }
}

template <Act kAct>
void dz_row_loop(const float* p, const float* z, float* d, std::ptrdiff_t n, __m256 alpha) {
  std::ptrdiff_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(d + i, _mm256_mul_ps(_mm256_loadu_ps(p + i),
                                          grad_vec(_mm256_loadu_ps(z + i), kAct, alpha)));
  if (i < n) {
    const __m256i m = lanes_below(n - i);
    const __m256 g = grad_vec(_mm256_maskload_ps(z + i, m), kAct, alpha);
    store_lanes(d + i, _mm256_mul_ps(_mm256_maskload_ps(p + i, m), g), int(n - i));
  }
}

}  // namespace

void act_row_avx2(Act act, const float* u, float* a, std::ptrdiff_t n, float alpha) {
  const __m256 al = _mm256_set1_ps(alpha);
  switch (act) {
    case Act::tanh: act_row_loop<Act::tanh>(u, a, n, al); break;
    case Act::elu: act_row_loop<Act::elu>(u, a, n, al); break;
    case Act::selu: act_row_loop<Act::selu>(u, a, n, al); break;
    default: act_row_loop<Act::sigmoid>(u, a, n, al); break;
  }
}

void dz_row_avx2(Act act, const float* p, const float* z, float* d, std::ptrdiff_t n,
                 float alpha) {
  const __m256 al = _mm256_set1_ps(alpha);
  switch (act) {
    case Act::tanh: dz_row_loop<Act::tanh>(p, z, d, n, al); break;
    case Act::elu: dz_row_loop<Act::elu>(p, z, d, n, al); break;
    case Act::selu: dz_row_loop<Act::selu>(p, z, d, n, al); break;
    case Act::relu: dz_row_loop<Act::relu>(p, z, d, n, al); break;
    default: dz_row_loop<Act::sigmoid>(p, z, d, n, al); break;
  }
}

}  // namespace fastmlp
