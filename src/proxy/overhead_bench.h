// Proxy overhead benchmark (`tandem proxy-bench`): how much latency the proxy adds over calling an
// instance directly, with many concurrent streams on loopback.
//
// A mock instance streams `tokens` chunks per request, the first at once and then one per `interval`,
// each stamped with its send time (steady clock, shared by everything in the process). Clients open
// `streams` concurrent streaming requests (over connections opened beforehand), first straight to the
// mock, then through an in-process ProxyServer (colocated routing, or disaggregated with a second mock
// as the prefill instance and the first as the decode instance), and record TTFT and each chunk's delivery latency (receive time - send time). Printed: p50/p90/p99/max of
// both runs and the difference (the proxy's overhead), and the CPU time each party's threads used per
// chunk (from /proc/self/task, by thread name): the proxy's figure does not depend on how loaded or how
// big the machine is, unlike the latencies, which on a small machine mostly measure the three parties
// queueing for the same cores.
#pragma once

#include <chrono>
#include <string>

#include "common/status.h"

namespace tandem::proxy {

struct OverheadBenchOptions {
  int streams = 2000;
  int tokens = 20;
  std::chrono::milliseconds interval{50};
  // Spreads the stream starts evenly over this long (0: a burst, every request at once): the ramp shows
  // the steady-state overhead at `streams` concurrent streams, the burst the cost of a surge of
  // arrivals. The direct and the proxied runs use the same ramp.
  std::chrono::milliseconds ramp{0};
  // Threads of the three parties, 0: automatic, at least 2 each, and on a 16-core host 4 for the load
  // generator, 4 for the mock and 8 for the proxy (which receives and sends each chunk, so it does the
  // work of both), so that they do not compete for cores.
  int client_threads = 0;
  int proxy_threads = 0;     // the proxy's I/O threads (ProxyConfig::server_threads)
  int proxy_upstream_threads = 0;  // ProxyConfig::upstream_threads (0: the same threads as above)
  int instance_threads = 0;  // the mock instance's I/O threads
  bool disaggregated = false;
  // Runs the proxied phase once before the measured one, so that the proxy's upstream connection pool is
  // warm as in a long-running proxy (cold, every stream also opens connections to the instances).
  bool warmup = true;
};

// Runs both phases and prints the report to stdout.
Status run_overhead_bench(const OverheadBenchOptions& options);

}  // namespace tandem::proxy
