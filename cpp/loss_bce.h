// Binary cross-entropy on logits (sigmoid fused), the numerically stable form used by
// tf.nn.sigmoid_cross_entropy_with_logits: loss_i = max(z, 0) - z * t + log1p(exp(-|z|)).
// Not here: argument checks (fastmlp.kernels.losses).
#pragma once
#include <cstddef>

namespace fastmlp {

// Returns the mean loss over the N elements; dlogits = (sigmoid(z) - t) / N.
double binary_cross_entropy(std::ptrdiff_t N, const float* logits, const float* targets,
                            float* dlogits);

// Elements [i0, i1) of N: dlogits there as above (divided by N), returns their summed loss.
double binary_cross_entropy_part(std::ptrdiff_t i0, std::ptrdiff_t i1, std::ptrdiff_t N,
                                 const float* logits, const float* targets, float* dlogits);

}  // namespace fastmlp
