// ProxyConfig: everything `tandem proxy` is told on its command line.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"
#include "proxy/instance_registry.h"

namespace tandem::proxy {

struct ProxyConfig {
  std::string host = "127.0.0.1";
  int port = 9100;  // 0: an ephemeral port
  std::vector<std::string> prefill_urls;
  std::vector<std::string> decode_urls;
  std::vector<std::string> colocated_urls;  // instances doing both phases (no disaggregation)
  RoutingPolicy routing = RoutingPolicy::kLeastLoaded;
  // When set, clients must send "Authorization: Bearer <api_key>" on /v1/*. Either way the client's
  // Authorization header is forwarded to the instances.
  std::string api_key;

  std::chrono::milliseconds connect_timeout{5000};      // TCP connect to an instance
  std::chrono::milliseconds prefill_timeout{300000};    // whole prefill leg (queueing included)
  std::chrono::milliseconds decode_idle_timeout{300000};  // longest silence on a decode leg
  std::chrono::milliseconds request_timeout{6 * 3600 * 1000};  // any one leg, in total
  std::chrono::milliseconds health_interval{2000};
  std::chrono::milliseconds health_timeout{1000};

  // Client-facing HTTP I/O threads. With upstream_threads 0 (the default) they also drive the
  // connections to the instances: a request's upstream calls run on its client connection's thread, so
  // relaying a chunk needs no thread switch. upstream_threads > 0 gives the upstream connections
  // threads of their own instead (one more hop per chunk; only useful to isolate the two sides).
  int server_threads = 4;
  int upstream_threads = 0;
  // See StreamMerger: whether decode usage already counts the producer's first token.
  bool decode_usage_counts_first_token = true;

  // Checks the instance lists (disaggregated: >= 1 prefill and >= 1 decode; or colocated only), the
  // URLs, ports, thread counts and timeouts; the error names the flag.
  Status validate() const;
  bool colocated() const { return !colocated_urls.empty(); }
};

}  // namespace tandem::proxy
