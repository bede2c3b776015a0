// The optimizers' float32 scalars, derived in double once per call from the hyper-parameters
// (as the NumPy reference derives them in Python floats). One derivation for both engines: the
// CPU driver (optimizers.cpp) and the CUDA launchers (cuda/optimizers.cu) must round alike.
// Included only by those two files: not by the -mavx2 kernels file, so no inline copy compiled
// for AVX2 can be merged into the portable path.
#pragma once
#include <cmath>

#include "optimizers_impl.h"

namespace fastmlp {

inline float f32(double x) { return static_cast<float>(x); }

inline OptimConfig sgd_config(double lr, double momentum, bool nesterov, double weight_decay) {
  OptimConfig c{};
  c.kind = OptimKind::sgd;
  c.weight_decay = weight_decay != 0.0;
  c.momentum = momentum != 0.0;
  c.nesterov = c.momentum && nesterov;
  c.lr = f32(lr);
  c.wd = f32(weight_decay);
  c.momentum_coef = f32(momentum);
  return c;
}

inline OptimConfig adagrad_config(double lr, double eps, double weight_decay) {
  OptimConfig c{};
  c.kind = OptimKind::adagrad;
  c.weight_decay = weight_decay != 0.0;
  c.lr = f32(lr);
  c.eps = f32(eps);
  c.wd = f32(weight_decay);
  return c;
}

inline OptimConfig rmsprop_config(double lr, double rho, double eps, double weight_decay) {
  OptimConfig c{};
  c.kind = OptimKind::rmsprop;
  c.weight_decay = weight_decay != 0.0;
  c.lr = f32(lr);
  c.rho = f32(rho);
  c.one_minus_rho = f32(1.0 - rho);
  c.eps = f32(eps);
  c.wd = f32(weight_decay);
  return c;
}

// step is 1-based; decoupled = AdamW.
inline OptimConfig adam_config(long long step, double lr, double beta1, double beta2, double eps,
                               double weight_decay, bool decoupled) {
  // Bias corrections in double: beta2^step for step ~1e4 loses most of its digits in float32.
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  OptimConfig c{};
  c.kind = OptimKind::adam;
  c.weight_decay = weight_decay != 0.0 && !decoupled;
  c.decoupled = weight_decay != 0.0 && decoupled;
  c.beta1 = f32(beta1);
  c.one_minus_beta1 = f32(1.0 - beta1);
  c.beta2 = f32(beta2);
  c.one_minus_beta2 = f32(1.0 - beta2);
  c.eps = f32(eps);
  c.wd = f32(weight_decay);
  c.decay = f32(1.0 - lr * weight_decay);
  c.step_size = f32(lr / bc1);
  c.inv_sqrt_bc2 = f32(1.0 / std::sqrt(bc2));
  return c;
}

}  // namespace fastmlp
