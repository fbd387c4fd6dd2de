// ModelConfig parsing (HF config.json, LlamaForCausalLM only), serialization and RoPE frequencies.
// nlohmann::json exceptions are caught here and turned into Status errors naming the file and field.
#include "model/model_config.h"

#include <climits>
#include <cmath>

#include <nlohmann/json.hpp>

#include "common/file_util.h"

namespace tandem {
namespace {

using json = nlohmann::json;

// Reads an optional integer field; absent or null keeps *out.
Status read_int(const json& j, const char* key, const std::string& source, int* out, bool required) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) return InvalidArgumentError("{}: missing required field '{}'", source, key);
    return Status::Ok();
  }
  if (!it->is_number_integer()) return InvalidArgumentError("{}: field '{}' must be an integer, got {}", source, key, it->dump());
  int64_t v = it->get<int64_t>();
  if (v < INT32_MIN || v > INT32_MAX) return InvalidArgumentError("{}: field '{}' = {} is out of range", source, key, v);
  *out = static_cast<int>(v);
  return Status::Ok();
}

Status read_float(const json& j, const char* key, const std::string& source, float* out, bool required) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) return InvalidArgumentError("{}: missing required field '{}'", source, key);
    return Status::Ok();
  }
  if (!it->is_number()) return InvalidArgumentError("{}: field '{}' must be a number, got {}", source, key, it->dump());
  *out = it->get<float>();
  return Status::Ok();
}

Status read_bool(const json& j, const char* key, const std::string& source, bool* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_boolean()) return InvalidArgumentError("{}: field '{}' must be a boolean, got {}", source, key, it->dump());
  *out = it->get<bool>();
  return Status::Ok();
}

// Parses a rope_scaling (legacy) or rope_parameters (transformers >= 5) object. `field` names it in errors.
Status parse_rope(const json& r, const std::string& source, const std::string& field, ModelConfig* c) {
  if (!r.is_object()) return InvalidArgumentError("{}: field '{}' must be an object or null", source, field);
  std::string type = "default";
  for (const char* key : {"rope_type", "type"}) {
    auto it = r.find(key);
    if (it != r.end() && !it->is_null()) {
      if (!it->is_string()) return InvalidArgumentError("{}: field '{}.{}' must be a string", source, field, key);
      type = it->get<std::string>();
      break;
    }
  }
  if (r.contains("rope_theta")) TANDEM_RETURN_IF_ERROR(read_float(r, "rope_theta", source + " " + field, &c->rope_theta, false));
  RopeScaling& s = c->rope_scaling;
  s = RopeScaling{};
  const std::string sub = source + " " + field;
  if (type == "default") {
    s.type = RopeScalingType::kNone;
  } else if (type == "linear") {
    s.type = RopeScalingType::kLinear;
    TANDEM_RETURN_IF_ERROR(read_float(r, "factor", sub, &s.factor, true));
  } else if (type == "llama3") {
    s.type = RopeScalingType::kLlama3;
    TANDEM_RETURN_IF_ERROR(read_float(r, "factor", sub, &s.factor, true));
    TANDEM_RETURN_IF_ERROR(read_float(r, "low_freq_factor", sub, &s.low_freq_factor, true));
    TANDEM_RETURN_IF_ERROR(read_float(r, "high_freq_factor", sub, &s.high_freq_factor, true));
    TANDEM_RETURN_IF_ERROR(read_int(r, "original_max_position_embeddings", sub, &s.original_max_position_embeddings, true));
    if (!(s.high_freq_factor > s.low_freq_factor)) {
      return InvalidArgumentError("{}: {}.high_freq_factor ({}) must exceed low_freq_factor ({})", source, field,
                                  s.high_freq_factor, s.low_freq_factor);
    }
    if (s.original_max_position_embeddings <= 0) {
      return InvalidArgumentError("{}: {}.original_max_position_embeddings must be positive", source, field);
    }
  } else {
    return InvalidArgumentError("{}: field '{}' has unsupported rope type '{}' (supported: default, linear, llama3)",
                                source, field, type);
  }
  if (s.type != RopeScalingType::kNone && !(s.factor > 0.0f)) {
    return InvalidArgumentError("{}: {}.factor must be positive, got {}", source, field, s.factor);
  }
  return Status::Ok();
}

