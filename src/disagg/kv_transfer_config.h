// KvTransferConfig: the parsed --kv-transfer-config (a JSON string or a YAML file), which makes an
// engine a disaggregation producer (prefill), consumer (decode) or both.
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
  TransportKind transport = TransportKind::kAuto;
  std::chrono::milliseconds lease_duration{30000};
  std::chrono::milliseconds transfer_timeout{10000};
  KvLoadFailurePolicy failure_policy = KvLoadFailurePolicy::kRecompute;
};

// `spec` is JSON text (starts with '{') or a path to a YAML/JSON file. Unknown keys and bad values are
// errors naming the key.
Result<KvTransferConfig> parse_kv_transfer_config(std::string_view spec);

}  // namespace tandem
