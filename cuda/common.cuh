// Shared by the .cu files: error checks that throw (never abort the Python process), an owning
// device buffer, and launch-shape helpers. CUDA syntax: include only from .cu files.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <stdexcept>
#include <string>

namespace fastmlp {
namespace cuda {

[[noreturn]] inline void throw_cuda_error(cudaError_t e, const char* what, const char* file,
                                          int line) {
  throw std::runtime_error(std::string("CUDA error in ") + what + " (" + file + ":" +
                           std::to_string(line) + "): " + cudaGetErrorName(e) + ": " +
                           cudaGetErrorString(e));
}

}  // namespace cuda
}  // namespace fastmlp

// Wraps a runtime call: FASTMLP_CUDA_CHECK(cudaMemcpyAsync(...)).
#define FASTMLP_CUDA_CHECK(call)                                                   \
  do {                                                                             \
    cudaError_t fastmlp_err_ = (call);                                             \
    if (fastmlp_err_ != cudaSuccess)                                               \
      ::fastmlp::cuda::throw_cuda_error(fastmlp_err_, #call, __FILE__, __LINE__);  \
  } while (0)

// After a <<<...>>> launch: reports a bad configuration at once (not at the next sync).
#define FASTMLP_CUDA_CHECK_LAUNCH(name)                                            \
  do {                                                                             \
    cudaError_t fastmlp_err_ = cudaGetLastError();                                 \
    if (fastmlp_err_ != cudaSuccess)                                               \
      ::fastmlp::cuda::throw_cuda_error(fastmlp_err_, name, __FILE__, __LINE__);   \
  } while (0)

namespace fastmlp {
namespace cuda {

// Owning device allocation of n elements of T (cudaMalloc, never managed memory). Movable, not
// copyable. resize() keeps the allocation when it is already large enough.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n) { resize(n); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), n_(o.n_), cap_(o.cap_) {
    o.p_ = nullptr;
    o.n_ = o.cap_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      p_ = o.p_; n_ = o.n_; cap_ = o.cap_;
      o.p_ = nullptr;
      o.n_ = o.cap_ = 0;
    }
    return *this;
  }
  void resize(std::size_t n) {
    if (n > cap_) {
      release();
      void* p = nullptr;
      FASTMLP_CUDA_CHECK(cudaMalloc(&p, (n ? n : 1) * sizeof(T)));
      p_ = static_cast<T*>(p);
      cap_ = n;
    }
    n_ = n;
  }
  T* data() const { return p_; }
  std::size_t size() const { return n_; }
  void upload(const T* host, std::size_t n, cudaStream_t s) {
    resize(n);
    if (n) FASTMLP_CUDA_CHECK(cudaMemcpyAsync(p_, host, n * sizeof(T), cudaMemcpyHostToDevice, s));
  }
  void download(T* host, std::size_t n, cudaStream_t s) const {
    if (n) FASTMLP_CUDA_CHECK(cudaMemcpyAsync(host, p_, n * sizeof(T), cudaMemcpyDeviceToHost, s));
  }

 private:
  void release() {
    if (p_) cudaFree(p_);  // no check: called from destructors
    p_ = nullptr;
    n_ = cap_ = 0;
  }
  T* p_ = nullptr;
  std::size_t n_ = 0, cap_ = 0;
};

// Blocks of `threads` covering n elements, capped for grid-stride loops.
inline unsigned blocks_for(std::ptrdiff_t n, int threads, unsigned cap = 65535u * 4u) {
  std::ptrdiff_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  return static_cast<unsigned>(b > static_cast<std::ptrdiff_t>(cap) ? cap : b);
}

}  // namespace cuda
}  // namespace fastmlp
