// Run-time choice of the vector path. The AVX2+FMA code lives in *_avx2.cpp files compiled with
// -mavx2 -mfma; everything else is baseline code, so the module loads on any CPU.
#pragma once
#include <string>

namespace fastmlp {

enum class Isa { portable, avx2 };

// The path the kernels use now: the best one the CPU supports, unless forced by
// FASTMLP_ISA=portable or set_isa (used by the tests to check both paths agree).
Isa active_isa();
bool cpu_has_avx2_fma();
// AVX-512F with OS support, in a build that has the AVX-512 GEMM kernel (gemm_avx512.cpp).
bool cpu_has_avx512f();
// Returns false (and changes nothing) when asked for a path the CPU or the build lacks.
bool set_isa(Isa isa);
std::string isa_name(Isa isa);

}  // namespace fastmlp
