// The direct tiles' epilogue choices as one compile-time flag set, picked once per row group:
// tested per row, the choices (and their spilled pointers) cost more than the FMAs when K is 1.
// Shared by gemm_avx2.cpp and gemm_avx512.cpp; each instantiates it with its own store lambda.
#pragma once
#include <type_traits>

namespace fastmlp {

// Flag bits: 16 relu mask, 8 y is C (activation in place), 4 add C, 2 bias, 1 y.
constexpr int kFlagMask = 16, kFlagInPlace = 8, kFlagAddC = 4, kFlagBias = 2, kFlagY = 1;

inline int epilogue_flags(bool mask, bool y, bool y_is_c, bool add_c, bool bias) {
  return (mask ? kFlagMask : 0) | (y && y_is_c ? kFlagInPlace : y ? kFlagY : 0) |
         (add_c ? kFlagAddC : 0) | (bias ? kFlagBias : 0);
}

// store(std::integral_constant<int, F>) for the flag set F: the combinations the GEMMs form
// (y and y-is-C exclude each other; the relu mask comes without bias or y: Epilogue::relu_mask).
template <class Store>
[[gnu::always_inline]] inline void with_epilogue_flags(int flags, Store&& store) {
  switch (flags) {
    case 0: store(std::integral_constant<int, 0>{}); break;
    case 1: store(std::integral_constant<int, 1>{}); break;
    case 2: store(std::integral_constant<int, 2>{}); break;
    case 3: store(std::integral_constant<int, 3>{}); break;
    case 4: store(std::integral_constant<int, 4>{}); break;
    case 5: store(std::integral_constant<int, 5>{}); break;
    case 6: store(std::integral_constant<int, 6>{}); break;
    case 7: store(std::integral_constant<int, 7>{}); break;
    case 8: store(std::integral_constant<int, 8>{}); break;
    case 10: store(std::integral_constant<int, 10>{}); break;
    case 12: store(std::integral_constant<int, 12>{}); break;
    case 14: store(std::integral_constant<int, 14>{}); break;
    case 16: store(std::integral_constant<int, 16>{}); break;
    default: store(std::integral_constant<int, 20>{}); break;
  }
}

}  // namespace fastmlp
