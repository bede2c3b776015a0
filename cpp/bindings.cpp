// The private extension module fastmlp._core. Each kernel family registers itself from its
// own bind_*.cpp; this file holds only the module-wide functions (threads, CPU path).
#include <pybind11/pybind11.h>

#include "cpu.h"
#include "dense.h"
#include "gemm.h"
#include "network.h"
#include "threads.h"

namespace py = pybind11;

namespace fastmlp {
void bind_dense(py::module_& m);
void bind_batchnorm(py::module_& m);
void bind_losses(py::module_& m);
void bind_optimizers(py::module_& m);
void bind_train(py::module_& m);
}  // namespace fastmlp

PYBIND11_MODULE(_core, m) {
  using namespace fastmlp;
  m.doc() = "fastmlp compiled kernels (private; use fastmlp.kernels)";
  m.def("num_threads", &num_threads);
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("n must be >= 1");
    // It waits for the pool's running job: without the GIL, so other Python threads run meanwhile.
    py::gil_scoped_release no_gil;
    set_num_threads(n);
  });
  m.def("cpu_has_avx2_fma", &cpu_has_avx2_fma);
  m.def("cpu_has_avx512f", &cpu_has_avx512f);
  // Private, for tests: moves the size limit of the GEMM's direct (unpacked) path.
  m.def("_set_gemm_direct_limit", &set_gemm_direct_limit);
  // Private, for bench/bench_placement.py: a cache-line round trip between the first two CPUs.
  m.def("_cross_core_round_trip_ns", [](int ms) {
    py::gil_scoped_release release;
    return cross_core_round_trip_ns(ms);
  }, py::arg("ms"));
  // Private, for tests: the pool's self-check (threads.h), optionally with helpers yielding at
  // their claims' race points.
  m.def("_pool_self_check", [](std::int64_t jobs, std::uint64_t seed, bool delays) {
    PoolCheck c;
    {
      py::gil_scoped_release release;
      set_pool_delays(delays);
      c = pool_self_check(jobs, seed);
      set_pool_delays(false);
    }
    return py::make_tuple(c.jobs, c.returned_early, c.bad_counts, c.late_or_repeated);
  }, py::arg("jobs"), py::arg("seed"), py::arg("delays"));
  // Private, for stress runs: the same yields on every job until turned off.
  m.def("_set_pool_delays", &set_pool_delays, py::arg("on"));
  // Private, for tests and A/B runs: the AVX-512 pair kernel on or off (same bits either way).
  m.def("gemm_avx512_enabled", &gemm_avx512_enabled);
  m.def("_set_gemm_avx512", [](bool on) {
    if (!set_gemm_avx512(on)) throw py::value_error("on: this CPU or build has no AVX-512F kernel");
  });
  // Private, for tests and A/B runs: dense_backward's two GEMMs side by side or one after the
  // other (same bits either way).
  m.def("dense_side_by_side_enabled", &dense_side_by_side_enabled);
  m.def("_set_dense_side_by_side", &set_dense_side_by_side, py::arg("on"));
  m.def("input_split_enabled", &input_split_enabled);
  m.def("_set_input_split", &set_input_split, py::arg("on"));
  m.def("active_isa", [] { return isa_name(active_isa()); });
  m.def("set_isa", [](const std::string& name) {
    Isa isa;
    if (name == "portable") isa = Isa::portable;
    else if (name == "avx2_fma") isa = Isa::avx2;
    else throw py::value_error("isa: expected 'portable' or 'avx2_fma', got '" + name + "'");
    if (!set_isa(isa)) throw py::value_error("isa: this CPU or build has no " + name + " path");
  });
  bind_dense(m);
  bind_batchnorm(m);
  bind_losses(m);
  bind_optimizers(m);
  bind_train(m);
}
