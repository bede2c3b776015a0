// Binary cross-entropy on logits (sigmoid fused), the numerically stable form used by
// tf.nn.sigmoid_cross_entropy_with_logits: loss_i = max(z, 0) - z * t + log1p(exp(-|z|)).
// Not here: argument checks (fastmlp.kernels.losses).
#pragma once
#include <cstddef>

namespace fastmlp {

// Returns the mean loss over the N elements; dlogits = (sigmoid(z) - t) / N.
double binary_cross_entropy(std::ptrdiff_t N, const float* logits, const float* targets,
                            float* dlogits);

}  // namespace fastmlp
