// Dense layers on the GPU: the twins of cpp/dense.cpp, plus the elementwise activation kernels
// used after batch norm. x (B, I), W (I, O), b (O) -> z, y (B, O); row-major float32, device
// pointers, W[in, out] as everywhere in fastmlp.
//
// What is here: dense_forward (one GEMM whose epilogue adds b and applies the activation),
// dense_backward (dW and dx are GEMMs reading x^T and W^T in place, with dz = dy * act'(z)
// formed by the GEMM's operand loads and never stored; db is a column-sum kernel, split over
// fixed row chunks for tall dz: splitk.cuh), dense_backward_input, act_forward and act_backward.
// What is not here: the GEMM itself (gemm.cu / gemm.cuh), float atomics. The only allocation is
// db's split-K scratch (stream-ordered, splitk.cuh). Every reduction has a fixed order that
// depends on the shape alone, so results are identical run to run (not bit-equal to the CPU,
// whose summation order differs: within float32 rounding of it).
#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "activation.cuh"
#include "common.cuh"
#include "kernels.h"
#include "splitk.cuh"

namespace fastmlp {
namespace cuda {
namespace {

// Calls f(std::integral_constant<Act, a>{}) so a kernel can take the activation as a template
// parameter: the switch inside dev_act_* then folds away in the per-element loop.
template <class F>
void with_act(Act a, F&& f) {
  switch (a) {
    case Act::identity: f(std::integral_constant<Act, Act::identity>{}); return;
    case Act::relu: f(std::integral_constant<Act, Act::relu>{}); return;
    case Act::leaky_relu: f(std::integral_constant<Act, Act::leaky_relu>{}); return;
    case Act::elu: f(std::integral_constant<Act, Act::elu>{}); return;
    case Act::selu: f(std::integral_constant<Act, Act::selu>{}); return;
    case Act::sigmoid: f(std::integral_constant<Act, Act::sigmoid>{}); return;
    case Act::tanh: f(std::integral_constant<Act, Act::tanh>{}); return;
    case Act::gelu: f(std::integral_constant<Act, Act::gelu>{}); return;
  }
  throw std::invalid_argument("fastmlp::cuda: unknown activation code " +
                              std::to_string(static_cast<int>(a)));
}

void check_dims(const char* fn, std::ptrdiff_t B, std::ptrdiff_t I, std::ptrdiff_t O) {
  if (B < 0 || I < 0 || O < 0)
    throw std::invalid_argument(std::string(fn) + ": B, I, O must be >= 0, got " +
                                std::to_string(B) + ", " + std::to_string(I) + ", " +
                                std::to_string(O));
}

void check_ptr(const char* fn, const char* name, const void* p) {
  if (!p)
    throw std::invalid_argument(std::string(fn) + ": " + name +
                                " is null (expected a device pointer)");
}

// ---- elementwise -------------------------------------------------------------------------

constexpr int kEltThreads = 256;

// y (n) = act(u (n)); grid-stride, 64-bit indices. y may alias u.
template <Act kAct>
__global__ void act_forward_kernel(long long n, const float* u, float alpha, float* y) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    y[i] = dev_act_forward(u[i], kAct, alpha);
}

// d (n) = p (n) * act'(z (n)); grid-stride. d may alias p.
template <Act kAct>
__global__ void act_backward_kernel(long long n, const float* p, const float* z, float alpha,
                                    float* d) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride)
    d[i] = p[i] * dev_act_grad(z[i], kAct, alpha);
}

// ---- db = column sums of dz --------------------------------------------------------------

// One block per strip of 32 columns (grid-stride over strips) and row chunk (blockIdx.y), 32 x
// 32 threads: thread (r, c) sums the chunk's rows r0 + r, r0 + r + 32, ... of column c in
// ascending order (a warp reads 32 consecutive floats of one row: coalesced), then the 32
// partial sums of a column are added in a fixed pairwise tree in shared memory and written to
// out[blockIdx.y * O + col]. Unsplit there is one chunk of all B rows and out is db. Split (a
// tall dz: B >= splitk::kMinK with few strips) the chunks are fixed row ranges and
// bias_grad_sum_kernel adds the chunks' partials in chunk order. The order depends only on the
// shape (B, O), never on timing, the grid or the GPU.
constexpr int kSumCols = 32, kSumRows = 32;

