#include "cpu.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace fastmlp {

bool cpu_has_avx2_fma() {
#if defined(FASTMLP_HAVE_AVX2_PATH) && (defined(__GNUC__) || defined(__clang__))
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return ok;
#else
  return false;
#endif
}

bool cpu_has_avx512f() {
#if defined(FASTMLP_HAVE_AVX512_KERNEL) && (defined(__GNUC__) || defined(__clang__))
  // libgcc's check also requires the OS to save the zmm and mask registers (XCR0).
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return ok;
#else
  return false;
#endif
}

namespace {
Isa initial_isa() {
  const char* env = std::getenv("FASTMLP_ISA");
  if (env && std::strcmp(env, "portable") == 0) return Isa::portable;
  return cpu_has_avx2_fma() ? Isa::avx2 : Isa::portable;
}
std::atomic<Isa>& isa_slot() {
  static std::atomic<Isa> slot{initial_isa()};
  return slot;
}
}  // namespace

Isa active_isa() { return isa_slot().load(std::memory_order_relaxed); }

bool set_isa(Isa isa) {
  if (isa == Isa::avx2 && !cpu_has_avx2_fma()) return false;
  isa_slot().store(isa);
  return true;
}

std::string isa_name(Isa isa) { return isa == Isa::avx2 ? "avx2_fma" : "portable"; }

}  // namespace fastmlp