Status parse_config(const json& j, const std::string& source, ModelConfig* c) {
  if (!j.is_object()) return InvalidArgumentError("{}: expected a JSON object", source);
  auto arch = j.find("architectures");
  if (arch == j.end() || !arch->is_array() || arch->empty() || !(*arch)[0].is_string()) {
    return InvalidArgumentError("{}: missing or invalid field 'architectures' (expected [\"LlamaForCausalLM\"])", source);
  }
  c->architecture = (*arch)[0].get<std::string>();
  if (c->architecture != "LlamaForCausalLM") {
    return InvalidArgumentError("{}: field 'architectures': unsupported architecture '{}' (supported: LlamaForCausalLM)",
                                source, c->architecture);
  }
  TANDEM_RETURN_IF_ERROR(read_int(j, "vocab_size", source, &c->vocab_size, true));
  TANDEM_RETURN_IF_ERROR(read_int(j, "hidden_size", source, &c->hidden_size, true));
  TANDEM_RETURN_IF_ERROR(read_int(j, "intermediate_size", source, &c->intermediate_size, true));
  TANDEM_RETURN_IF_ERROR(read_int(j, "num_hidden_layers", source, &c->num_layers, true));
  TANDEM_RETURN_IF_ERROR(read_int(j, "num_attention_heads", source, &c->num_heads, true));
  c->num_kv_heads = c->num_heads;
  TANDEM_RETURN_IF_ERROR(read_int(j, "num_key_value_heads", source, &c->num_kv_heads, false));
  for (auto [name, v] : {std::pair{"vocab_size", c->vocab_size}, {"hidden_size", c->hidden_size},
                         {"intermediate_size", c->intermediate_size}, {"num_hidden_layers", c->num_layers},
                         {"num_attention_heads", c->num_heads}, {"num_key_value_heads", c->num_kv_heads}}) {
    if (v <= 0) return InvalidArgumentError("{}: field '{}' must be positive, got {}", source, name, v);
  }
  if (c->num_heads % c->num_kv_heads != 0) {
    return InvalidArgumentError("{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", source,
                                c->num_heads, c->num_kv_heads);
  }
  c->head_dim = 0;
  TANDEM_RETURN_IF_ERROR(read_int(j, "head_dim", source, &c->head_dim, false));
  if (c->head_dim == 0) {
    if (c->hidden_size % c->num_heads != 0) {
      return InvalidArgumentError("{}: hidden_size ({}) is not divisible by num_attention_heads ({}) and no head_dim is set",
                                  source, c->hidden_size, c->num_heads);
    }
    c->head_dim = c->hidden_size / c->num_heads;
  }
  if (c->head_dim <= 0 || c->head_dim % 2 != 0) {
    return InvalidArgumentError("{}: field 'head_dim' must be positive and even, got {}", source, c->head_dim);
  }
  c->rms_norm_eps = 1e-6f;  // LlamaConfig default
  TANDEM_RETURN_IF_ERROR(read_float(j, "rms_norm_eps", source, &c->rms_norm_eps, false));
  if (!(c->rms_norm_eps > 0.0f)) return InvalidArgumentError("{}: field 'rms_norm_eps' must be positive", source);
  c->rope_theta = 10000.0f;
  TANDEM_RETURN_IF_ERROR(read_float(j, "rope_theta", source, &c->rope_theta, false));
  c->rope_scaling = RopeScaling{};
  if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null()) {
    TANDEM_RETURN_IF_ERROR(parse_rope(*it, source, "rope_scaling", c));
  } else if (auto it2 = j.find("rope_parameters"); it2 != j.end() && !it2->is_null()) {
    TANDEM_RETURN_IF_ERROR(parse_rope(*it2, source, "rope_parameters", c));
  }
  if (!(c->rope_theta > 0.0f)) return InvalidArgumentError("{}: field 'rope_theta' must be positive", source);
  c->max_position_embeddings = 2048;
  TANDEM_RETURN_IF_ERROR(read_int(j, "max_position_embeddings", source, &c->max_position_embeddings, false));
  if (c->max_position_embeddings <= 0) return InvalidArgumentError("{}: field 'max_position_embeddings' must be positive", source);
  c->tie_word_embeddings = false;
  TANDEM_RETURN_IF_ERROR(read_bool(j, "tie_word_embeddings", source, &c->tie_word_embeddings));

  for (const char* key : {"attention_bias", "mlp_bias"}) {
    bool b = false;
    TANDEM_RETURN_IF_ERROR(read_bool(j, key, source, &b));
    if (b) return InvalidArgumentError("{}: field '{}' = true is not supported", source, key);
  }
  if (auto it = j.find("hidden_act"); it != j.end() && !it->is_null()) {
    if (!it->is_string() || it->get<std::string>() != "silu") {
      return InvalidArgumentError("{}: field 'hidden_act' must be \"silu\", got {}", source, it->dump());
    }
  }
  c->torch_dtype = DType::kF32;  // transformers' default when unset
  for (const char* key : {"torch_dtype", "dtype"}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (!it->is_string()) return InvalidArgumentError("{}: field '{}' must be a string", source, key);
    auto dt = parse_dtype(it->get<std::string>());
    if (!dt.ok() || (*dt != DType::kF32 && *dt != DType::kF16 && *dt != DType::kBF16)) {
      return InvalidArgumentError("{}: field '{}' has unsupported dtype {}", source, key, it->dump());
    }
    c->torch_dtype = *dt;
    break;
  }
  c->eos_token_ids.clear();
  if (auto it = j.find("eos_token_id"); it != j.end() && !it->is_null()) {
    if (it->is_number_integer()) {
      c->eos_token_ids.push_back(it->get<int>());
    } else if (it->is_array()) {
      for (const auto& e : *it) {
        if (!e.is_number_integer()) return InvalidArgumentError("{}: field 'eos_token_id' must hold integers", source);
        c->eos_token_ids.push_back(e.get<int>());
      }
    } else {
      return InvalidArgumentError("{}: field 'eos_token_id' must be an integer or a list", source);
    }
  }
  c->bos_token_id = -1;
  TANDEM_RETURN_IF_ERROR(read_int(j, "bos_token_id", source, &c->bos_token_id, false));
  return Status::Ok();
}

}  // namespace

