// KvTransferConfig: the parsed --kv-transfer-config (a JSON string or a YAML/JSON file), which makes an
// engine a disaggregation producer (prefill), consumer (decode) or both. Keys (vLLM spellings in
// parentheses are accepted as aliases):
//   role (kv_role): producer|consumer|both (kv_producer|kv_consumer|kv_both; also prefill|decode)
//   side_channel_host (kv_ip), side_channel_port (kv_port; 0 = ephemeral), advertise_host
//   transport: auto|tcp|cuda_ipc;  lease_duration_s;  transfer_timeout_s
//   kv_load_failure_policy: recompute|fail;  num_transfer_threads;  engine_id
//   kv_connector: TandemConnector (NixlConnector accepted)
// See examples/disagg_prefill/configs/*.yaml and docs/disaggregation.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "engine/kv_connector.h"

namespace tandem {

enum class KvTransferRole { kProducer, kConsumer, kBoth };
enum class TransportKind { kAuto, kTcp, kCudaIpc };

struct KvTransferConfig {
  KvTransferRole role = KvTransferRole::kBoth;
  std::string side_channel_host = "127.0.0.1";  // where this engine's side channel listens
  int side_channel_port = 0;                    // 0: an ephemeral port
  std::string advertise_host;                   // what peers connect to; empty: side_channel_host
                                                // (or this machine's name when that is a wildcard)
  TransportKind transport = TransportKind::kAuto;
  std::chrono::milliseconds lease_duration{30000};
  std::chrono::milliseconds transfer_timeout{10000};
  KvLoadFailurePolicy failure_policy = KvLoadFailurePolicy::kRecompute;
  int num_transfer_threads = 4;  // consumer: loads handled concurrently
  std::string engine_id;         // empty: the engine's own id

  bool is_producer() const { return role != KvTransferRole::kConsumer; }
  bool is_consumer() const { return role != KvTransferRole::kProducer; }
};

std::string_view kv_transfer_role_name(KvTransferRole role);  // "producer", "consumer", "both"
std::string_view transport_kind_name(TransportKind kind);     // "auto", "tcp", "cuda_ipc"

// `spec` is JSON text (starts with '{') or a path to a YAML/JSON file. Unknown keys and bad values are
// errors naming the key.
Result<KvTransferConfig> parse_kv_transfer_config(std::string_view spec);

}  // namespace tandem
