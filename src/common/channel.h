// Channel<T>: a thread-safe multi-producer queue with close() and timed receive. The engine thread
// pushes each request's outputs into that request's channel; an I/O thread pops them. Every wait has a
// timeout, so no reader can hang forever on a dead producer.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>

namespace tandem {

template <typename T>
class Channel {
 public:
  enum class RecvStatus { kOk, kTimeout, kClosed };

  // Returns false if the channel is closed (the value is dropped).
  bool push(T value) {
    std::function<void()> notify;
    {
      std::lock_guard lock(mu_);
      if (closed_) return false;
      q_.push_back(std::move(value));
      notify = on_push_;
    }
    cv_.notify_one();
    if (notify) notify();
    return true;
  }

  // Waits up to `timeout` for a value. kClosed only once the queue is drained.
  RecvStatus pop(T& out, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return !q_.empty() || closed_; })) return RecvStatus::kTimeout;
    if (q_.empty()) return RecvStatus::kClosed;
    out = std::move(q_.front());
    q_.pop_front();
    return RecvStatus::kOk;
  }

  // Non-blocking.
  std::optional<T> try_pop() {
    std::lock_guard lock(mu_);
    if (q_.empty()) return std::nullopt;
    T v = std::move(q_.front());
    q_.pop_front();
    return v;
  }

  void close() {
    std::function<void()> notify;
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      notify = on_push_;
    }
    cv_.notify_all();
    if (notify) notify();
  }

  bool closed() const {
    std::lock_guard lock(mu_);
    return closed_;
  }

  // Optional callback run (outside the lock) after each push and on close; lets an async consumer
  // (an Asio strand) be woken instead of blocking a thread. Set it before producers start.
  void set_on_push(std::function<void()> fn) {
    std::lock_guard lock(mu_);
    on_push_ = std::move(fn);
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<T> q_;
  bool closed_ = false;
  std::function<void()> on_push_;
};

}  // namespace tandem