Result<ModelConfig> ModelConfig::from_json(const std::string& text, const std::string& source) {
  ModelConfig c;
  try {
    json j = json::parse(text);
    TANDEM_RETURN_IF_ERROR(parse_config(j, source, &c));
  } catch (const json::exception& e) {
    return InvalidArgumentError("{}: invalid JSON: {}", source, e.what());
  }
  return c;
}

Result<ModelConfig> ModelConfig::from_file(const std::filesystem::path& config_json) {
  auto text = read_file(config_json);
  if (!text.ok()) {
    if (text.status().code() == StatusCode::kNotFound) return NotFoundError("cannot open model config {}", config_json.string());
    return IoErrorError("error reading {}", config_json.string());
  }
  return from_json(*text, config_json.string());
}

std::string ModelConfig::to_json() const {
  json j;
  j["architectures"] = {architecture};
  j["model_type"] = "llama";
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  j["mlp_bias"] = false;
  j["hidden_act"] = "silu";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_layers;
  j["num_attention_heads"] = num_heads;
  j["num_key_value_heads"] = num_kv_heads;
  j["head_dim"] = head_dim;
  j["rms_norm_eps"] = static_cast<double>(rms_norm_eps);
  j["rope_theta"] = static_cast<double>(rope_theta);
  j["max_position_embeddings"] = max_position_embeddings;
  j["initializer_range"] = 0.02;
  j["pretraining_tp"] = 1;
  j["use_cache"] = true;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["torch_dtype"] = std::string(dtype_name(torch_dtype));
  switch (rope_scaling.type) {
    case RopeScalingType::kNone: j["rope_scaling"] = nullptr; break;
    case RopeScalingType::kLinear:
      j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", static_cast<double>(rope_scaling.factor)}};
      break;
    case RopeScalingType::kLlama3:
      j["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", static_cast<double>(rope_scaling.factor)},
                           {"low_freq_factor", static_cast<double>(rope_scaling.low_freq_factor)},
                           {"high_freq_factor", static_cast<double>(rope_scaling.high_freq_factor)},
                           {"original_max_position_embeddings", rope_scaling.original_max_position_embeddings}};
      break;
  }
  if (bos_token_id >= 0) j["bos_token_id"] = bos_token_id;
  if (eos_token_ids.size() == 1) {
    j["eos_token_id"] = eos_token_ids[0];
  } else if (!eos_token_ids.empty()) {
    j["eos_token_id"] = eos_token_ids;
  }
  return j.dump(2) + "\n";
}

