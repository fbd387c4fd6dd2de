// Parsing --kv-transfer-config: JSON text or a YAML/JSON file, one validation path (see the header for
// the keys). YAML is converted to JSON first (plain scalars typed as YAML 1.2 core would).
#include "disagg/kv_transfer_config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "common/file_util.h"

namespace tandem {
namespace {

using nlohmann::json;

json yaml_scalar_to_json(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted: always a string
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  char* end = nullptr;
  errno = 0;
  long long i = std::strtoll(s.c_str(), &end, 10);
  if (errno == 0 && end != nullptr && *end == '\0') return i;
  errno = 0;
  double d = std::strtod(s.c_str(), &end);
  if (errno == 0 && end != nullptr && *end == '\0') return d;
  return s;
}

json yaml_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      json j = json::object();
      for (const auto& kv : n) j[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return j;
    }
    case YAML::NodeType::Sequence: {
      json j = json::array();
      for (const auto& e : n) j.push_back(yaml_to_json(e));
      return j;
    }
    case YAML::NodeType::Scalar:
      return yaml_scalar_to_json(n);
    default:
      return nullptr;
  }
}

Result<std::string> get_string(const json& v, const std::string& key) {
  if (!v.is_string()) return InvalidArgumentError("kv-transfer-config: '{}' must be a string, got {}", key, v.dump());
  return v.get<std::string>();
}

Result<double> get_positive_seconds(const json& v, const std::string& key) {
  if (!v.is_number()) return InvalidArgumentError("kv-transfer-config: '{}' must be a number of seconds, got {}", key, v.dump());
  double s = v.get<double>();
  if (!(s > 0) || !std::isfinite(s) || s > 86400) {
    return InvalidArgumentError("kv-transfer-config: '{}' must be in (0, 86400] seconds, got {}", key, v.dump());
  }
  return s;
}

Result<int64_t> get_int(const json& v, const std::string& key, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) return InvalidArgumentError("kv-transfer-config: '{}' must be an integer, got {}", key, v.dump());
  int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) return InvalidArgumentError("kv-transfer-config: '{}' must be in [{}, {}], got {}", key, lo, hi, x);
  return x;
}

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(seconds * 1000.0)));
}

