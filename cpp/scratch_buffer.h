// Scratch vectors that only grow.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace fastmlp {

// v.data() with room for at least n floats. Never shrinks: resize() down and back up
// value-initialises the regrown tail every time, and the GEMMs of one training step alternate
// between layer sizes (a memset and a reallocation per GEMM were 6% of a 1-50-10-1 step).
// Also the kernels' per-call temporaries (partial sums, per-column factors), so that a
// training step allocates nothing (issue 5).
template <class T>
T* grown(std::vector<T>& v, std::size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// v's storage from its first 64-byte boundary on: the same pointer while v is not regrown.
// For the GEMM's packed panels, whose 64-byte B rows are read as two 32-byte loads: malloc
// aligns to 16 bytes only (large blocks start 16 bytes into a page), and at an odd multiple of
// 16 one load of every row straddles two cache lines. Against panels 16 bytes off, aligned ones
// ran the wide, mnist and deep-narrow steps 0.6-1.3% faster in interleaved pairs.
inline float* aligned_floats(std::vector<float>& v) {
  const auto a = (reinterpret_cast<std::uintptr_t>(v.data()) + 63) & ~std::uintptr_t(63);
  return reinterpret_cast<float*>(a);
}
// grown(v, n), with the n floats counted from aligned_floats(v).
inline float* grown_aligned(std::vector<float>& v, std::size_t n) {
  grown(v, n + 15);
  return aligned_floats(v);
}

}  // namespace fastmlp
