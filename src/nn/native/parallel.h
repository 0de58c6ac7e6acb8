// The parallel loop the native kernels share: plain std::threads per call (a call is milliseconds or more).
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace {

// Runs fn(t, worker) for t in [0, n) on `threads` threads (the caller's included), handing out items one at a time
// (tiles cost the same, but the machine may be shared).
template <typename F>
void parallel_for(int64_t n, int threads, F fn) {
  std::atomic<int64_t> next{0};
  auto worker = [&](int id) {
    for (int64_t t; (t = next.fetch_add(1)) < n;) fn(t, id);
  };
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; i++) pool.emplace_back(worker, i);
  worker(0);
  for (auto& th : pool) th.join();
}

}  // namespace
