// Inverted dropout masks from a counter-based hash: whether element i of layer l is kept at
// optimizer step s depends only on (seed, s, l, i). So masks need no stored RNG state, are the
// same whatever the thread count, and fastmlp.reference.dropout_mask rebuilds them bit for bit.
#pragma once
#include <cstdint>

namespace fastmlp {

// SplitMix64's finaliser (Steele, Lea, Flood 2014): a bijective 64-bit mixer.
inline std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline std::uint64_t dropout_key(std::uint64_t seed, std::uint64_t step, std::uint64_t layer) {
  return mix64(seed + mix64(step + mix64(layer)));
}

// Uniform in [0, 1) with 24 random bits: exact in float32.
inline float dropout_uniform(std::uint64_t key, std::uint64_t i) {
  return static_cast<float>(mix64(key + (i + 1) * 0x9E3779B97F4A7C15ull) >> 40) *
         (1.0f / 16777216.0f);
}

// mask[i] = 1 / (1 - rate) where element first + i is kept (u >= rate), else 0: a row shard
// of a layer draws its slice of the whole layer's mask.
inline void dropout_mask(std::uint64_t key, float rate, std::int64_t n, float* mask,
                         std::int64_t first = 0) {
  const float scale = 1.0f / (1.0f - rate);
  for (std::int64_t i = 0; i < n; ++i)
    mask[i] = dropout_uniform(key, static_cast<std::uint64_t>(first + i)) >= rate ? scale : 0.0f;
}

}  // namespace fastmlp
