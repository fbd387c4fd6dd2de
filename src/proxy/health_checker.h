// HealthChecker: polls GET /health of every instance every `interval` (each check under `timeout`) on
// one upstream shard, and ejects / readmits instances in the registry accordingly.
#pragma once

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <vector>

#include "proxy/instance_registry.h"
#include "proxy/proxy_metrics.h"
#include "proxy/upstream_pool.h"

namespace tandem::proxy {

class HealthChecker {
 public:
  HealthChecker(UpstreamPool& pool, size_t shard, InstanceRegistry& registry, ProxyMetrics& metrics,
                std::chrono::milliseconds interval, std::chrono::milliseconds timeout);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Runs a first round at once, then one every interval. Call start/stop from one controlling thread,
  // stop before the pool stops (idempotent).
  void start();
  // Stops the timer and waits (bounded) until no check callback can run any more.
  void stop();

 private:
  struct State;
  std::shared_ptr<State> state_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace tandem::proxy
