// AVX2+FMA loss kernels: an 8-wide exp and the softmax cross-entropy rows built on it.
// Compiled with -mavx2 -mfma; only called after the run-time CPU check in cpu.cpp.
//
// Nothing from the C++ standard library is used here beyond plain C functions (log): an inline
// library function instantiated in this file could be merged at link time with the portable
// file's copy and then run, VEX-encoded, on a CPU without AVX.
#include <immintrin.h>
#include <math.h>

#include "losses_impl.h"
#include "vmath_avx2.h"

namespace fastmlp {
namespace {

// Elements of a softmax row summed in float before the sum is widened to double.
constexpr std::ptrdiff_t kSumBlock = 256;

// Lanes [0, r) set: row tails go through maskload/maskstore, so every element of a row takes the
// same exp (a scalar tail would round differently from the body).
inline __m256i tail_mask(std::ptrdiff_t r) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(r)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// 4 doubles <- the 8 floats of v, added pairwise into two accumulators.
inline void add_to_double(__m256 v, __m256d& lo, __m256d& hi) {
  lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
  hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

inline double hsum(__m256d v) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

// Row max. NaN never wins (max_ps returns its second operand, the running max, when the loaded
// value is NaN), as in the portable path: a NaN logit shows up later as a NaN loss instead.
// 4 accumulators: vmaxps has 3 cycles of latency and 2 ports.
float row_max(std::ptrdiff_t C, const float* x) {
  const __m256 ninf = _mm256_set1_ps(-__builtin_inff());
  __m256 m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
  std::ptrdiff_t j = 0;
  for (; j + 32 <= C; j += 32) {
    m0 = _mm256_max_ps(_mm256_loadu_ps(x + j), m0);
    m1 = _mm256_max_ps(_mm256_loadu_ps(x + j + 8), m1);
    m2 = _mm256_max_ps(_mm256_loadu_ps(x + j + 16), m2);
    m3 = _mm256_max_ps(_mm256_loadu_ps(x + j + 24), m3);
  }
  for (; j + 8 <= C; j += 8) m0 = _mm256_max_ps(_mm256_loadu_ps(x + j), m0);
  m0 = _mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m0), _mm256_extractf128_ps(m0, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
  float r = _mm_cvtss_f32(h);
  for (; j < C; ++j) r = x[j] > r ? x[j] : r;
  return r;
}

}  // namespace

// x (n) -> y (n) = exp(x).
void exp_f32_avx2(std::ptrdiff_t n, const float* x, float* y) {
  std::ptrdiff_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp256(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i mask = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, mask, exp256(_mm256_maskload_ps(x + i, mask)));
  }
}

// Rows [b0, b1) of logits (B, C), labels (B) -> dlogits rows; returns the summed row losses.
// Each row: max, then e = exp(x - max) stored into dlogits while summing it: in float within
// blocks of kSumBlock elements, in double across blocks (the sum feeds every dlogit, and float
// lanes over long rows drift), then one scaling pass over the L1-resident row.
double softmax_xent_rows_avx2(std::ptrdiff_t b0, std::ptrdiff_t b1, std::ptrdiff_t C,
                              const float* logits, const std::int64_t* labels, float* dlogits,
                              float inv_B) {
  double loss = 0.0;
  for (std::ptrdiff_t b = b0; b < b1; ++b) {
    const float* x = logits + b * C;
    float* d = dlogits + b * C;
    const float m = row_max(C, x);
    const __m256 vm = _mm256_set1_ps(m);
    __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    std::ptrdiff_t j = 0;
    while (j + 16 <= C) {
      // Float sums over a block of kSumBlock elements (each term in (0, 1], at most 16 per
      // lane: 1e-6 relative at worst), folded into double once per block. Widening every
      // vector took 4 conversions and adds per 8 exps and pushed the exp constants out of the
      // 16 ymm registers (reloaded from the stack each vector): 120 us at (200, 784), one
      // thread, 2.9 cycles per element.
      const std::ptrdiff_t end = j + kSumBlock < C ? j + kSumBlock : C;
      __m256 f0 = _mm256_setzero_ps(), f1 = f0;
      for (; j + 16 <= end; j += 16) {
        const __m256 e0 = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm));
        const __m256 e1 = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), vm));
        _mm256_storeu_ps(d + j, e0);
        _mm256_storeu_ps(d + j + 8, e1);
        f0 = _mm256_add_ps(f0, e0);
        f1 = _mm256_add_ps(f1, e1);
      }
      add_to_double(f0, s0, s1);
      add_to_double(f1, s2, s3);
    }
    for (; j + 8 <= C; j += 8) {
      const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm));
      _mm256_storeu_ps(d + j, e);
      add_to_double(e, s0, s1);
    }
    if (j < C) {
      const __m256i mask = tail_mask(C - j);
      // Lanes past the row load as 0 and may exp to anything: zeroed before the sum.
      __m256 e = exp256(_mm256_sub_ps(_mm256_maskload_ps(x + j, mask), vm));
      e = _mm256_and_ps(e, _mm256_castsi256_ps(mask));
      _mm256_maskstore_ps(d + j, mask, e);
      add_to_double(e, s0, s1);
    }
    const double s = hsum(_mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3)));
    const std::ptrdiff_t l = labels[b];
    // -log p_l = log(sum exp(x - m)) - (x_l - m).
    loss += log(s) - static_cast<double>(x[l] - m);
    // The same float operations as the portable path from here on.
    const float inv_s = static_cast<float>(1.0 / s);
    const float p_l = d[l] * inv_s;
    const __m256 vs = _mm256_set1_ps(inv_s), vb = _mm256_set1_ps(inv_B);
    for (j = 0; j + 8 <= C; j += 8)
      _mm256_storeu_ps(d + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(d + j), vs), vb));
    for (; j < C; ++j) d[j] = d[j] * inv_s * inv_B;
    // Subtract the one-hot before scaling by 1/B, as the reference does.
    d[l] = (p_l - 1.0f) * inv_B;
  }
  return loss;
}

}  // namespace fastmlp
