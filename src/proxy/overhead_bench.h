// Proxy overhead benchmark (`tandem proxy-bench`): how much latency the proxy adds over calling an
// instance directly, with many concurrent streams on loopback.
//
// A mock instance streams `tokens` chunks per request, the first at once and then one per `interval`,
// each stamped with its send time (steady clock, shared by everything in the process). Clients open
// `streams` concurrent streaming requests, first straight to the mock, then through an in-process
// ProxyServer (colocated routing, or disaggregated with the mock as prefill and decode instance), and
// record TTFT and each chunk's delivery latency (receive time - send time). Printed: p50/p90/p99/max of
// both runs and the difference (the proxy's overhead).
#pragma once

#include <chrono>
#include <string>

#include "common/status.h"

namespace tandem::proxy {

struct OverheadBenchOptions {
  int streams = 2000;
  int tokens = 20;
  std::chrono::milliseconds interval{50};
  int client_threads = 2;
  int proxy_threads = 2;     // client-facing and upstream threads of the proxy, each
  int instance_threads = 2;  // the mock instance's I/O threads
  bool disaggregated = false;
};

// Runs both phases and prints the report to stdout.
Status run_overhead_bench(const OverheadBenchOptions& options);

}  // namespace tandem::proxy
