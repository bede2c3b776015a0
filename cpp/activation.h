// Activations and their derivatives with respect to the pre-activation z (scalar, float32).
// Same formulas and names as fastmlp.reference.activations; the derivative always takes z.
#pragma once
#include <cmath>
#include <stdexcept>
#include <string>

namespace fastmlp {

enum class Act { identity, relu, leaky_relu, elu, selu, sigmoid, tanh, gelu };

// SELU constants from Klambauer et al. (2017), as in Keras and PyTorch.
constexpr float kSeluAlpha = 1.6732632423543772f;
constexpr float kSeluScale = 1.0507009873554805f;
constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;

inline Act act_from_name(const std::string& name) {
  if (name == "identity") return Act::identity;
  if (name == "relu") return Act::relu;
  if (name == "leaky_relu") return Act::leaky_relu;
  if (name == "elu") return Act::elu;
  if (name == "selu") return Act::selu;
  if (name == "sigmoid") return Act::sigmoid;
  if (name == "tanh") return Act::tanh;
  if (name == "gelu") return Act::gelu;
  throw std::invalid_argument("unknown activation '" + name + "'");
}

inline float act_forward(float z, Act a, float alpha) {
  switch (a) {
    case Act::identity: return z;
    case Act::relu: return z > 0.f || z != z ? z : 0.f;  // NaN propagates, as in NumPy
    case Act::leaky_relu: return z > 0.f ? z : alpha * z;
    case Act::elu: return z > 0.f ? z : alpha * std::expm1(z);
    case Act::selu: return kSeluScale * (z > 0.f ? z : kSeluAlpha * std::expm1(z));
    case Act::sigmoid:
      // Two branches so exp never overflows: for z << 0, exp(z) underflows gracefully instead.
      if (z >= 0.f) return 1.f / (1.f + std::exp(-z));
      else { float e = std::exp(z); return e / (1.f + e); }
    case Act::tanh: return std::tanh(z);
    case Act::gelu: return 0.5f * z * (1.f + std::erf(z * kInvSqrt2));
  }
  return z;
}

inline float act_grad(float z, Act a, float alpha) {
  switch (a) {
    case Act::identity: return 1.f;
    // The vector path of dz = dy * act'(z) (dz_row.h) computes the same 0/1 factor.
    case Act::relu: return static_cast<float>(z > 0.f);
    case Act::leaky_relu: return z > 0.f ? 1.f : alpha;
    case Act::elu: return z > 0.f ? 1.f : alpha * std::exp(z);
    case Act::selu: return z > 0.f ? kSeluScale : kSeluScale * kSeluAlpha * std::exp(z);
    case Act::sigmoid: { float s = act_forward(z, Act::sigmoid, alpha); return s * (1.f - s); }
    case Act::tanh: { float t = std::tanh(z); return 1.f - t * t; }
    case Act::gelu:
      return 0.5f * (1.f + std::erf(z * kInvSqrt2)) + z * kInvSqrt2Pi * std::exp(-0.5f * z * z);
  }
  return 1.f;
}

}  // namespace fastmlp
