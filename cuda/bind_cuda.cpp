// fastmlp._cuda: the optional CUDA backend's module. Imported lazily by fastmlp.backends and
// fastmlp.cuda, never by `import fastmlp`. The CUDA runtime is linked statically, so importing
// needs no CUDA installation; without a driver or a GPU, device_count() is 0 and
// unavailable_reason() says why.
#include "bind_util.h"
#include "kernels.h"

#ifndef FASTMLP_CUDA_ARCHITECTURES
#define FASTMLP_CUDA_ARCHITECTURES "unknown"
#endif

namespace fastmlp {
namespace cuda {
void bind_kernels(py::module_& m);
void bind_trainer(py::module_& m);
}  // namespace cuda
}  // namespace fastmlp

PYBIND11_MODULE(_cuda, m) {
  namespace fc = fastmlp::cuda;
  m.doc() = "fastmlp's CUDA backend (private: use fastmlp.cuda and train(device='cuda'))";
  m.def("device_count", &fc::device_count);
  m.def("unavailable_reason", [] { return std::string(fc::unavailable_reason()); });
  m.def("device_name", &fc::device_name);
  m.def("compute_capability", &fc::compute_capability);
  m.attr("architectures") = FASTMLP_CUDA_ARCHITECTURES;  // what this build compiled for
  int rt = 0;
  cudaRuntimeGetVersion(&rt);  // the statically linked runtime: no driver needed
  m.attr("runtime_version") = rt;
  fc::bind_kernels(m);
  fc::bind_trainer(m);
}
