// Batch normalisation over the batch axis. x (B, F), gamma/beta/running stats/mean/inv_std (F);
// row-major float32. Not here: the argument checks (fastmlp.kernels.batchnorm) and B == 1 in
// training mode, which the callers reject before reaching C++.
#pragma once
#include <cmath>
#include <cstddef>

namespace fastmlp {

// Inference mode's statistics of columns [j0, j0 + n): mean = running_mean and inv_std =
// 1 / sqrt(running_var + eps), the expressions batchnorm_forward uses (Network::begin_pass needs
// them without a forward pass).
inline void batchnorm_running_stats(std::ptrdiff_t j0, std::ptrdiff_t n, const float* running_mean,
                                    const float* running_var, float eps, float* mean,
                                    float* inv_std) {
  for (std::ptrdiff_t c = j0; c < j0 + n; ++c) {
    mean[c] = running_mean[c];
    inv_std[c] = 1.0f / std::sqrt(running_var[c] + eps);
  }
}

// Training mode: batch mean and biased variance (two passes), y = gamma * (x - mean) * inv_std
// + beta, and the running statistics updated in place (Keras momentum, unbiased variance).
// Inference mode: mean/inv_std come from the running statistics, which are left untouched.
// work: batchnorm_forward_work(F) floats of scratch, or null to allocate them here (the
// training step passes its own: it allocates nothing).
void batchnorm_forward(std::ptrdiff_t B, std::ptrdiff_t F, const float* x, const float* gamma,
                       const float* beta, float* running_mean, float* running_var,
                       bool training, float momentum, float eps, float* y, float* mean,
                       float* inv_std, float* work = nullptr);
std::ptrdiff_t batchnorm_forward_work(std::ptrdiff_t F);

// Training-mode gradients: dbeta = sum_b dy, dgamma = sum_b dy * xhat,
// dx = gamma * inv_std / B * (B * dy - dbeta - xhat * dgamma).
// work: batchnorm_backward_work(B, F) floats of scratch, or null to allocate them here.
void batchnorm_backward(std::ptrdiff_t B, std::ptrdiff_t F, const float* dy, const float* x,
                        const float* gamma, const float* mean, const float* inv_std, float* dx,
                        float* dgamma, float* dbeta, float* work = nullptr);
std::ptrdiff_t batchnorm_backward_work(std::ptrdiff_t B, std::ptrdiff_t F);

}  // namespace fastmlp