Result<KvTransferConfig> config_from_json(const json& j, const std::string& source) {
  if (!j.is_object()) return InvalidArgumentError("kv-transfer-config ({}): expected a mapping of keys to values", source);
  KvTransferConfig c;
  for (const auto& [key, v] : j.items()) {
    if (key == "role" || key == "kv_role") {
      TANDEM_ASSIGN_OR_RETURN(std::string s, get_string(v, key));
      if (s == "producer" || s == "kv_producer" || s == "prefill") c.role = KvTransferRole::kProducer;
      else if (s == "consumer" || s == "kv_consumer" || s == "decode") c.role = KvTransferRole::kConsumer;
      else if (s == "both" || s == "kv_both") c.role = KvTransferRole::kBoth;
      else return InvalidArgumentError("kv-transfer-config: '{}' must be producer, consumer or both (or kv_producer, kv_consumer, kv_both), got '{}'", key, s);
    } else if (key == "side_channel_host" || key == "kv_ip") {
      TANDEM_ASSIGN_OR_RETURN(c.side_channel_host, get_string(v, key));
      if (c.side_channel_host.empty()) return InvalidArgumentError("kv-transfer-config: '{}' must not be empty", key);
    } else if (key == "side_channel_port" || key == "kv_port") {
      TANDEM_ASSIGN_OR_RETURN(int64_t p, get_int(v, key, 0, 65535));
      c.side_channel_port = static_cast<int>(p);
    } else if (key == "advertise_host") {
      TANDEM_ASSIGN_OR_RETURN(c.advertise_host, get_string(v, key));
    } else if (key == "transport") {
      TANDEM_ASSIGN_OR_RETURN(std::string s, get_string(v, key));
      if (s == "auto") c.transport = TransportKind::kAuto;
      else if (s == "tcp") c.transport = TransportKind::kTcp;
      else if (s == "cuda_ipc") c.transport = TransportKind::kCudaIpc;
      else return InvalidArgumentError("kv-transfer-config: 'transport' must be auto, tcp or cuda_ipc, got '{}'", s);
    } else if (key == "lease_duration_s") {
      TANDEM_ASSIGN_OR_RETURN(double s, get_positive_seconds(v, key));
      c.lease_duration = to_ms(s);
    } else if (key == "transfer_timeout_s") {
      TANDEM_ASSIGN_OR_RETURN(double s, get_positive_seconds(v, key));
      c.transfer_timeout = to_ms(s);
    } else if (key == "kv_load_failure_policy") {
      TANDEM_ASSIGN_OR_RETURN(std::string s, get_string(v, key));
      if (s == "recompute") c.failure_policy = KvLoadFailurePolicy::kRecompute;
      else if (s == "fail") c.failure_policy = KvLoadFailurePolicy::kFail;
      else return InvalidArgumentError("kv-transfer-config: 'kv_load_failure_policy' must be recompute or fail, got '{}'", s);
    } else if (key == "num_transfer_threads") {
      TANDEM_ASSIGN_OR_RETURN(int64_t n, get_int(v, key, 1, 64));
      c.num_transfer_threads = static_cast<int>(n);
    } else if (key == "engine_id") {
      TANDEM_ASSIGN_OR_RETURN(c.engine_id, get_string(v, key));
    } else if (key == "kv_connector") {
      TANDEM_ASSIGN_OR_RETURN(std::string s, get_string(v, key));
      if (s != "TandemConnector" && s != "NixlConnector") {
        return InvalidArgumentError("kv-transfer-config: 'kv_connector' must be TandemConnector (or NixlConnector), got '{}'", s);
      }
    } else {
      return InvalidArgumentError(
          "kv-transfer-config ({}): unknown key '{}' (known: role, side_channel_host, side_channel_port, advertise_host, "
          "transport, lease_duration_s, transfer_timeout_s, kv_load_failure_policy, num_transfer_threads, engine_id, "
          "kv_connector; vLLM aliases kv_role, kv_ip, kv_port)",
          source, key);
    }
  }
  if (c.lease_duration < c.transfer_timeout) {
    return InvalidArgumentError("kv-transfer-config: lease_duration_s ({} s) must not be shorter than transfer_timeout_s ({} s)",
                                c.lease_duration.count() / 1000.0, c.transfer_timeout.count() / 1000.0);
  }
  return c;
}

}  // namespace

std::string_view kv_transfer_role_name(KvTransferRole role) {
  switch (role) {
    case KvTransferRole::kProducer: return "producer";
    case KvTransferRole::kConsumer: return "consumer";
    case KvTransferRole::kBoth: return "both";
  }
  return "?";
}

std::string_view transport_kind_name(TransportKind kind) {
  switch (kind) {
    case TransportKind::kAuto: return "auto";
    case TransportKind::kTcp: return "tcp";
    case TransportKind::kCudaIpc: return "cuda_ipc";
  }
  return "?";
}

Result<KvTransferConfig> parse_kv_transfer_config(std::string_view spec) {
  size_t first = spec.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return InvalidArgumentError("kv-transfer-config is empty");
  if (spec[first] == '{') {
    json j = json::parse(spec, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return InvalidArgumentError("kv-transfer-config: not valid JSON: {}", spec);
    return config_from_json(j, "JSON");
  }
  std::string path(spec);
  auto read = read_file(path);
  if (!read.ok()) return NotFoundError("kv-transfer-config: cannot open file '{}' (pass JSON text or a YAML/JSON file)", path);
  std::string text = std::move(read).value();
  json j;
  if (path.size() >= 5 && path.substr(path.size() - 5) == ".json") {
    j = json::parse(text, nullptr, false);
    if (j.is_discarded()) return InvalidArgumentError("kv-transfer-config: '{}' is not valid JSON", path);
  } else {
    try {
      YAML::Node root = YAML::Load(text);
      if (root.IsNull()) return InvalidArgumentError("kv-transfer-config: '{}' is empty", path);
      j = yaml_to_json(root);
    } catch (const YAML::Exception& e) {
      return InvalidArgumentError("kv-transfer-config: '{}' is not valid YAML: {}", path, e.what());
    }
  }
  return config_from_json(j, path);
}

}  // namespace tandem
