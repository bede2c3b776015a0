// A small persistent pool: workers sleep on a condition variable between jobs and grab task
// indices from an atomic counter, so uneven tasks balance themselves. Only one job runs at a
// time (a mutex serialises callers from different Python threads).
#include "threads.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace fastmlp {
namespace {

int default_threads() {
  if (const char* env = std::getenv("FASTMLP_NUM_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end != env && *end == '\0' && v >= 1 && v <= 1024) return static_cast<int>(v);
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

class Pool {
 public:
  static Pool& get() {
    // Leaked on purpose: joining threads from a static destructor at interpreter exit can deadlock.
    static Pool* pool = new Pool();
    return *pool;
  }

  int threads() const { return n_threads_.load(); }
  void set_threads(int n) {
    std::lock_guard<std::mutex> job_lock(job_mutex_);
    n_threads_.store(std::max(1, n));
    grow(n_threads_.load() - 1);
  }

  void run(std::ptrdiff_t n_tasks, const std::function<void(std::ptrdiff_t)>& fn) {
    std::lock_guard<std::mutex> job_lock(job_mutex_);
    int helpers = std::min<std::ptrdiff_t>(n_threads_.load() - 1, n_tasks - 1);
    grow(helpers);
    {
      std::lock_guard<std::mutex> lk(m_);
      fn_ = &fn;
      n_tasks_ = n_tasks;
      next_.store(0);
      active_helpers_ = helpers;
      pending_ = helpers;
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    work();
    std::unique_lock<std::mutex> lk(m_);
    done_cv_.wait(lk, [&] { return pending_ == 0; });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  Pool() : n_threads_(default_threads()) {}

  void grow(int want) {
    while (static_cast<int>(workers_.size()) < want) {
      int id = static_cast<int>(workers_.size());
      workers_.emplace_back([this, id] { loop(id); });
      workers_.back().detach();
    }
  }

  void work() {
    for (;;) {
      std::ptrdiff_t t = next_.fetch_add(1);
      if (t >= n_tasks_) return;
      try {
        (*fn_)(t);
      } catch (...) {
        std::lock_guard<std::mutex> lk(m_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  void loop(int id) {
    unsigned long seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return generation_ != seen; });
        seen = generation_;
        if (id >= active_helpers_) continue;  // not needed for this job
      }
      work();
      std::lock_guard<std::mutex> lk(m_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }

  std::atomic<int> n_threads_;
  std::vector<std::thread> workers_;
  std::mutex job_mutex_;
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(std::ptrdiff_t)>* fn_ = nullptr;
  std::ptrdiff_t n_tasks_ = 0;
  std::atomic<std::ptrdiff_t> next_{0};
  int active_helpers_ = 0;
  int pending_ = 0;
  unsigned long generation_ = 0;
  std::exception_ptr error_;
};

}  // namespace

int num_threads() { return Pool::get().threads(); }
void set_num_threads(int n) { Pool::get().set_threads(n); }

void parallel_for(std::ptrdiff_t n_tasks, const std::function<void(std::ptrdiff_t)>& fn,
                  bool serial) {
  if (n_tasks <= 0) return;
  if (serial || n_tasks == 1 || Pool::get().threads() == 1) {
    for (std::ptrdiff_t t = 0; t < n_tasks; ++t) fn(t);
    return;
  }
  Pool::get().run(n_tasks, fn);
}

}  // namespace fastmlp
