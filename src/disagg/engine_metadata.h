// EngineMetadata: what two engines exchange in the handshake (once per producer, on the side
// channel): protocol version, ids, the compatibility fingerprint parts (model config, tokenizer, KV
// dtype, block size, KV layout), the pool's address and size, and each transport agent's metadata.
// Also the side-channel message types and payloads disagg adds on top of the transfer layer.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "backend/kv_cache_view.h"
#include "common/status.h"
#include "disagg/kv_transfer_params.h"
#include "transfer/wire_frame.h"

namespace tandem {

namespace disagg_frame {
inline constexpr uint16_t kHandshake = frame_type::kUserBase + 0;       // JSON EngineMetadata (the asker's)
inline constexpr uint16_t kHandshakeReply = frame_type::kUserBase + 1;  // JSON EngineMetadata (the answerer's)
inline constexpr uint16_t kClaim = frame_type::kUserBase + 2;           // JSON {engine_id, request_id, hold_ms}
inline constexpr uint16_t kClaimReply = frame_type::kUserBase + 3;      // JSON {num_blocks}
}  // namespace disagg_frame

struct EngineMetadata {
  int protocol_version = kDisaggProtocolVersion;
  std::string engine_id;
  std::string host_id;
  std::string model_fingerprint;
  std::string tokenizer_fingerprint;
  KvLayout layout;
  uint64_t pool_base = 0;
  int64_t num_blocks = 0;
  uint64_t block_bytes = 0;
  Device device = Device::kCpu;
  int device_id = 0;
  std::map<std::string, std::string> agents;  // transport kind -> agent metadata blob

  std::string to_json() const;
  static Result<EngineMetadata> from_json(std::string_view text);
};

// OK when `remote` KV can be copied block for block into `local`'s pool; otherwise
// kFailedPrecondition naming each part that differs.
Status check_compatible(const EngineMetadata& local, const EngineMetadata& remote);
// One stable digest of the compatibility-relevant fields (for logs and the params).
std::string compatibility_fingerprint(const EngineMetadata& m);

// Release notification: "the consumer has the KV of request_id; free it".
std::string encode_release_notification(std::string_view engine_id, std::string_view request_id);
// Returns false for notifications that are not release messages.
bool decode_release_notification(std::string_view message, std::string* engine_id, std::string* request_id);

}  // namespace tandem
