// Batch normalisation over the batch axis. x (B, F), gamma/beta/running stats/mean/inv_std (F);
// row-major float32. Not here: the argument checks (fastmlp.kernels.batchnorm) and B == 1 in
// training mode, which the callers reject before reaching C++.
#pragma once
#include <cstddef>

namespace fastmlp {

// Training mode: batch mean and biased variance (two passes), y = gamma * (x - mean) * inv_std
// + beta, and the running statistics updated in place (Keras momentum, unbiased variance).
// Inference mode: mean/inv_std come from the running statistics, which are left untouched.
void batchnorm_forward(std::ptrdiff_t B, std::ptrdiff_t F, const float* x, const float* gamma,
                       const float* beta, float* running_mean, float* running_var,
                       bool training, float momentum, float eps, float* y, float* mean,
                       float* inv_std);

// Training-mode gradients: dbeta = sum_b dy, dgamma = sum_b dy * xhat,
// dx = gamma * inv_std / B * (B * dy - dbeta - xhat * dgamma).
void batchnorm_backward(std::ptrdiff_t B, std::ptrdiff_t F, const float* dy, const float* x,
                        const float* gamma, const float* mean, const float* inv_std, float* dx,
                        float* dgamma, float* dbeta);

}  // namespace fastmlp
