// AVX2+FMA rows of the exp-based activations (defined in gemm_avx2.cpp, beside the GEMM
// epilogue that uses the same vector functions, cpp/vmath_avx2.h). act_row.h and dz_row.h call
// them after the run-time CPU check; the portable path stays the scalar libm one.
#pragma once
#include <cstddef>

#include "activation.h"

namespace fastmlp {

// True for the activations the rows without alpha handle (sigmoid, tanh); others take the
// scalar path there.
constexpr bool has_avx2_act(Act a) { return a == Act::sigmoid || a == Act::tanh; }

// True for the activations the rows with alpha handle: those of has_avx2_act plus elu and selu
// (expm1 / exp based, cpp/vmath_avx2.h). elu needs its alpha, hence the separate overloads.
constexpr bool has_avx2_act_alpha(Act a) {
  return has_avx2_act(a) || a == Act::elu || a == Act::selu;
}

#ifdef FASTMLP_HAVE_AVX2_PATH
// u (n) -> a (n) = act(u), act with has_avx2_act(act). Tails use masked loads, so an element
// rounds the same whatever the row length or its position in the row.
void act_row_avx2(Act act, const float* u, float* a, std::ptrdiff_t n);
// p, z (n) -> d (n) = p * act'(z), act with has_avx2_act(act). NaN * 0 = NaN, as in NumPy.
void dz_row_avx2(Act act, const float* p, const float* z, float* d, std::ptrdiff_t n);
// The same for act with has_avx2_act_alpha(act); alpha is elu's (ignored by the others).
void act_row_avx2(Act act, const float* u, float* a, std::ptrdiff_t n, float alpha);
void dz_row_avx2(Act act, const float* p, const float* z, float* d, std::ptrdiff_t n,
                 float alpha);
#endif

}  // namespace fastmlp
