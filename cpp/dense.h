// Fused dense layer. x (B, I), W (I, O), b (O) -> z (B, O), y (B, O); row-major float32.
#pragma once
#include <cstddef>

#include "activation.h"

namespace fastmlp {

// z = x @ W + b and y = act(z), bias and activation applied in the GEMM epilogue.
// w_row_split / w_row_owners: which thread updates which rows of W in the optimizer, for the
// trainer (Operand::row_split); the same bits with or without.
void dense_forward(std::ptrdiff_t B, std::ptrdiff_t I, std::ptrdiff_t O, const float* x,
                   const float* W, const float* b, Act act, float alpha, float* y, float* z,
                   const std::ptrdiff_t* w_row_split = nullptr, int w_row_owners = 0);

// dense_forward with the sum over the inputs cut in two at k0 (0 < k0 < I):
// z = x[:, :k0] W[:k0] + x[:, k0:] W[k0:] + b, y = act(z) (y may be z; y null: no activation).
// part (B, O) is scratch for the second half. On two threads the halves' GEMMs run side by
// side, one per thread, so each core reads only its half of W: the half it updates in the
// optimizer when the trainer cuts the owner shares at k0 (OptimSlot::owner_cut). Split by
// output rows or columns, both cores read the whole of W, and half of it came from the other
// core's cache every step. Each half sums in a fixed order and the halves are added once, so
// the bits depend on k0 but never on the thread count.
void dense_forward_split_input(std::ptrdiff_t B, std::ptrdiff_t I, std::ptrdiff_t O,
                               const float* x, const float* W, const float* b, Act act,
                               float alpha, float* y, float* z, std::ptrdiff_t k0, float* part);

// dz = dy * act'(z) is never stored: it is formed while packing the GEMM operands.
// dW = x^T @ dz, db = sum_rows dz (accumulated while packing dz), dx = dz @ W^T (if dx != null).
// dx_relu_mask (B, I), optional: the output a of a ReLU layer below, whose own dz = dx * relu'(a)
// the dx GEMM may then form in its store (Epilogue::relu_mask) where that costs no pass of its
// own (a direct GEMM). Returns true when dx holds that dz, false when it holds dx.
bool dense_backward(std::ptrdiff_t B, std::ptrdiff_t I, std::ptrdiff_t O, const float* dy,
                    const float* x, const float* W, const float* z, Act act, float alpha,
                    float* dx, float* dW, float* db, const float* dx_relu_mask = nullptr);

// Whether dense_backward may run its two GEMMs side by side on two or more threads (on by
// default; the same bits either way). For A/B measurements and the tests.
bool dense_side_by_side_enabled();
void set_dense_side_by_side(bool on);

// dx = (dy * act'(z)) @ W^T only: the backward pass through a frozen layer, whose own weight
// gradient is not needed.
// dx_relu_mask and the result: as dense_backward's.
bool dense_backward_input(std::ptrdiff_t B, std::ptrdiff_t I, std::ptrdiff_t O, const float* dy,
                          const float* W, const float* z, Act act, float alpha, float* dx,
                          const float* dx_relu_mask = nullptr);

}  // namespace fastmlp
