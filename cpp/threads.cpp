// A small persistent pool. Each job publishes a (generation, helper count) word; workers spin on
// it for a short while after each job before sleeping on a condition variable, because a futex
// wake-up costs 10-50 us on a VM, as much as a whole small-layer GEMM. Tasks are claimed from a
// generation-tagged atomic counter, so uneven tasks balance themselves, and the caller waits
// only for the tasks to finish: it never waits for a helper that has not been scheduled. One job
// runs at a time (a mutex serialises callers from different Python threads).
//
// fork(): the child inherits the pool's memory but none of its threads. If another thread was
// inside a job at that moment, the child inherited job_mutex_ locked by a thread that no longer
// exists and its first parallel call hung forever (measured: 48 of 100 multiprocessing "fork"
// children hung while a second thread was predicting). pthread_atfork handlers therefore hold
// the pool's locks across fork (no job, no sleeping worker half-way through its lock) and give
// the child a fresh pool, whose workers start on its first parallel call.
#include "threads.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define FASTMLP_HAVE_ATFORK 1
#endif
#if defined(__linux__)
#include <sched.h>  // cpu_set_t, sched_getaffinity (cross_core_round_trip_ns)
#endif

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define FASTMLP_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define FASTMLP_PAUSE() asm volatile("yield")
#else
#define FASTMLP_PAUSE() ((void)0)
#endif

