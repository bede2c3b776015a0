// Per-ISA pieces of the loss kernels (losses.cpp holds the portable ones and the task split;
// losses_avx2.cpp the AVX2+FMA ones, called only after the run-time check in cpu.cpp).
// Internal: the public entry points are in losses.h.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fastmlp {

// x (n) -> y (n) = exp(x), float32, on the active path. The portable version is std::exp; the
// AVX2 one is a polynomial (see losses_avx2.cpp for its error bound). Used by
// softmax_cross_entropy; exposed to the tests as _core._exp_f32.
void exp_f32(std::ptrdiff_t n, const float* x, float* y);
void exp_f32_portable(std::ptrdiff_t n, const float* x, float* y);

// Rows [b0, b1) of softmax cross-entropy: logits (B, C), labels (B) -> dlogits rows written,
// returns the sum over those rows of -log p[label] in double, rows added in order.
double softmax_xent_rows_portable(std::ptrdiff_t b0, std::ptrdiff_t b1, std::ptrdiff_t C,
                                  const float* logits, const std::int64_t* labels,
                                  float* dlogits, float inv_B);

#ifdef FASTMLP_HAVE_AVX2_PATH
void exp_f32_avx2(std::ptrdiff_t n, const float* x, float* y);
double softmax_xent_rows_avx2(std::ptrdiff_t b0, std::ptrdiff_t b1, std::ptrdiff_t C,
                              const float* logits, const std::int64_t* labels, float* dlogits,
                              float inv_B);
#endif

}  // namespace fastmlp
