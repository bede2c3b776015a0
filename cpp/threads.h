// Thread pool for the kernels.
//
// Determinism contract: callers split work into a task count that depends only on the problem
// shape, never on the number of threads. Each task writes its own outputs (or its own slot of a
// partial-sum array that the caller then combines in task order), so results are bitwise
// identical whatever the thread count and whichever thread runs a task.
#pragma once
#include <cstddef>
#include <functional>

namespace fastmlp {

// Number of threads the kernels use (>= 1). Initialised from FASTMLP_NUM_THREADS or the core count.
int num_threads();
void set_num_threads(int n);

// Runs fn(task) for task in [0, n_tasks) on the pool's threads (the calling thread takes part);
// returns when every task has finished. Use parallel_for.
void run_on_pool(std::ptrdiff_t n_tasks, const std::function<void(std::ptrdiff_t)>& fn);

// Runs fn(task) for task in [0, n_tasks) on the pool; the calling thread takes part.
// Returns when every task has finished. Runs inline when n_tasks <= 1, one thread is set,
// or `serial` is true (callers pass serial for work too small to amortise a wake-up). A
// template so that the inline case calls fn directly: building a std::function from a lambda
// with more than two captures allocated on the heap, a malloc and a free per call in every
// serial step of a small network.
template <class F>
void parallel_for(std::ptrdiff_t n_tasks, F&& fn, bool serial = false) {
  if (n_tasks <= 0) return;
  if (serial || n_tasks == 1 || num_threads() == 1) {
    for (std::ptrdiff_t t = 0; t < n_tasks; ++t) fn(t);
    return;
  }
  // A reference wrapper fits std::function's inline storage: no allocation here either.
  run_on_pool(n_tasks, std::function<void(std::ptrdiff_t)>(std::ref(fn)));
}

// Splits [0, n) into chunks of `grain` (the last one shorter): chunk count for parallel_for.
inline std::ptrdiff_t n_chunks(std::ptrdiff_t n, std::ptrdiff_t grain) {
  return n <= 0 ? 0 : (n + grain - 1) / grain;
}

// fn(begin, end) over [0, n) in chunks of `grain` elements on the pool, inline below two
// chunks. For elementwise passes: the split depends on n alone and each element is computed
// alone, so the bits never depend on the thread count.
template <class F>
void parallel_elementwise(std::ptrdiff_t n, std::ptrdiff_t grain, F&& fn) {
  const std::ptrdiff_t tasks = n_chunks(n, grain);
  parallel_for(
      tasks,
      [&](std::ptrdiff_t t) {
        const std::ptrdiff_t lo = t * grain;
        fn(lo, lo + grain < n ? lo + grain : n);
      },
      tasks < 2);
}

// Elements per task of the elementwise passes between GEMMs (activation, dz = dy * act'(z)):
// 64 KiB of each stream.
constexpr std::ptrdiff_t kElementwiseGrain = 16384;

}  // namespace fastmlp
