// The pool's self-check (private, for tests): many small jobs, each task counting its runs.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>

#include "threads.h"

namespace fastmlp {

PoolCheck pool_self_check(std::int64_t jobs, std::uint64_t seed) {
  PoolCheck out;
  std::uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  auto next = [&x] {  // xorshift64: job sizes and kinds
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  constexpr int kMaxTasks = 64;
  std::unique_ptr<std::atomic<int>[]> runs(new std::atomic<int>[kMaxTasks]);
  std::atomic<int> finished{0};
  int prev_tasks = 0;
  for (std::int64_t j = 0; j < jobs; ++j) {
    const int n = 2 + static_cast<int>(next() % (kMaxTasks - 1));
    // A task of the previous job that ran after its job had returned shows up here.
    for (int t = 0; t < prev_tasks; ++t)
      if (runs[t].load() != 1) ++out.late_or_repeated;
    for (int t = 0; t < n; ++t) runs[t].store(0);
    finished.store(0);
    auto task = [&](std::ptrdiff_t t) {
      runs[t].fetch_add(1);
      // A few hundred ns of work, so that tasks overlap and helpers get preempted mid-job.
      volatile std::uint64_t spin = 0;
      for (int i = 0; i < 64; ++i) spin = spin + static_cast<std::uint64_t>(i);
      finished.fetch_add(1);
    };
    const int kind = static_cast<int>(next() % 3);
    if (kind == 0) {
      run_on_pool(n, task);
    } else {
      OwnerBounds ob = even_shares(n);
      if (kind == 2)
        for (int o = 0; o < ob.owners; ++o) ob.keep[o] = (ob.b[o + 1] - ob.b[o]) / 2;
      run_on_pool_affine(ob.owners, ob.b, task, kind == 2 ? ob.keep : nullptr);
    }
    if (finished.load() != n) ++out.returned_early;
    for (int t = 0; t < n; ++t)
      if (runs[t].load() != 1) ++out.bad_counts;
    prev_tasks = n;
    ++out.jobs;
  }
  // The last job's stragglers.
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  for (int t = 0; t < prev_tasks; ++t)
    if (runs[t].load() != 1) ++out.late_or_repeated;
  return out;
}

}  // namespace fastmlp
