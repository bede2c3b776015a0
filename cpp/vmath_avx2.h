// 8-lane float32 exp, tanh and sigmoid (and the derivatives of the latter two) for the AVX2+FMA
// files. Include only from files compiled with -mavx2 -mfma. Everything is in an unnamed
// namespace (internal linkage): a shared inline copy could otherwise be merged at link time with
// a portable file's and run, VEX-encoded, on a CPU without AVX.
//
// Accuracy against the functions in double rounded to float (tests/test_vector_activations.py
// sweeps them over +-1e-8 .. +-100, subnormals, +-Inf and NaN): exp256 at most 1 ulp over
// normal results; tanh256 and sigmoid256 at most 4 ulp (relative error < 5e-7); the
// derivatives at most 5e-7 relative. The derivatives are formed from e = exp(-k|z|), not as
// 1 - t^2 or s (1 - s), so they keep full relative precision in the tails where those
// differences cancel. Special values are act_forward's / act_grad's: NaN in gives NaN out,
// tanh(+-Inf) = +-1, sigmoid(-Inf) = 0, sigmoid(+Inf) = 1, both derivatives 0 at +-Inf.
// expm1_neg256 (the negative side of elu and selu), no cancellation near 0: measured at most
// 8.5e-8 relative (1.4 ulp) against expm1 in double over 6e5 normal x in [-30, -1e-30] (worst
// near the n = 0 / n = -1 switch at -ln2/2); elu' 7.7e-8, selu 1.8e-7; the tests hold all of
// them, with tanh and sigmoid, to 5e-7.
#pragma once
#include <immintrin.h>

#include "activation.h"  // kSeluAlpha, kSeluScale

namespace fastmlp {
namespace {

// The shared core of exp256 and expm1_neg256: x = n ln2 + r with |r| <= ln2/2 (ln2 split in
// two parts so n ln2 is exact), and expm1(r) = r + r^2 P(r) by Cephes' polynomial. Returns
// expm1(r) and n.
inline __m256 expm1_reduced256(__m256 x, __m256* n_out) {
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  *n_out = n;
  return _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
}

// exp(x) for 8 floats.
//   Reduction: x = n ln2 + r with n = round(x / ln2), |r| <= ln2 / 2, r computed with two FMAs
//   against Cephes' two-part ln2 (the first product is exact, the difference x - n C1 too).
//   exp(r): Cephes' degree-6 polynomial (expf.c), 1 + r + r^2 P(r), Horner with FMA.
//   Scaling by 2^n: as two factors 2^(n >> 1) and 2^(n - (n >> 1)), both normal for n in
//   [-150, 128], so a result in the subnormal range is rounded once (by the last multiply) and
//   one past FLT_MAX overflows to +inf, as a correctly rounded exp would.
// Inputs are clamped to [-104, 89] first: exp(-104) < FLT_TRUE_MIN / 2 rounds to 0, exp(89) >
// FLT_MAX. max/min return their second operand when one is NaN, so NaN passes through.
// Error against exp in double rounded to float: at most 1 ulp over normal results, 1 unit of
// the last subnormal place below (checked in tests/test_losses.py over [-110, 89]).
inline __m256 exp256(__m256 x) {
  x = _mm256_min_ps(_mm256_set1_ps(89.0f), _mm256_max_ps(_mm256_set1_ps(-104.0f), x));
  __m256 n;
  const __m256 y = _mm256_add_ps(expm1_reduced256(x, &n), _mm256_set1_ps(1.0f));
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1);
  const __m256i n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
}

inline __m256 sign_bit256() { return _mm256_set1_ps(-0.0f); }

// tanh(x) for 8 floats. |x| > 0.625: (1 - e) / (1 + e) with e = exp(-2|x|) <= 0.29, so 1 - e
// does not cancel (e underflows to 0 for |x| > 52: the result is 1, as tanhf rounds it).
// |x| <= 0.625: Cephes' tanhf odd polynomial x + x^3 P(x^2), where the exp form would cancel.
// The sign is copied from x, so tanh(-0) = -0 and the subnormal x (x^2 underflows) give x.
inline __m256 tanh256(__m256 x) {
  const __m256 sign = _mm256_and_ps(x, sign_bit256());
  const __m256 ax = _mm256_andnot_ps(sign_bit256(), x);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 e = exp256(_mm256_mul_ps(ax, _mm256_set1_ps(-2.0f)));
  const __m256 big = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
  const __m256 s = _mm256_mul_ps(ax, ax);
  __m256 p = _mm256_set1_ps(-5.70498872745e-3f);
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(2.06390887954e-2f));
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-5.37397155531e-2f));
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(1.33314422036e-1f));
  p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-3.33332819422e-1f));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, s), ax, ax);
  // NaN compares false, so it takes the small branch, where it propagates too.
  const __m256 use_big = _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_GT_OQ);
  return _mm256_or_ps(_mm256_blendv_ps(small, big, use_big), sign);
}

