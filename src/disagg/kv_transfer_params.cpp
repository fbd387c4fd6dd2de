// kv_transfer_params parsing and serialization (see kv_transfer_params.h).
#include "disagg/kv_transfer_params.h"

#include <nlohmann/json.hpp>

namespace tandem {

using nlohmann::json;

namespace {

bool present(const json& j, const char* key) { return j.contains(key) && !j.at(key).is_null(); }

Status read_bool(const json& j, const char* key, bool* out) {
  if (!present(j, key)) return Status::Ok();
  if (!j.at(key).is_boolean()) return InvalidArgumentError("kv_transfer_params.{} must be a boolean", key);
  *out = j.at(key).get<bool>();
  return Status::Ok();
}

Status read_string(const json& j, const char* key, std::string* out) {
  if (!present(j, key)) return Status::Ok();
  if (!j.at(key).is_string()) return InvalidArgumentError("kv_transfer_params.{} must be a string", key);
  *out = j.at(key).get<std::string>();
  return Status::Ok();
}

template <typename Int>
Status read_int(const json& j, const char* key, Int* out, int64_t lo, int64_t hi) {
  if (!present(j, key)) return Status::Ok();
  if (!j.at(key).is_number_integer()) return InvalidArgumentError("kv_transfer_params.{} must be an integer", key);
  int64_t v = j.at(key).get<int64_t>();
  if (v < lo || v > hi) return InvalidArgumentError("kv_transfer_params.{} = {} is out of range", key, v);
  *out = static_cast<Int>(v);
  return Status::Ok();
}

}  // namespace

Result<KvTransferParams> parse_kv_transfer_params(std::string_view json_text) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgumentError("kv_transfer_params is not valid JSON");
  if (!j.is_object()) return InvalidArgumentError("kv_transfer_params must be a JSON object");
  KvTransferParams p;
  TANDEM_RETURN_IF_ERROR(read_bool(j, "do_remote_decode", &p.do_remote_decode));
  TANDEM_RETURN_IF_ERROR(read_bool(j, "do_remote_prefill", &p.do_remote_prefill));
  if (p.do_remote_decode && p.do_remote_prefill) {
    return InvalidArgumentError("kv_transfer_params: do_remote_decode and do_remote_prefill cannot both be true");
  }
  TANDEM_RETURN_IF_ERROR(read_int(j, "protocol_version", &p.protocol_version, 0, 1 << 20));
  if (!p.do_remote_prefill) return p;
  if (p.protocol_version != kDisaggProtocolVersion) {
    return InvalidArgumentError("kv_transfer_params.protocol_version {} is not supported (this build speaks {})",
                                p.protocol_version, kDisaggProtocolVersion);
  }
  TANDEM_RETURN_IF_ERROR(read_string(j, "remote_engine_id", &p.remote_engine_id));
  TANDEM_RETURN_IF_ERROR(read_string(j, "remote_request_id", &p.remote_request_id));
  TANDEM_RETURN_IF_ERROR(read_string(j, "remote_host", &p.remote_host));
  TANDEM_RETURN_IF_ERROR(read_int(j, "remote_port", &p.remote_port, 1, 65535));
  TANDEM_RETURN_IF_ERROR(read_int(j, "num_prompt_tokens", &p.num_prompt_tokens, 1, INT32_MAX));
  TANDEM_RETURN_IF_ERROR(read_int(j, "first_token_id", &p.first_token_id, 0, INT32_MAX));
  TANDEM_RETURN_IF_ERROR(read_int(j, "block_size", &p.block_size, 0, 1 << 20));
  TANDEM_RETURN_IF_ERROR(read_int(j, "lease_expires_in_ms", &p.lease_expires_in_ms, INT64_MIN, INT64_MAX));
  for (const char* key : {"remote_engine_id", "remote_request_id", "remote_host", "remote_port", "remote_block_ids",
                          "num_prompt_tokens", "first_token_id"}) {
    if (!present(j, key)) return InvalidArgumentError("kv_transfer_params with do_remote_prefill lacks {}", key);
  }
  const json& ids = j.at("remote_block_ids");
  if (!ids.is_array()) return InvalidArgumentError("kv_transfer_params.remote_block_ids must be an array of integers");
  p.remote_block_ids.reserve(ids.size());
  for (const json& id : ids) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
      return InvalidArgumentError("kv_transfer_params.remote_block_ids must hold non-negative integers");
    }
    p.remote_block_ids.push_back(static_cast<int32_t>(id.get<int64_t>()));
  }
  if (p.remote_engine_id.empty() || p.remote_request_id.empty() || p.remote_host.empty()) {
    return InvalidArgumentError("kv_transfer_params: remote_engine_id, remote_request_id and remote_host must not be empty");
  }
  return p;
}

std::string serialize_kv_transfer_params(const KvTransferParams& p) {
  json j = {{"do_remote_prefill", p.do_remote_prefill},
            {"do_remote_decode", p.do_remote_decode},
            {"remote_engine_id", p.remote_engine_id},
            {"remote_request_id", p.remote_request_id},
            {"remote_host", p.remote_host},
            {"remote_port", p.remote_port},
            {"remote_block_ids", p.remote_block_ids},
            {"num_prompt_tokens", p.num_prompt_tokens},
            {"first_token_id", p.first_token_id},
            {"block_size", p.block_size},
            {"lease_expires_in_ms", p.lease_expires_in_ms},
            {"protocol_version", p.protocol_version},
            {"tp_size", 1}};
  return j.dump();
}

}  // namespace tandem
