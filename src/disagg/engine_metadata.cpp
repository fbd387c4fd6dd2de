// EngineMetadata JSON encoding and the compatibility check (see engine_metadata.h).
#include "disagg/engine_metadata.h"

#include <xxhash.h>

#include <nlohmann/json.hpp>
#include <vector>

namespace tandem {

using nlohmann::json;

std::string EngineMetadata::to_json() const {
  json j = {{"protocol_version", protocol_version},
            {"engine_id", engine_id},
            {"host_id", host_id},
            {"model_fingerprint", model_fingerprint},
            {"tokenizer_fingerprint", tokenizer_fingerprint},
            {"layout",
             {{"num_layers", layout.num_layers},
              {"num_kv_heads", layout.num_kv_heads},
              {"head_dim", layout.head_dim},
              {"block_size", layout.block_size},
              {"dtype", std::string(dtype_name(layout.dtype))},
              {"order", "block,layer,kv,token,head,dim"}}},
            {"pool_base", pool_base},
            {"num_blocks", num_blocks},
            {"block_bytes", block_bytes},
            {"device", std::string(device_name(device))},
            {"device_id", device_id},
            {"agents", agents}};
  return j.dump();
}

Result<EngineMetadata> EngineMetadata::from_json(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgumentError("engine metadata is not a JSON object");
  EngineMetadata m;
  try {
    m.protocol_version = j.at("protocol_version").get<int>();
    if (m.protocol_version != kDisaggProtocolVersion) {
      return FailedPreconditionError("peer speaks disaggregation protocol version {}, this build speaks {}", m.protocol_version,
                                     kDisaggProtocolVersion);
    }
    m.engine_id = j.at("engine_id").get<std::string>();
    m.host_id = j.at("host_id").get<std::string>();
    m.model_fingerprint = j.at("model_fingerprint").get<std::string>();
    m.tokenizer_fingerprint = j.at("tokenizer_fingerprint").get<std::string>();
    const json& l = j.at("layout");
    m.layout.num_layers = l.at("num_layers").get<int>();
    m.layout.num_kv_heads = l.at("num_kv_heads").get<int>();
    m.layout.head_dim = l.at("head_dim").get<int>();
    m.layout.block_size = l.at("block_size").get<int>();
    auto dt = parse_dtype(l.at("dtype").get<std::string>());
    if (!dt.ok()) return InvalidArgumentError("engine metadata: {}", dt.status().message());
    m.layout.dtype = *dt;
    if (l.at("order").get<std::string>() != "block,layer,kv,token,head,dim") {
      return FailedPreconditionError("peer KV layout order '{}' is not block-major", l.at("order").get<std::string>());
    }
    m.pool_base = j.at("pool_base").get<uint64_t>();
    m.num_blocks = j.at("num_blocks").get<int64_t>();
    m.block_bytes = j.at("block_bytes").get<uint64_t>();
    m.device = j.at("device").get<std::string>() == "cuda" ? Device::kCuda : Device::kCpu;
    m.device_id = j.at("device_id").get<int>();
    m.agents = j.at("agents").get<std::map<std::string, std::string>>();
  } catch (const json::exception& e) {
    return InvalidArgumentError("malformed engine metadata: {}", e.what());
  }
  if (m.num_blocks < 0 || m.layout.block_size <= 0) return InvalidArgumentError("engine metadata has a bad pool size");
  return m;
}

Status check_compatible(const EngineMetadata& local, const EngineMetadata& remote) {
  std::vector<std::string> diffs;
  if (local.model_fingerprint != remote.model_fingerprint) diffs.push_back("model config");
  if (local.tokenizer_fingerprint != remote.tokenizer_fingerprint) diffs.push_back("tokenizer");
  if (local.layout.dtype != remote.layout.dtype) {
    diffs.push_back(fmt::format("KV dtype ({} vs {})", dtype_name(local.layout.dtype), dtype_name(remote.layout.dtype)));
  }
  if (local.layout.block_size != remote.layout.block_size) {
    diffs.push_back(fmt::format("block size ({} vs {})", local.layout.block_size, remote.layout.block_size));
  }
  if (local.layout.num_layers != remote.layout.num_layers || local.layout.num_kv_heads != remote.layout.num_kv_heads ||
      local.layout.head_dim != remote.layout.head_dim || local.block_bytes != remote.block_bytes) {
    diffs.push_back("KV layout");
  }
  if (diffs.empty()) return Status::Ok();
  std::string what;
  for (const auto& d : diffs) what += (what.empty() ? "" : ", ") + d;
  return FailedPreconditionError("KV-incompatible peer engine {} (fingerprint {} vs ours {}): {} differ", remote.engine_id,
                                 compatibility_fingerprint(remote), compatibility_fingerprint(local), what);
}

std::string compatibility_fingerprint(const EngineMetadata& m) {
  std::string s = fmt::format("{}|{}|{}|{}|{}x{}x{}|{}", m.model_fingerprint, m.tokenizer_fingerprint,
                              dtype_name(m.layout.dtype), m.layout.block_size, m.layout.num_layers,
                              m.layout.num_kv_heads, m.layout.head_dim, m.block_bytes);
  return fmt::format("{:016x}", XXH3_64bits(s.data(), s.size()));
}

std::string encode_release_notification(std::string_view engine_id, std::string_view request_id) {
  return json{{"type", "release"}, {"engine_id", engine_id}, {"request_id", request_id}}.dump();
}

bool decode_release_notification(std::string_view message, std::string* engine_id, std::string* request_id) {
  json j = json::parse(message, nullptr, false);
  if (!j.is_object() || j.value("type", "") != "release") return false;
  auto e = j.find("engine_id");
  auto r = j.find("request_id");
  if (e == j.end() || r == j.end() || !e->is_string() || !r->is_string()) return false;
  *engine_id = e->get<std::string>();
  *request_id = r->get<std::string>();
  return true;
}

}  // namespace tandem
