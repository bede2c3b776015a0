#include "loss_bce.h"

#include <cmath>

#include "activation.h"

namespace fastmlp {

double binary_cross_entropy(std::ptrdiff_t N, const float* logits, const float* targets,
                            float* dlogits) {
  // Serial, summed in element order in double: the result does not depend on the thread count,
  // and the pass is tiny next to the GEMMs of any layer that feeds it.
  return binary_cross_entropy_part(0, N, N, logits, targets, dlogits) / static_cast<double>(N);
}

double binary_cross_entropy_part(std::ptrdiff_t i0, std::ptrdiff_t i1, std::ptrdiff_t N,
                                 const float* logits, const float* targets, float* dlogits) {
  double sum = 0.0;
  const float inv_n = 1.0f / static_cast<float>(N);
  for (std::ptrdiff_t i = i0; i < i1; ++i) {
    const float z = logits[i], t = targets[i];
    sum += static_cast<double>(std::fmax(z, 0.f) - z * t + std::log1p(std::exp(-std::fabs(z))));
    dlogits[i] = (act_forward(z, Act::sigmoid, 0.f) - t) * inv_n;
  }
  return sum;
}

}  // namespace fastmlp