template <Act kAct>
__global__ void __launch_bounds__(kSumCols * kSumRows)
    bias_grad_kernel(long long B, long long O, long long chunk_rows, const float* dy,
                     const float* z, float alpha, float* out) {
  __shared__ float part[kSumRows][kSumCols];  // a warp touches one row: no bank conflicts
  const int c = static_cast<int>(threadIdx.x) % kSumCols;
  const int r = static_cast<int>(threadIdx.x) / kSumCols;
  const long long r0 = static_cast<long long>(blockIdx.y) * chunk_rows;
  const long long r1 = min(B, r0 + chunk_rows);
  float* const dst = out + static_cast<long long>(blockIdx.y) * O;
  for (long long col0 = static_cast<long long>(blockIdx.x) * kSumCols; col0 < O;
       col0 += static_cast<long long>(gridDim.x) * kSumCols) {
    const long long col = col0 + c;
    float s = 0.f;
    if (col < O) {
      for (long long row = r0 + r; row < r1; row += kSumRows) {
        const long long o = row * O + col;
        float v = dy[o];
        if constexpr (kAct != Act::identity) v *= dev_act_grad(z[o], kAct, alpha);
        s += v;
      }
    }
    part[r][c] = s;
    __syncthreads();
#pragma unroll
    for (int h = kSumRows / 2; h > 0; h /= 2) {
      if (r < h) part[r][c] += part[r + h][c];
      __syncthreads();
    }
    if (r == 0 && col < O) dst[col] = part[0][c];
    __syncthreads();  // part is reused by the next strip
  }
}

// db (O) = part[0] + part[1] + ... + part[chunks - 1] (each (O,)), added in chunk order.
// Grid-stride over columns; consecutive threads read consecutive columns (coalesced).
__global__ void bias_grad_sum_kernel(long long O, long long chunks,
                                     const float* __restrict__ part, float* __restrict__ db) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long col = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; col < O;
       col += stride) {
    float s = part[col];
#pragma unroll 8
    for (long long k = 1; k < chunks; ++k) s += part[k * O + col];
    db[col] = s;
  }
}

void bias_grad(cudaStream_t stream, std::ptrdiff_t B, std::ptrdiff_t O, const float* dy,
               const float* z, Act act, float alpha, float* db) {
  if (O <= 0) return;  // no columns: nothing to write, and an empty grid is a launch error
  if (!z) act = Act::identity;  // no pre-activation given: dz = dy
  const unsigned blocks = blocks_for(O, kSumCols);
  // Tall dz over few strips: fixed row chunks (splitk.cuh), from the shape alone.
  const splitk::Plan plan = splitk::plan((O + kSumCols - 1) / kSumCols, B);
  if (plan.chunks <= 1) {
    with_act(act, [&](auto a) {
      bias_grad_kernel<decltype(a)::value><<<blocks, kSumCols * kSumRows, 0, stream>>>(
          B, O, B, dy, z, alpha, db);
    });
    FASTMLP_CUDA_CHECK_LAUNCH("dense_backward (db)");
    return;
  }
  if (plan.chunks > 65535)  // gridDim.y's limit; the plan keeps chunks <= 512
    throw std::logic_error("dense_backward (db): split-K plan of " +
                           std::to_string(plan.chunks) + " chunks exceeds gridDim.y");
  splitk::Scratch part(static_cast<std::size_t>(plan.chunks * O), stream);
  const dim3 grid(blocks, static_cast<unsigned>(plan.chunks));
  with_act(act, [&](auto a) {
    bias_grad_kernel<decltype(a)::value><<<grid, kSumCols * kSumRows, 0, stream>>>(
        B, O, plan.chunk, dy, z, alpha, part.data());
  });
  FASTMLP_CUDA_CHECK_LAUNCH("dense_backward (db partials)");
  bias_grad_sum_kernel<<<blocks_for(O, kEltThreads), kEltThreads, 0, stream>>>(
      O, plan.chunks, part.data(), db);
  FASTMLP_CUDA_CHECK_LAUNCH("dense_backward (db sum)");
}

// dx (B, I) = dz (B, O) @ W^T (O, I): W^T read in place (element (o, i) = W[i * O + o]).
void input_grad(cudaStream_t stream, MathMode mode, std::ptrdiff_t B, std::ptrdiff_t I,
                std::ptrdiff_t O, const Operand& dz, const float* W, float* dx) {
  Operand WT;
  WT.p = W;
  WT.rs = 1;
  WT.cs = O;
  gemm(stream, mode, B, I, O, dz, WT, dx, I);
}

// dz (B, O) = dy * act'(z), as a GEMM operand formed while it is loaded. Without z (or with the
// identity) the operand is dy itself.
Operand dz_operand(const float* dy, std::ptrdiff_t O, const float* z, Act act, float alpha) {
  Operand dz;
  dz.p = dy;
  dz.rs = O;
  dz.cs = 1;
  dz.z = z;
  dz.act = z ? act : Act::identity;
  dz.alpha = alpha;
  return dz;
}

}  // namespace

