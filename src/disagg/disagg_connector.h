// DisaggKvConnector: tandem's KvConnector for disaggregated prefill/decode (pull model, first token
// from the producer, leases). See docs/disaggregation.md for the protocol.
//
// Producer: on_prefill_finished() pins the prompt's blocks under a lease and returns the
// kv_transfer_params; a consumer's claim (before reading) extends the lease to cover the read; its
// release notification, or the lease's expiry, frees the blocks (reported through poll()).
// Consumer: classify() keeps the request's remote params; start_load() queues a load that a worker
// thread runs: handshake with the producer once (fingerprint check, transport choice), claim, one
// coalesced READ straight into the engine's pool, release notification, loads_finished event. Every
// step runs under the transfer timeout; failures are reported (the engine recomputes or fails).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "disagg/engine_metadata.h"
#include "disagg/kv_transfer_config.h"
#include "disagg/kv_transfer_params.h"
#include "engine/kv_connector.h"
#include "transfer/connection_pool.h"
#include "transfer/side_channel_server.h"
#include "transfer/transfer_agent.h"

namespace tandem {

class DisaggKvConnector : public KvConnector {
 public:
  explicit DisaggKvConnector(KvTransferConfig config);
  ~DisaggKvConnector() override;

  Status initialize(const KvConnectorContext& ctx) override;
  KvLoadFailurePolicy failure_policy() const override { return config_.failure_policy; }
  Result<KvRole> classify(const EngineRequest& request, RemotePrefillInfo* info) override;
  void start_load(const std::string& request_id, std::vector<int32_t> local_block_ids, int first_block) override;
  void cancel_load(const std::string& request_id) override;
  std::string on_prefill_finished(const std::string& request_id, std::span<const int32_t> block_ids,
                                  int32_t num_prompt_tokens, int32_t first_token_id) override;
  void on_request_aborted(const std::string& request_id) override;
  KvConnectorEvents poll() override;
  void wait_for_events(std::chrono::milliseconds timeout) override;
  bool has_pending_work() const override;
  KvConnectorMetrics metrics() const override;
  void shutdown() override;

  // Introspection (tests, logs).
  int side_channel_port() const;
  const std::string& advertise_host() const { return advertise_host_; }
  size_t num_leases() const;
  const EngineMetadata& local_metadata() const { return local_meta_; }

 private:
  struct Lease {
    size_t num_blocks = 0;  // the pinned blocks (the engine frees them when the lease is released)
    TimePoint expires;
  };
  struct Load {
    std::string request_id;
    KvTransferParams params;
    std::vector<int32_t> local_block_ids;
    int first_block = 0;
    TimePoint started;
    std::atomic<bool> cancel{false};
    bool release_only = false;  // the request was aborted before its load started: only free the lease
  };
  struct PeerInfo {
    EngineMetadata meta;
    Status compatible;             // check_compatible result
    TransferAgent* agent = nullptr;
    std::string agent_peer;        // the peer's name in `agent`
  };
  struct PeerSlot {
    std::timed_mutex mu;  // one handshake at a time per peer
    std::optional<PeerInfo> info;
  };

  void worker_loop();
  Status run_load(Load& load);
  Result<PeerInfo> get_peer(const KvTransferParams& p, TimePoint deadline);
  Result<PeerInfo> handshake(const std::string& host, int port, TimePoint deadline);
  // Tells the producer (under kReleaseNotifyTimeout) that its lease may be freed; best effort.
  void notify_release(const KvTransferParams& p, const PeerInfo* peer);
  void finish_load(const std::shared_ptr<Load>& load, Status status, double seconds, uint64_t bytes);
  Status serve_handshake(const Frame& request, FrameConnection& conn);
  Status serve_claim(const Frame& request, FrameConnection& conn);
  void collect_producer_events_locked(KvConnectorEvents& events);
  static std::chrono::milliseconds left(TimePoint deadline);

  KvTransferConfig config_;
  KvConnectorContext ctx_;
  EngineMetadata local_meta_;
  std::string advertise_host_;
  bool initialized_ = false;

  std::shared_ptr<SideChannelServer> server_;
  std::unique_ptr<TransferAgent> tcp_agent_;
  std::unique_ptr<TransferAgent> cuda_ipc_agent_;
  ConnectionPool pool_;  // handshakes, claims

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  // producer
  std::map<std::string, Lease> leases_;
  std::vector<std::string> released_;
  bool notifications_pending_ = false;
  // consumer
  std::map<std::string, std::pair<KvTransferParams, TimePoint>> classified_;
  std::map<std::string, std::shared_ptr<Load>> loads_;
  std::deque<std::shared_ptr<Load>> queue_;
  std::vector<std::pair<std::string, Status>> finished_;
  std::vector<std::thread> workers_;

  std::mutex peers_mu_;
  std::map<std::string, std::shared_ptr<PeerSlot>> peers_;  // by "host:port"

  // metrics (guarded by mu_)
  KvConnectorMetrics metrics_;
};

}  // namespace tandem
