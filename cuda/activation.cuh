// Device twins of cpp/activation.h: the same formulas, branch for branch, so a CUDA kernel and
// the CPU engine agree to float32 rounding (CUDA's expf/expm1f/tanhf/erff are within 1-2 ulp of
// glibc's). The derivative always takes the pre-activation z, as on the CPU.
#pragma once
#include <cuda_runtime.h>

#include "activation.h"  // cpp/: Act, kSeluAlpha, kSeluScale, kInvSqrt2, kInvSqrt2Pi

namespace fastmlp {
namespace cuda {

__device__ __forceinline__ float dev_act_forward(float z, Act a, float alpha) {
  switch (a) {
    case Act::identity: return z;
    case Act::relu: return z > 0.f || z != z ? z : 0.f;  // NaN propagates, as in NumPy
    case Act::leaky_relu: return z > 0.f ? z : alpha * z;
    case Act::elu: return z > 0.f ? z : alpha * expm1f(z);
    case Act::selu: return kSeluScale * (z > 0.f ? z : kSeluAlpha * expm1f(z));
    case Act::sigmoid:
      if (z >= 0.f) return 1.f / (1.f + expf(-z));
      else { float e = expf(z); return e / (1.f + e); }
    case Act::tanh: return tanhf(z);
    case Act::gelu: return 0.5f * z * (1.f + erff(z * kInvSqrt2));
  }
  return z;
}

__device__ __forceinline__ float dev_act_grad(float z, Act a, float alpha) {
  switch (a) {
    case Act::identity: return 1.f;
    case Act::relu: return z > 0.f ? 1.f : 0.f;
    case Act::leaky_relu: return z > 0.f ? 1.f : alpha;
    case Act::elu: return z > 0.f ? 1.f : alpha * expf(z);
    case Act::selu: return z > 0.f ? kSeluScale : kSeluScale * kSeluAlpha * expf(z);
    case Act::sigmoid: { float s = dev_act_forward(z, Act::sigmoid, alpha); return s * (1.f - s); }
    case Act::tanh: { float t = tanhf(z); return 1.f - t * t; }
    case Act::gelu:
      return 0.5f * (1.f + erff(z * kInvSqrt2)) + z * kInvSqrt2Pi * expf(-0.5f * z * z);
  }
  return 1.f;
}

}  // namespace cuda
}  // namespace fastmlp
