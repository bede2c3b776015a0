// Device queries for fastmlp.backends() and fastmlp.cuda_info(). They never throw: a machine
// without a GPU or a CUDA driver is the common case, and `import fastmlp` must work there.
// The CUDA runtime is linked statically, so the module loads without libcudart; the driver
// (libcuda.so) is looked up by the runtime on the first call, and its absence is an error code.
#include <string>

#include "common.cuh"
#include "kernels.h"

namespace fastmlp {
namespace cuda {
namespace {

struct Probe {
  int count = 0;
  std::string reason;
};

// Probed once per process: the answer cannot change while it runs.
const Probe& probe() {
  static const Probe p = [] {
    Probe r;
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaSuccess && n > 0) {
      r.count = n;
    } else if (e == cudaSuccess || e == cudaErrorNoDevice) {
      r.reason = "no CUDA device found";
    } else if (e == cudaErrorInsufficientDriver) {
      r.reason = "no NVIDIA driver, or one too old for this build's CUDA runtime";
    } else {
      r.reason = std::string("the CUDA runtime could not start: ") + cudaGetErrorName(e) +
                 ": " + cudaGetErrorString(e);
    }
    cudaGetLastError();  // a failed probe must not leave a sticky error for later calls
    return r;
  }();
  return p;
}

}  // namespace

int device_count() { return probe().count; }

const char* unavailable_reason() { return probe().reason.c_str(); }

std::string device_name() {
  if (device_count() == 0) return "";
  int dev = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    cudaGetLastError();
    return "";
  }
  return prop.name;
}

int compute_capability() {
  if (device_count() == 0) return 0;
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return major * 10 + minor;
}

}  // namespace cuda
}  // namespace fastmlp