// x (B, I), W (I, O), b (O) or null -> z (B, O) = x @ W + b, y (B, O) = act(z) (y may be null).
void dense_forward(cudaStream_t stream, MathMode mode, std::ptrdiff_t B, std::ptrdiff_t I,
                   std::ptrdiff_t O, const float* x, const float* W, const float* b, Act act,
                   float alpha, float* y, float* z) {
  check_dims("dense_forward", B, I, O);
  if (B == 0 || O == 0) return;
  check_ptr("dense_forward", "z", z);
  if (I > 0) {
    check_ptr("dense_forward", "x", x);
    check_ptr("dense_forward", "W", W);
  }
  Operand xa;
  xa.p = x;
  xa.rs = I;
  xa.cs = 1;
  Operand Wb;
  Wb.p = W;
  Wb.rs = O;
  Wb.cs = 1;
  Epilogue ep;
  ep.bias = b;
  ep.y = y;
  ep.act = act;
  ep.alpha = alpha;
  gemm(stream, mode, B, O, I, xa, Wb, z, O, ep);
}

// dy, z (B, O), x (B, I), W (I, O) -> dW (I, O) = x^T dz, db (O) = sum over rows of dz (db may
// be null: skipped), dx (B, I) = dz W^T (dx null: skipped); dz = dy * act'(z), never stored.
void dense_backward(cudaStream_t stream, MathMode mode, std::ptrdiff_t B, std::ptrdiff_t I,
                    std::ptrdiff_t O, const float* dy, const float* x, const float* W,
                    const float* z, Act act, float alpha, float* dx, float* dW, float* db) {
  check_dims("dense_backward", B, I, O);
  if (B > 0 && O > 0) check_ptr("dense_backward", "dy", dy);
  if (I > 0 && O > 0) check_ptr("dense_backward", "dW", dW);
  if (B > 0 && I > 0) check_ptr("dense_backward", "x", x);
  if (dx && B > 0 && I > 0 && O > 0) check_ptr("dense_backward", "W", W);
  const Operand dz = dz_operand(dy, O, z, act, alpha);
  // dW (I, O) = x^T (I, B) @ dz (B, O): x^T read in place (element (i, b) = x[b * I + i]).
  // B == 0 is an empty sum: the GEMM writes dW = 0.
  Operand xT;
  xT.p = x;
  xT.rs = 1;
  xT.cs = I;
  gemm(stream, mode, I, O, B, xT, dz, dW, O);
  // B == 0: the kernel writes db = 0.
  if (db) bias_grad(stream, B, O, dy, z, act, alpha, db);
  if (dx) input_grad(stream, mode, B, I, O, dz, W, dx);
}

// dy, z (B, O), W (I, O) -> dx (B, I) = (dy * act'(z)) @ W^T.
void dense_backward_input(cudaStream_t stream, MathMode mode, std::ptrdiff_t B,
                          std::ptrdiff_t I, std::ptrdiff_t O, const float* dy, const float* W,
                          const float* z, Act act, float alpha, float* dx) {
  check_dims("dense_backward_input", B, I, O);
  if (B > 0 && I > 0) check_ptr("dense_backward_input", "dx", dx);
  if (B > 0 && I > 0 && O > 0) {
    check_ptr("dense_backward_input", "dy", dy);
    check_ptr("dense_backward_input", "W", W);
  }
  input_grad(stream, mode, B, I, O, dz_operand(dy, O, z, act, alpha), W, dx);
}

// u (n) -> y (n) = act(u).
void act_forward(cudaStream_t stream, std::ptrdiff_t n, const float* u, Act act, float alpha,
                 float* y) {
  if (n < 0) throw std::invalid_argument("act_forward: n must be >= 0, got " + std::to_string(n));
  if (n == 0) return;  // an empty grid is a launch error
  check_ptr("act_forward", "u", u);
  check_ptr("act_forward", "y", y);
  const unsigned blocks = blocks_for(n, kEltThreads);
  with_act(act, [&](auto a) {
    act_forward_kernel<decltype(a)::value><<<blocks, kEltThreads, 0, stream>>>(n, u, alpha, y);
  });
  FASTMLP_CUDA_CHECK_LAUNCH("act_forward");
}

// p, z (n) -> d (n) = p * act'(z).
void act_backward(cudaStream_t stream, std::ptrdiff_t n, const float* p, const float* z, Act act,
                  float alpha, float* d) {
  if (n < 0) throw std::invalid_argument("act_backward: n must be >= 0, got " + std::to_string(n));
  if (n == 0) return;
  check_ptr("act_backward", "p", p);
  check_ptr("act_backward", "z", z);
  check_ptr("act_backward", "d", d);
  const unsigned blocks = blocks_for(n, kEltThreads);
  with_act(act, [&](auto a) {
    act_backward_kernel<decltype(a)::value><<<blocks, kEltThreads, 0, stream>>>(n, p, z, alpha,
                                                                                d);
  });
  FASTMLP_CUDA_CHECK_LAUNCH("act_backward");
}

}  // namespace cuda
}  // namespace fastmlp