// tanh'(z) = 1 - tanh(z)^2 = 4e / (1 + e)^2 with e = exp(-2|z|) in (0, 1]: no cancellation for
// any z (1 - t^2 loses all relative precision as t -> 1).
inline __m256 tanh_grad256(__m256 z) {
  const __m256 az = _mm256_andnot_ps(sign_bit256(), z);
  const __m256 e = exp256(_mm256_mul_ps(az, _mm256_set1_ps(-2.0f)));
  const __m256 d = _mm256_add_ps(_mm256_set1_ps(1.0f), e);
  return _mm256_div_ps(_mm256_mul_ps(_mm256_set1_ps(4.0f), e), _mm256_mul_ps(d, d));
}

// sigmoid(z) = 1 / (1 + e) for z >= 0, e / (1 + e) for z < 0, with e = exp(-|z|) in (0, 1]:
// exp never overflows (act_forward's two branches, in one pass).
inline __m256 sigmoid256(__m256 z) {
  const __m256 az = _mm256_andnot_ps(sign_bit256(), z);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), az));
  const __m256 neg = _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_LT_OQ);
  // NaN: e is NaN, so either numerator gives NaN.
  return _mm256_div_ps(_mm256_blendv_ps(one, e, neg), _mm256_add_ps(one, e));
}

// sigmoid'(z) = s (1 - s) = e / (1 + e)^2 with e = exp(-|z|): symmetric in z, no cancellation.
inline __m256 sigmoid_grad256(__m256 z) {
  const __m256 az = _mm256_andnot_ps(sign_bit256(), z);
  const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), az));
  const __m256 d = _mm256_add_ps(_mm256_set1_ps(1.0f), e);
  return _mm256_div_ps(e, _mm256_mul_ps(d, d));
}

// expm1(x) for 8 floats with x <= 0 (x > 0 is not handled: the elu/selu callers pass
// min(0, z)). exp(x) - 1 would cancel for small |x| (all relative precision lost at |x| ~ 1e-8),
// so expm1 is formed from exp256's reduction x = n ln2 + r, |r| <= ln2 / 2:
//   expm1(x) = 2^n (1 + expm1(r)) - 1 = 2^n expm1(r) + (2^n - 1),
// with expm1(r) = r + r^2 P(r), exp256's Cephes polynomial without its leading 1. For
// |x| <= ln2 / 2, n = 0 and the result is the polynomial alone (r = x exactly: tiny and subnormal
// x give x); otherwise 2^n - 1 is exact (n >= -44) and the FMA rounds the sum once.
// Inputs are clamped to [-30, 0] (expm1(-30) rounds to -1; 2^n stays normal). max/min return
// their second operand when one is NaN, so NaN passes through. The sign bit of x is ORed in: the
// polynomial's r^2 P(r) + r turns -0 into +0, and expm1(-0) is -0 (as std::expm1 gives it).
inline __m256 expm1_neg256(__m256 x) {
  x = _mm256_min_ps(_mm256_setzero_ps(), _mm256_max_ps(_mm256_set1_ps(-30.0f), x));
  __m256 n;
  const __m256 em = expm1_reduced256(x, &n);  // expm1(r)
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256 s = _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_add_epi32(ni, _mm256_set1_epi32(127)), 23));  // 2^n
  const __m256 y = _mm256_fmadd_ps(s, em, _mm256_sub_ps(s, _mm256_set1_ps(1.0f)));
  return _mm256_or_ps(y, _mm256_and_ps(x, sign_bit256()));
}

// elu(z) = z for z > 0, alpha expm1(z) otherwise (act_forward's branch: NaN fails z > 0 and
// takes the expm1 side, where it propagates; -Inf gives -alpha).
inline __m256 elu256(__m256 z, __m256 alpha) {
  const __m256 neg = _mm256_mul_ps(alpha, expm1_neg256(z));
  return _mm256_blendv_ps(neg, z, _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GT_OQ));
}

// elu'(z) = 1 for z > 0, alpha exp(z) otherwise (act_grad's form; 0 at -Inf, NaN for NaN).
// exp256 of min(0, z) never overflows; min returns z when z is NaN.
inline __m256 elu_grad256(__m256 z, __m256 alpha) {
  const __m256 neg = _mm256_mul_ps(alpha, exp256(_mm256_min_ps(_mm256_setzero_ps(), z)));
  return _mm256_blendv_ps(neg, _mm256_set1_ps(1.0f),
                          _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GT_OQ));
}

// selu(z) = scale * elu(z, selu alpha), rounded in act_forward's order: scale * (alpha expm1(z)).
inline __m256 selu256(__m256 z) {
  return _mm256_mul_ps(_mm256_set1_ps(kSeluScale), elu256(z, _mm256_set1_ps(kSeluAlpha)));
}

// selu'(z) = scale for z > 0, (scale alpha) exp(z) otherwise: act_grad's float constant
// kSeluScale * kSeluAlpha, then one product.
inline __m256 selu_grad256(__m256 z) {
  const __m256 neg = _mm256_mul_ps(_mm256_set1_ps(kSeluScale * kSeluAlpha),
                                   exp256(_mm256_min_ps(_mm256_setzero_ps(), z)));
  return _mm256_blendv_ps(neg, _mm256_set1_ps(kSeluScale),
                          _mm256_cmp_ps(z, _mm256_setzero_ps(), _CMP_GT_OQ));
}

}  // namespace
}  // namespace fastmlp
