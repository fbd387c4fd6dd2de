// ProxyRequest: one client request through the proxy, as a state machine on one upstream shard thread:
//
//   prefill leg (max_tokens 1, stream false) --ok--> first token to the client at once --> decode leg
//        | connection error / 5xx / timeout: retry once on another prefill instance, then
//        +--> decode leg without kv_transfer_params (the decode instance prefills itself)
//   decode leg (original request + kv_transfer_params): relayed through StreamMerger
//        | failure before the first relayed byte: retry on another decode instance
//        | failure after it: an SSE error event ends the stream
//
// Colocated routing and requests that cannot be split go straight to the decode leg. A client
// disconnect cancels the upstream call in flight (closing its connection makes the instance abort).
// All state is touched only on the shard thread; the response writer is thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "net/http_client.h"
#include "net/response_writer.h"
#include "net/sse.h"
#include "proxy/instance_registry.h"
#include "proxy/proxy_config.h"
#include "proxy/proxy_metrics.h"
#include "proxy/request_rewriter.h"
#include "proxy/stream_merger.h"
#include "proxy/upstream_pool.h"

namespace tandem::proxy {

// What every request shares: owned by the ProxyServer, outlives all requests.
struct ProxyContext {
  const ProxyConfig& config;
  InstanceRegistry& registry;
  ProxyMetrics& metrics;
  UpstreamPool& pool;
};

class ProxyRequest : public std::enable_shared_from_this<ProxyRequest> {
 public:
  // `forward_headers`: headers sent on both legs (Authorization, X-Request-Id).
  // `raw_body`: the client's body text, whose parse is `body` (the decode leg's body is edited from it).
  ProxyRequest(ProxyContext& ctx, size_t shard, RequestInfo info, json body, std::string raw_body,
               std::vector<net::HttpHeader> forward_headers, std::shared_ptr<ResponseWriter> writer);

  // Both on the shard thread.
  void start();
  void abort_for_disconnect();

 private:
  static constexpr int kMaxPrefillAttempts = 2;
  static constexpr int kMaxDecodeAttempts = 2;

  void start_prefill();
  void on_prefill_complete(const Status& st, size_t instance);
  void prefill_leg_failed(size_t instance, const std::string& why, bool eject);
  void fall_back_to_self_prefill(const std::string& why);

  void start_decode();
  void on_decode_body(std::string_view piece);
  void on_decode_complete(const Status& st, size_t instance);
  void decode_leg_failed(size_t instance, const std::string& why, int client_status, bool eject);

  void ensure_stream_started();
  void write(std::string bytes);
  void reply_json(int status, std::string body);
  void reply_error(int status, const std::string& message);
  void observe_first_byte();
  void finish_success();
  void finish_with_error();

  // Leg bookkeeping: the ejection watch of the leg's instance (see UpstreamPool::watch).
  void end_leg(size_t instance);
  void on_instance_ejected(size_t instance);
  // Common handling of a transport-level error; returns true when the request is over (shutdown).
  bool stopped_by_shutdown(const Status& st);

  std::shared_ptr<net::HttpCall> send(size_t instance, std::string body, std::chrono::milliseconds idle_timeout,
                                      std::chrono::milliseconds total_timeout, net::HttpResponseCallbacks cb);

  ProxyContext& ctx_;
  const size_t shard_;
  const RequestInfo info_;
  const json body_;
  const std::string raw_body_;
  const std::vector<net::HttpHeader> forward_headers_;
  std::shared_ptr<ResponseWriter> writer_;
  StreamMerger merger_;

  bool finished_ = false;
  bool stream_started_ = false;
  bool decode_relayed_ = false;  // bytes of the decode leg reached the client: no more retries
  std::shared_ptr<net::HttpCall> call_;  // the upstream call in flight
  uint64_t watch_id_ = 0;
  bool ejected_ = false;  // the current leg was cancelled because its instance failed a health check
  InstanceLease lease_;
  std::vector<size_t> prefill_excluded_;
  std::vector<size_t> decode_excluded_;
  int prefill_attempts_ = 0;
  int decode_attempts_ = 0;

  // Per-leg response state.
  int upstream_status_ = 0;
  std::string upstream_body_;  // the whole body (non-streaming legs, error answers)
  SseParser sse_;
  bool got_decode_byte_ = false;

  std::optional<json> kv_transfer_params_;  // from the prefill leg
  std::optional<json> prefill_response_;

  bool first_leg_sent_ = false;   // queue_seconds observed
  bool first_byte_sent_ = false;  // first_byte_seconds observed
  TimePoint t_received_;
  TimePoint t_prefill_sent_;
  TimePoint t_prefill_done_;
  TimePoint t_first_decode_byte_;
};

}  // namespace tandem::proxy
