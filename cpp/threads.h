// Thread pool for the kernels.
//
// Determinism contract: callers split work into a task count that depends only on the problem
// shape, never on the number of threads. Each task writes its own outputs (or its own slot of a
// partial-sum array that the caller then combines in task order), so results are bitwise
// identical whatever the thread count and whichever thread runs a task.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>

namespace fastmlp {

// Number of threads the kernels use (>= 1). Initialised from FASTMLP_NUM_THREADS or the core count.
// 1 on a thread inside a SerialScope.
int num_threads();
void set_num_threads(int n);

// While one lives, every kernel called on this thread runs inline on it (num_threads() is 1
// here, so no parallel_for reaches the pool): for work already spread over the pool one piece
// per task, such as the trainer's row shards, whose kernels must not queue a job of their own
// from inside a job.
class SerialScope {
 public:
  SerialScope();
  ~SerialScope();
  SerialScope(const SerialScope&) = delete;
  SerialScope& operator=(const SerialScope&) = delete;
};

// Runs fn(task) for task in [0, n_tasks) on the pool's threads (the calling thread takes part);
// returns when every task has finished. Use parallel_for.
void run_on_pool(std::ptrdiff_t n_tasks, const std::function<void(std::ptrdiff_t)>& fn);

// Like run_on_pool, but task ranges have owners: thread j (0 = the caller) runs the tasks
// [bounds[j], bounds[j + 1]) first, in order, for j < n_owners, and then takes unclaimed tasks
// from the back of the other ranges. Callers give a thread the work whose data it wrote or will
// read next (the same rows of every layer), so that data stays in that core's caches: moving a
// layer's packed operands from one core to the other cost more than the arithmetic on it for
// GEMMs of a few MFLOP. Which thread runs a task never changes a result (the determinism
// contract above still holds); a helper the OS has not scheduled is never waited for, its range
// is taken over. bounds[0] = 0, bounds[n_owners] = n_tasks <= 65535, 1 <= n_owners <= 64.
//
// keep (may be null): the first keep[j] tasks of range j are its owner's alone once the owner
// has claimed a task of its range; others take only the rest of the range from the back. For
// tasks that read lines the owner is about to write, such as the rows of a weight matrix that
// the owner's optimizer task updates after the step: a store to a line the other core has read
// cost 7.7 ns with the two vCPUs on one die and 31 ns on two, against 0.8 ns for a line only
// this core touched (bench/experiments/coherence.c), and in the far placement half of mnist's
// Adam pass went to such stores. An owner that has not claimed yet (an unscheduled helper) is
// still taken over at once, and the caller takes over one that has not claimed a task for
// 200 us (preempted by the OS) rather than wait for it.
void run_on_pool_affine(int n_owners, const std::ptrdiff_t* bounds,
                        const std::function<void(std::ptrdiff_t)>& fn,
                        const std::ptrdiff_t* keep = nullptr);

// Owner ranges for parallel_for_affine: n tasks cut into `owners` contiguous equal ranges.
constexpr int kMaxOwners = 64;
struct OwnerBounds {
  int owners = 1;
  std::ptrdiff_t b[kMaxOwners + 1] = {0};
  // Tasks at the front of each range kept by their owner (run_on_pool_affine's keep); all 0:
  // every task may be taken by another thread once it is done with its own range.
  std::ptrdiff_t keep[kMaxOwners] = {0};
  bool keeps = false;  // any keep[j] > 0
};

// The number of threads an affine job of n_tasks spreads over (callers size their ranges).
int affine_owners(std::ptrdiff_t n_tasks);

// n_tasks cut into affine_owners(n_tasks) contiguous equal shares (one share when serial).
inline OwnerBounds even_shares(std::ptrdiff_t n_tasks, bool serial = false) {
  OwnerBounds ob;
  ob.owners = serial ? 1 : affine_owners(n_tasks);
  for (int j = 0; j <= ob.owners; ++j) ob.b[j] = n_tasks * j / ob.owners;
  return ob;
}

template <class F>
void parallel_for_affine(const OwnerBounds& ob, F&& fn, bool serial = false) {
  const std::ptrdiff_t n_tasks = ob.b[ob.owners];
  if (n_tasks <= 0) return;
  if (serial || n_tasks == 1 || ob.owners == 1 || num_threads() == 1) {
    for (std::ptrdiff_t t = 0; t < n_tasks; ++t) fn(t);
    return;
  }
  run_on_pool_affine(ob.owners, ob.b, std::function<void(std::ptrdiff_t)>(std::ref(fn)),
                     ob.keeps ? ob.keep : nullptr);
}

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
// alone, so the bits never depend on the thread count. Chunks go to threads in contiguous
// shares (parallel_for_affine), like the GEMMs' rows, so a thread mostly touches the rows it
// wrote.
template <class F>
void parallel_elementwise(std::ptrdiff_t n, std::ptrdiff_t grain, F&& fn) {
  const std::ptrdiff_t tasks = n_chunks(n, grain);
  if (tasks < 2) {  // inline, before building the owner table
    if (n > 0) fn(std::ptrdiff_t(0), n);
    return;
  }
  parallel_for_affine(even_shares(tasks), [&](std::ptrdiff_t t) {
    const std::ptrdiff_t lo = t * grain;
    fn(lo, lo + grain < n ? lo + grain : n);
  });
}

// A probe of the machine, not of the pool: the round trip, in ns, of one cache line bounced
// between this thread and a helper thread for about `ms` milliseconds, the two pinned to the
// first two CPUs this process may use (Linux; elsewhere, and with fewer than two CPUs, it
// returns 0): the median over blocks of 256 trips, timed from when the helper runs and after
// a warm-up, so neither a vCPU waking from idle nor one preempted block moves it. Every join
// of a multi-threaded step pays it a few times, and so does every line one core writes and the
// other reads. On the 2-vCPU VMs of bench/NOTES.md it is bimodal: ~60-90 ns while the host
// runs both vCPUs on one CPU die, ~300-400 ns while it runs them far apart, where the mnist
// step is 1.5-1.6x slower.
double cross_core_round_trip_ns(int ms);

// Private, for tests. set_pool_delays(true) makes the pool's helpers yield their core at the
// points of a claim where a helper late for its job can meet the next one, so that such
// interleavings, rare on their own, come up in a short test. pool_self_check runs `jobs` jobs
// of 2-64 tasks (plain, affine, affine with kept tasks), each task counting its own runs, and
// reports the jobs that returned before their tasks had finished and the tasks that ran other
// than exactly once.
void set_pool_delays(bool on);
struct PoolCheck {
  std::int64_t jobs = 0, returned_early = 0, bad_counts = 0, late_or_repeated = 0;
};
PoolCheck pool_self_check(std::int64_t jobs, std::uint64_t seed);

// Elements per task of the elementwise passes between GEMMs (activation, dz = dy * act'(z)):
// 32 KiB of each stream, so a 256 x 64 layer's pass (16k elements) is split between two cores
// (in one piece it was 4% of a deep-narrow step, serial, with the other core idle).
constexpr std::ptrdiff_t kElementwiseGrain = 8192;

}  // namespace fastmlp