// Mirrors transformers' modeling_rope_utils in fp32: default inv_freq = 1 / base^(arange(0, D, 2) / D);
// linear divides by factor; llama3 smooths between inv_freq / factor (long wavelengths) and inv_freq
// (short wavelengths).
std::vector<float> ModelConfig::rope_inv_freq() const {
  const int half = head_dim / 2;
  std::vector<float> inv(half);
  for (int i = 0; i < half; ++i) {
    float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    float p = static_cast<float>(std::pow(static_cast<double>(rope_theta), static_cast<double>(exponent)));
    inv[i] = 1.0f / p;
  }
  if (rope_scaling.type == RopeScalingType::kLinear) {
    for (float& f : inv) f = f / rope_scaling.factor;
  } else if (rope_scaling.type == RopeScalingType::kLlama3) {
    const float factor = rope_scaling.factor;
    const float lo = rope_scaling.low_freq_factor, hi = rope_scaling.high_freq_factor;
    const float old_len = static_cast<float>(rope_scaling.original_max_position_embeddings);
    const float low_freq_wavelen = old_len / lo;
    const float high_freq_wavelen = old_len / hi;
    const float two_pi = static_cast<float>(2.0 * M_PI);
    for (float& f : inv) {
      float wavelen = two_pi / f;
      float scaled = wavelen > low_freq_wavelen ? f / factor : f;
      bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
      if (medium) {
        float smooth = (old_len / wavelen - lo) / (hi - lo);
        scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
      }
      f = scaled;
    }
  }
  return inv;
}

std::string ModelConfig::fingerprint() const {
  std::string rope = "none";
  if (rope_scaling.type == RopeScalingType::kLinear) {
    rope = fmt::format("linear:{}", rope_scaling.factor);
  } else if (rope_scaling.type == RopeScalingType::kLlama3) {
    rope = fmt::format("llama3:{}:{}:{}:{}", rope_scaling.factor, rope_scaling.low_freq_factor,
                       rope_scaling.high_freq_factor, rope_scaling.original_max_position_embeddings);
  }
  return fmt::format("{}|vocab={}|hidden={}|inter={}|layers={}|heads={}|kv_heads={}|head_dim={}|eps={}|theta={}|rope={}|tie={}",
                     architecture, vocab_size, hidden_size, intermediate_size, num_layers, num_heads, num_kv_heads,
                     head_dim, rms_norm_eps, rope_theta, rope, tie_word_embeddings ? 1 : 0);
}

int64_t ModelConfig::num_params() const {
  const int64_t h = hidden_size, v = vocab_size, d = head_dim;
  const int64_t attn = h * (num_heads * d) + 2 * h * (num_kv_heads * d) + (num_heads * d) * h;
  const int64_t mlp = 3 * h * static_cast<int64_t>(intermediate_size);
  const int64_t per_layer = attn + mlp + 2 * h;
  return v * h * (tie_word_embeddings ? 1 : 2) + num_layers * per_layer + h;
}

}  // namespace tandem
