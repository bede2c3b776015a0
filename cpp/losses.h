// Losses: each returns the mean loss and writes the gradient of that loss with respect to its
// first argument. Row-major float32 in, loss accumulated in double. Not here: argument checks
// (fastmlp.kernels.losses; the binding re-checks labels so C++ never indexes out of a row).
#pragma once
#include <cstddef>
#include <cstdint>

namespace fastmlp {

// loss = mean_b -log softmax(logits[b])[labels[b]]; dlogits = (softmax - onehot) / B.
double softmax_cross_entropy(std::ptrdiff_t B, std::ptrdiff_t C, const float* logits,
                             const std::int64_t* labels, float* dlogits);

// loss = mean of (pred - target)^2 over N elements; dpred = 2 * (pred - target) / N.
double mse(std::ptrdiff_t N, const float* pred, const float* target, float* dpred);

// One piece of a batch, serially, for the trainer's row shards: the gradient is written as the
// whole batch's mean loss has it (divided by the batch's B or N, not the piece's), and the
// piece's summed (not mean) loss is returned. Rows [b0, b1) of B rows; elements [i0, i1) of N.
double softmax_cross_entropy_part(std::ptrdiff_t b0, std::ptrdiff_t b1, std::ptrdiff_t B,
                                  std::ptrdiff_t C, const float* logits,
                                  const std::int64_t* labels, float* dlogits);
double mse_part(std::ptrdiff_t i0, std::ptrdiff_t i1, std::ptrdiff_t N, const float* pred,
                const float* target, float* dpred);

}  // namespace fastmlp