namespace fastmlp {
namespace {

std::atomic<bool> g_pool_delays{false};

int default_threads() {
  if (const char* env = std::getenv("FASTMLP_NUM_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v >= 1 && v <= 1024) return static_cast<int>(v);
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

// How long an idle worker spins before sleeping: long enough to cover the gap between the
// kernels of one training step, short enough not to burn a core between Python calls.
constexpr auto kSpin = std::chrono::microseconds(200);

class Pool {
 public:
  static Pool& get() { return *slot(); }

  int threads() const { return n_threads_.load(); }
  void set_threads(int n) {
    std::lock_guard<std::mutex> job_lock(job_mutex_);
    n_threads_.store(std::max(1, n));
  }

  void run(std::ptrdiff_t n_tasks, const std::function<void(std::ptrdiff_t)>& fn) {
    run_job(n_tasks, fn, 0, nullptr, nullptr);
  }

  void run_affine(int n_owners, const std::ptrdiff_t* bounds,
                  const std::function<void(std::ptrdiff_t)>& fn, const std::ptrdiff_t* keep) {
    run_job(bounds[n_owners], fn, n_owners, bounds, keep);
  }

 private:
  // n_owners == 0: tasks claimed in order from next_; otherwise from the owners' ranges.
  void run_job(std::ptrdiff_t n_tasks, const std::function<void(std::ptrdiff_t)>& fn,
               int n_owners, const std::ptrdiff_t* bounds, const std::ptrdiff_t* keep) {
    std::lock_guard<std::mutex> job_lock(job_mutex_);
    const int helpers = static_cast<int>(std::min<std::ptrdiff_t>(
        n_threads_.load() - 1, n_owners ? n_owners - 1 : n_tasks - 1));
    grow(helpers);
    const uint64_t gen = (job_word_.load() >> 16) + 1;
    fn_ = &fn;
    // A plain job's claims stop at its own task count, read with its generation in one word
    // (see work); an affine job takes no claim from next_ at all.
    plain_limit_.store(tag(gen) | static_cast<uint64_t>(n_owners ? 0 : n_tasks),
                       std::memory_order_relaxed);
    error_ = nullptr;
    done_.store(0, std::memory_order_relaxed);
    // Owners past the helpers (a pool smaller than the ranges) are served by stealing: their
    // ranges stay unclaimed at the front, so their kept tasks are taken too.
    keeps_.store(keep != nullptr, std::memory_order_relaxed);
    for (int j = 0; j < n_owners; ++j) {
      first_[j].store(static_cast<uint64_t>(bounds[j]), std::memory_order_relaxed);
      kept_end_[j].store(static_cast<uint64_t>(bounds[j] + (keep ? keep[j] : 0)),
                         std::memory_order_relaxed);
    }
    for (int j = 0; j < n_owners; ++j)
      ranges_[j].word.store(tag(gen) | (static_cast<uint64_t>(bounds[j]) << 16) |
                                static_cast<uint64_t>(bounds[j + 1]),
                            std::memory_order_relaxed);
    n_owners_.store(n_owners, std::memory_order_relaxed);
    next_.store(tag(gen), std::memory_order_release);
    // Publish the job: generation in the high bits, helper count in the low 16, read atomically
    // together so a late worker can never pair one job's generation with another's count.
    job_word_.store((gen << 16) | static_cast<uint64_t>(helpers));
    if (sleepers_.load() > 0) {
      std::lock_guard<std::mutex> lk(sleep_mutex_);
      cv_.notify_all();
    }
    work(gen, 0);
    // Wait for the tasks, not for the helpers: a helper the OS has not scheduled yet (another
    // process holds its core) must not stall the call; the caller then simply runs every task.
    // Kept tasks of an owner that stopped claiming (preempted) are taken over after kStall.
    Stall stall;
    for (int i = 1; done_.load(std::memory_order_acquire) < n_tasks; ++i) {
      FASTMLP_PAUSE();
      if (keep && (i & 63) == 0) take_over_stalled(gen, n_owners, stall);
      if ((i & 1023) == 0) std::this_thread::yield();
    }
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

  explicit Pool(int n_threads) : n_threads_(n_threads) {}

  static Pool*& slot() {
    // Leaked on purpose: joining threads from a static destructor at interpreter exit can
    // deadlock. Replaced only in a fork child, which has a single thread at that moment.
    static Pool* pool = first_pool();
    return pool;
  }

  static Pool* first_pool() {
#ifdef FASTMLP_HAVE_ATFORK
    pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
#endif
    return new Pool(default_threads());
  }

  // Same order as run() (job, then sleep), so the handler cannot deadlock with a caller; it
  // waits at most for the job in flight, which always finishes.
  static void before_fork() {
    Pool& p = get();
    p.job_mutex_.lock();
    p.sleep_mutex_.lock();
  }
  static void after_fork_in_parent() {
    Pool& p = get();
    p.sleep_mutex_.unlock();
    p.job_mutex_.unlock();
  }
  // The old pool (its workers gone, its locks held) is leaked: a few hundred bytes per fork.
  // The child keeps the parent's thread count.
  static void after_fork_in_child() { slot() = new Pool(get().threads()); }

  void grow(int want) {
    while (static_cast<int>(workers_.size()) < want) {
      int id = static_cast<int>(workers_.size());
      // The generation is read here, before the caller publishes its job: a thread that read it
      // itself after starting could see the new job's generation, think it done, and never help.
      const uint64_t seen_gen = job_word_.load() >> 16;
      workers_.emplace_back([this, id, seen_gen] { loop(id, seen_gen); });
      workers_.back().detach();
    }
  }

  // The task counter carries the job's generation in its high 32 bits, so a helper that wakes
  // late, after its job finished and the next one began, can never claim a task of the wrong job
  // (the compare-exchange fails on the tag) nor call the wrong function.
  static uint64_t tag(uint64_t gen) { return (gen & 0xffffffffull) << 32; }

  // The test hook of set_pool_delays: give the core away at a claim's race points.
  static void maybe_delay() {
    if (g_pool_delays.load(std::memory_order_relaxed)) std::this_thread::yield();
  }

  void run_task(std::ptrdiff_t t) {
    try {
      (*fn_)(t);
    } catch (...) {
      std::lock_guard<std::mutex> lk(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
    done_.fetch_add(1, std::memory_order_acq_rel);
  }

  // Affine jobs: range j's word is tag(gen) | lo << 16 | hi. The owner claims lo (front), others
  // claim hi - 1 (back), both by compare-exchange, so every task runs exactly once. Others leave
  // the kept tasks [first, kept_end) alone once the owner has claimed (lo past first), unless
  // take_all (the caller taking over a stalled owner).
  bool claim_from(int j, uint64_t gen, bool front, std::ptrdiff_t* task, bool take_all = false) {
    uint64_t v = ranges_[j].word.load(std::memory_order_acquire);
    for (;;) {
      if ((v & ~0xffffffffull) != tag(gen)) return false;  // another job's range
      const uint64_t lo = (v >> 16) & 0xffff, hi = v & 0xffff;
      if (lo >= hi) return false;
      // Read after the tag check: a word of this job's tag was stored after these.
      if (!front && !take_all && keeps_.load(std::memory_order_relaxed) &&
          lo != first_[j].load(std::memory_order_relaxed) &&
          hi <= kept_end_[j].load(std::memory_order_relaxed))
        return false;
      const uint64_t nv = front ? v + (1ull << 16) : v - 1;
      if (ranges_[j].word.compare_exchange_weak(v, nv, std::memory_order_acq_rel,
                                                std::memory_order_acquire)) {
        *task = static_cast<std::ptrdiff_t>(front ? lo : hi - 1);
        return true;
      }
    }
  }

  void work_affine(uint64_t gen, int id, int n_owners) {
    std::ptrdiff_t t;
    if (id < n_owners)
      while (claim_from(id, gen, true, &t)) run_task(t);
    for (int d = 1; d < n_owners; ++d) {
      const int j = (id + d) % n_owners;
      while (claim_from(j, gen, false, &t)) run_task(t);
    }
  }

  // Per range: the front (lo) last seen and since when, for the caller's stall check.
  struct Stall {
    uint64_t lo[kMaxOwners];
    std::chrono::steady_clock::time_point since[kMaxOwners];
    bool seen[kMaxOwners] = {false};
  };
  static constexpr auto kStall = std::chrono::microseconds(200);

  // Takes one task from the back of each range whose front has not moved for kStall.
  void take_over_stalled(uint64_t gen, int n_owners, Stall& st) {
    const auto now = std::chrono::steady_clock::now();
    for (int j = 1; j < std::min(n_owners, kMaxOwners); ++j) {
      const uint64_t v = ranges_[j].word.load(std::memory_order_acquire);
      if ((v & ~0xffffffffull) != tag(gen)) continue;
      const uint64_t lo = (v >> 16) & 0xffff, hi = v & 0xffff;
      if (lo >= hi) continue;
      if (!st.seen[j] || st.lo[j] != lo) {
        st.seen[j] = true;
        st.lo[j] = lo;
        st.since[j] = now;
        continue;
      }
      std::ptrdiff_t t;
      if (now - st.since[j] > kStall && claim_from(j, gen, false, &t, true)) run_task(t);
    }
  }

  // A helper may come late: its job done, and the next one being set up or running. Every claim
  // it makes is then refused by the generation tags, in either mode and whichever job's mode it
  // read. The task count it compares with must be its own job's too: read separately, the next
  // job's larger count once let a late helper claim the index just past its job's last task
  // from a counter the next job had not yet reset, then run that task of the next job (whose
  // function was already set), which the next job ran again; the caller, counting one task
  // too many, returned before its last task had finished. Seen in training as a rare wrong
  // step, and plausibly the rare crashes (bench/NOTES.md, 2026-12-07); pool_self_check with
  // delays catches it in a second.
  void work(uint64_t gen, int id) {
    maybe_delay();
    const int n_owners = n_owners_.load(std::memory_order_acquire);
    if (n_owners > 0) {
      work_affine(gen, id, std::min(n_owners, kMaxOwners));
      return;
    }
    const uint64_t limit = plain_limit_.load(std::memory_order_acquire);
    if ((limit & ~0xffffffffull) != tag(gen)) return;  // another job's count: not ours to help
    const uint64_t n_tasks = limit & 0xffffffffull;  // 0 for an affine job
    maybe_delay();
    uint64_t v = next_.load(std::memory_order_acquire);
    for (;;) {
      if ((v & ~0xffffffffull) != tag(gen)) return;  // a later job: not ours to help
      const uint64_t t = v & 0xffffffffull;
      if (t >= n_tasks) return;
      maybe_delay();
      if (!next_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel,
                                       std::memory_order_acquire))
        continue;
      run_task(static_cast<std::ptrdiff_t>(t));
      v = next_.load(std::memory_order_acquire);
    }
  }

  uint64_t wait_for_job(uint64_t seen_gen) {
    auto start = std::chrono::steady_clock::now();
    for (int i = 0;; ++i) {
      uint64_t w = job_word_.load();
      if ((w >> 16) != seen_gen) return w;
      FASTMLP_PAUSE();
      if ((i & 255) == 255 && std::chrono::steady_clock::now() - start > kSpin) break;
    }
    std::unique_lock<std::mutex> lk(sleep_mutex_);
    sleepers_.fetch_add(1);
    uint64_t w;
    cv_.wait(lk, [&] { w = job_word_.load(); return (w >> 16) != seen_gen; });
    sleepers_.fetch_sub(1);
    return w;
  }

  void loop(int id, uint64_t seen_gen) {
    for (;;) {
      uint64_t w = wait_for_job(seen_gen);
      seen_gen = w >> 16;
      if (id >= static_cast<int>(w & 0xffff)) continue;  // not needed for this job
      work(seen_gen, id + 1);
    }
  }

  std::atomic<int> n_threads_;
  std::vector<std::thread> workers_;
  std::mutex job_mutex_, sleep_mutex_, error_mutex_;
  std::condition_variable cv_;
  const std::function<void(std::ptrdiff_t)>* fn_ = nullptr;
  // tag(generation) | task count of the current plain job (0 for an affine one); read by late
  // helpers while a new job writes it: atomic.
  std::atomic<uint64_t> plain_limit_{0};
  std::atomic<uint64_t> next_{0};   // tag(generation) | index of the next unclaimed task
  std::atomic<std::ptrdiff_t> done_{0};  // tasks finished in the current job
  std::atomic<int> sleepers_{0};
  std::atomic<uint64_t> job_word_{0};
  std::atomic<int> n_owners_{0};
  // One cache line per range: the owners' claims must not contend for one line.
  struct alignas(64) Range {
    std::atomic<uint64_t> word{0};
  };
  Range ranges_[kMaxOwners];
  // The current job's kept tasks per range: [first_, kept_end_); written before the job is
  // published and read by its workers after they see it (atomic: a late worker of the last
  // job may read them while the next job writes them; its claims then fail on the tag or on its
  // ranges being empty, whatever it read).
  std::atomic<uint64_t> first_[kMaxOwners] = {}, kept_end_[kMaxOwners] = {};
  std::atomic<bool> keeps_{false};
  std::exception_ptr error_;
};

}  // namespace

namespace {
thread_local int t_serial_depth = 0;
}

SerialScope::SerialScope() { ++t_serial_depth; }
SerialScope::~SerialScope() { --t_serial_depth; }

void set_pool_delays(bool on) { g_pool_delays.store(on); }

int num_threads() { return t_serial_depth > 0 ? 1 : Pool::get().threads(); }
void set_num_threads(int n) { Pool::get().set_threads(std::min(n, 0xffff)); }

void run_on_pool(std::ptrdiff_t n_tasks, const std::function<void(std::ptrdiff_t)>& fn) {
  // The claim counter holds a task index in 32 bits: bigger jobs go in slices.
  constexpr std::ptrdiff_t kMaxJob = 0xffffffffll;
  if (n_tasks <= kMaxJob) {
    Pool::get().run(n_tasks, fn);
    return;
  }
  for (std::ptrdiff_t base = 0; base < n_tasks; base += kMaxJob) {
    const std::function<void(std::ptrdiff_t)> slice = [&](std::ptrdiff_t t) { fn(base + t); };
    Pool::get().run(std::min(kMaxJob, n_tasks - base), slice);
  }
}

void run_on_pool_affine(int n_owners, const std::ptrdiff_t* bounds,
                        const std::function<void(std::ptrdiff_t)>& fn, const std::ptrdiff_t* keep) {
  if (n_owners < 1 || n_owners > kMaxOwners || bounds[n_owners] > 0xffff) {
    run_on_pool(bounds[n_owners], fn);  // outside the range words' limits: plain claiming
    return;
  }
  Pool::get().run_affine(n_owners, bounds, fn, keep);
}

double cross_core_round_trip_ns(int ms) {
#if defined(__linux__)
  cpu_set_t mine;
  if (sched_getaffinity(0, sizeof mine, &mine) != 0 || CPU_COUNT(&mine) < 2 || ms < 1) return 0.0;
  int cpu[2] = {-1, -1};
  for (int c = 0, found = 0; c < CPU_SETSIZE && found < 2; ++c)
    if (CPU_ISSET(c, &mine)) cpu[found++] = c;
  auto pin = [](int c) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(c, &one);
    pthread_setaffinity_np(pthread_self(), sizeof one, &one);
  };
  // 0: the caller's turn to write 1; 1: the echo's turn to write 0; 2: stop.
  alignas(64) std::atomic<int> line{0};
  alignas(64) std::atomic<bool> running{false};
  std::thread echo([&] {
    pin(cpu[1]);
    running.store(true, std::memory_order_release);
    for (;;) {
      int v;
      while ((v = line.load(std::memory_order_acquire)) == 0) FASTMLP_PAUSE();
      if (v == 2) return;
      line.store(0, std::memory_order_release);
    }
  });
  pin(cpu[0]);
  // The clock starts once the echo runs on its CPU, after a warm-up: a vCPU the host had
  // idled takes up to milliseconds to come back (after a 0.15 s sleep, 2 ms probes that timed
  // the thread's start read 140-16000 ns where hot ones read 77-91), and that is not the
  // placement this probe is for.
  while (!running.load(std::memory_order_acquire)) FASTMLP_PAUSE();
  constexpr int kBlock = 256;
  auto block = [&] {
    for (int i = 0; i < kBlock; ++i) {
      line.store(1, std::memory_order_release);
      while (line.load(std::memory_order_acquire) != 0) FASTMLP_PAUSE();
    }
  };
  for (int i = 0; i < 4; ++i) block();
  // The median block: one preempted block (the host took a vCPU away) does not move it.
  std::vector<double> per_trip;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  do {
    const auto t = std::chrono::steady_clock::now();
    block();
    const std::chrono::duration<double, std::nano> dt = std::chrono::steady_clock::now() - t;
    per_trip.push_back(dt.count() / kBlock);
  } while (std::chrono::steady_clock::now() < until);
  line.store(2, std::memory_order_release);
  echo.join();
  pthread_setaffinity_np(pthread_self(), sizeof mine, &mine);
  std::nth_element(per_trip.begin(), per_trip.begin() + per_trip.size() / 2, per_trip.end());
  return per_trip[per_trip.size() / 2];
#else
  (void)ms;
  return 0.0;
#endif
}

int affine_owners(std::ptrdiff_t n_tasks) {
  return static_cast<int>(std::max<std::ptrdiff_t>(
      1, std::min<std::ptrdiff_t>({n_tasks, num_threads(), kMaxOwners})));
}

}  // namespace fastmlp
