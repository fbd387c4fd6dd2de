// The kv_transfer_params JSON object that travels proxy -> producer -> proxy -> consumer (vLLM's
// NixlConnector shape plus tandem's fields; documented in docs/disaggregation.md), and the producer's
// answer. Unknown keys are ignored (vLLM adds e.g. tp_size); JSON nulls count as absent.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace tandem {

inline constexpr int kDisaggProtocolVersion = 1;

struct KvTransferParams {
  bool do_remote_decode = false;   // to a producer: prefill, then hand the KV to a decoder
  bool do_remote_prefill = false;  // to a consumer: the prompt's KV is on the producer below
  std::string remote_engine_id;
  std::string remote_request_id;
  std::string remote_host;
  int remote_port = 0;
  std::vector<int32_t> remote_block_ids;
  int32_t num_prompt_tokens = 0;
  int32_t first_token_id = -1;
  int32_t block_size = 0;           // the producer's (informational; the handshake checks it)
  int64_t lease_expires_in_ms = 0;  // informational
  int protocol_version = kDisaggProtocolVersion;
};

// Parses and validates; a do_remote_prefill object must carry every remote_* field, and errors name
// the offending field.
Result<KvTransferParams> parse_kv_transfer_params(std::string_view json_text);
// The producer's answer (do_remote_prefill: true + everything the consumer needs) as a JSON object.
std::string serialize_kv_transfer_params(const KvTransferParams& params);

}  // namespace tandem
