// AVX2+FMA rows of the exp-based activations (defined in gemm_avx2.cpp, beside the GEMM
// epilogue that uses the same vector functions, cpp/vmath_avx2.h). act_row.h and dz_row.h call
// them after the run-time CPU check; the portable path stays the scalar libm one.
#pragma once
#include <cstddef>

#include "activation.h"

namespace fastmlp {

// True for the activations with vector rows: sigmoid, tanh, elu and selu (exp / expm1 based,
// cpp/vmath_avx2.h); the others take the scalar path.
constexpr bool has_avx2_act_alpha(Act a) {
  return a == Act::sigmoid || a == Act::tanh || a == Act::elu || a == Act::selu;
}

// The activations whose dz = dy * act'(z) row has an AVX2 form: those above, and relu (its
// 0/1 factor is a compare; 8 lanes instead of the portable path's SSE 4).
constexpr bool has_avx2_dz_row(Act a) { return has_avx2_act_alpha(a) || a == Act::relu; }

#ifdef FASTMLP_HAVE_AVX2_PATH
// u (n) -> a (n) = act(u), act with has_avx2_act_alpha(act); alpha is elu's (ignored by the
// others). Tails use masked loads, so an element rounds the same whatever the row length or
// its position in the row.
void act_row_avx2(Act act, const float* u, float* a, std::ptrdiff_t n, float alpha);
// p, z (n) -> d (n) = p * act'(z), act with has_avx2_dz_row(act). NaN * 0 = NaN, as in NumPy.
void dz_row_avx2(Act act, const float* p, const float* z, float* d, std::ptrdiff_t n,
                 float alpha);
#endif

}  // namespace fastmlp
