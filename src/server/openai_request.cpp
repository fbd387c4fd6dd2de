// JSON -> OpenAiRequest with type and range checks.
#include "server/openai_request.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>

namespace tandem {

using nlohmann::json;

namespace {

std::string_view type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::string: return "string";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    case json::value_t::number_float: return "number";
    default: return "integer";
  }
}

// Present and not null.
const json* field(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

Status get_bool(const json& obj, const char* key, bool& out) {
  const json* v = field(obj, key);
  if (!v) return Status::Ok();
  if (!v->is_boolean()) return InvalidArgumentError("'{}' must be a boolean, got {}", key, type_name(*v));
  out = v->get<bool>();
  return Status::Ok();
}

Status get_double(const json& obj, const char* key, std::optional<double>& out, double lo, double hi) {
  const json* v = field(obj, key);
  if (!v) return Status::Ok();
  if (!v->is_number()) return InvalidArgumentError("'{}' must be a number, got {}", key, type_name(*v));
  double d = v->get<double>();
  if (!std::isfinite(d) || d < lo || d > hi) {
    return InvalidArgumentError("'{}' must be in [{}, {}], got {}", key, lo, hi, d);
  }
  out = d;
  return Status::Ok();
}

Status get_float(const json& obj, const char* key, float& out, double lo, double hi) {
  std::optional<double> d;
  TANDEM_RETURN_IF_ERROR(get_double(obj, key, d, lo, hi));
  if (d) out = static_cast<float>(*d);
  return Status::Ok();
}

Status get_int(const json& obj, const char* key, std::optional<int64_t>& out, int64_t lo, int64_t hi) {
  const json* v = field(obj, key);
  if (!v) return Status::Ok();
  int64_t i = 0;
  if (v->is_number_integer()) {
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return InvalidArgumentError("'{}' is out of range", key);
    }
    i = v->get<int64_t>();
  } else if (v->is_number_float() && std::floor(v->get<double>()) == v->get<double>() &&
             std::fabs(v->get<double>()) < 9e15) {
    i = static_cast<int64_t>(v->get<double>());  // 16.0 is accepted as 16, like pydantic
  } else {
    return InvalidArgumentError("'{}' must be an integer, got {}", key, type_name(*v));
  }
  if (i < lo || i > hi) return InvalidArgumentError("'{}' must be in [{}, {}], got {}", key, lo, hi, i);
  out = i;
  return Status::Ok();
}

Result<std::vector<int32_t>> token_id_list(const json& arr, std::string_view key) {
  std::vector<int32_t> ids;
  ids.reserve(arr.size());
  for (const auto& t : arr) {
    if (!t.is_number_integer()) return InvalidArgumentError("'{}' must hold integer token ids, got {}", key, type_name(t));
    int64_t id = t.get<int64_t>();
    if (id < 0 || id > std::numeric_limits<int32_t>::max()) {
      return InvalidArgumentError("'{}' holds an invalid token id {}", key, id);
    }
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

Result<json> parse_object(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgumentError("the request body is not valid JSON");
  if (!j.is_object()) return InvalidArgumentError("the request body must be a JSON object, got {}", type_name(j));
  return j;
}

// Fields shared by both endpoints.
Status parse_common(const json& j, OpenAiRequest& r) {
  if (const json* m = field(j, "model")) {
    if (!m->is_string()) return InvalidArgumentError("'model' must be a string, got {}", type_name(*m));
    r.model = m->get<std::string>();
  }
  SamplingParams& s = r.sampling;
  TANDEM_RETURN_IF_ERROR(get_float(j, "temperature", s.temperature, 0.0, 1e6));
  TANDEM_RETURN_IF_ERROR(get_float(j, "top_p", s.top_p, 0.0, 1.0));
  if (const json* v = field(j, "top_p"); v && v->get<double>() <= 0.0) {
    return InvalidArgumentError("'top_p' must be in (0, 1], got {}", v->get<double>());
  }
  std::optional<int64_t> i;
  TANDEM_RETURN_IF_ERROR(get_int(j, "top_k", i, -1, std::numeric_limits<int32_t>::max()));
  if (i) s.top_k = *i <= 0 ? 0 : static_cast<int32_t>(*i);
  TANDEM_RETURN_IF_ERROR(get_float(j, "min_p", s.min_p, 0.0, 1.0));
  i.reset();
  TANDEM_RETURN_IF_ERROR(get_int(j, "seed", i, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()));
  if (i) s.seed = static_cast<uint64_t>(*i);
  TANDEM_RETURN_IF_ERROR(get_float(j, "repetition_penalty", s.repetition_penalty, 1e-6, 1e6));
  TANDEM_RETURN_IF_ERROR(get_float(j, "presence_penalty", s.presence_penalty, -2.0, 2.0));
  TANDEM_RETURN_IF_ERROR(get_float(j, "frequency_penalty", s.frequency_penalty, -2.0, 2.0));
  i.reset();
  TANDEM_RETURN_IF_ERROR(get_int(j, "min_tokens", i, 0, std::numeric_limits<int32_t>::max()));
  if (i) s.min_tokens = static_cast<int32_t>(*i);
  TANDEM_RETURN_IF_ERROR(get_bool(j, "ignore_eos", s.ignore_eos));
  TANDEM_RETURN_IF_ERROR(get_bool(j, "skip_special_tokens", s.skip_special_tokens));
  TANDEM_RETURN_IF_ERROR(get_bool(j, "include_stop_str_in_output", s.include_stop_str_in_output));
  TANDEM_RETURN_IF_ERROR(get_bool(j, "add_special_tokens", r.add_special_tokens));

  if (const json* v = field(j, "stop")) {
    if (v->is_string()) {
      if (!v->get<std::string>().empty()) s.stop.push_back(v->get<std::string>());
    } else if (v->is_array()) {
      for (const auto& e : *v) {
        if (!e.is_string()) return InvalidArgumentError("'stop' must be a string or a list of strings");
        if (!e.get<std::string>().empty()) s.stop.push_back(e.get<std::string>());
      }
    } else {
      return InvalidArgumentError("'stop' must be a string or a list of strings, got {}", type_name(*v));
    }
  }
  if (const json* v = field(j, "stop_token_ids")) {
    if (!v->is_array()) return InvalidArgumentError("'stop_token_ids' must be a list of integers");
    TANDEM_ASSIGN_OR_RETURN(s.stop_token_ids, token_id_list(*v, "stop_token_ids"));
  }

  i.reset();
  TANDEM_RETURN_IF_ERROR(get_int(j, "n", i, 1, 1 << 20));
  if (i && *i != 1) return InvalidArgumentError("'n' must be 1 (tandem generates one choice per request), got {}", *i);
  i.reset();
  TANDEM_RETURN_IF_ERROR(get_int(j, "best_of", i, 1, 1 << 20));
  if (i && *i != 1) return InvalidArgumentError("'best_of' must be 1, got {}", *i);
  if (field(j, "use_beam_search") && j["use_beam_search"].is_boolean() && j["use_beam_search"].get<bool>()) {
    return InvalidArgumentError("'use_beam_search' is not supported");
  }

  TANDEM_RETURN_IF_ERROR(get_bool(j, "stream", r.stream));
  if (const json* v = field(j, "stream_options")) {
    if (!v->is_object()) return InvalidArgumentError("'stream_options' must be an object, got {}", type_name(*v));
    if (!r.stream) return InvalidArgumentError("'stream_options' is only allowed when 'stream' is true");
    TANDEM_RETURN_IF_ERROR(get_bool(*v, "include_usage", r.include_usage));
    TANDEM_RETURN_IF_ERROR(get_bool(*v, "continuous_usage_stats", r.continuous_usage_stats));
  }
  if (const json* v = field(j, "user")) {
    if (!v->is_string()) return InvalidArgumentError("'user' must be a string, got {}", type_name(*v));
    r.user = v->get<std::string>();
  }
  if (const json* v = field(j, "kv_transfer_params")) {
    if (!v->is_object()) return InvalidArgumentError("'kv_transfer_params' must be an object, got {}", type_name(*v));
    r.kv_transfer_params_json = v->dump();
  }
  return Status::Ok();
}

Status parse_max_tokens(const json& j, const char* key, OpenAiRequest& r) {
  std::optional<int64_t> i;
  TANDEM_RETURN_IF_ERROR(get_int(j, key, i, 1, std::numeric_limits<int32_t>::max()));
  if (i) r.max_tokens = static_cast<int32_t>(*i);
  return Status::Ok();
}

Result<std::string> message_content(const json& m, size_t index) {
  auto it = m.find("content");
  if (it == m.end() || it->is_null()) return std::string();
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {  // [{"type": "text", "text": "..."}]
    std::string text;
    for (const auto& part : *it) {
      if (!part.is_object()) return InvalidArgumentError("messages[{}].content parts must be objects", index);
      auto type = part.find("type");
      if (type == part.end() || !type->is_string() || type->get<std::string>() != "text") {
        return InvalidArgumentError("messages[{}].content: only parts of type 'text' are supported", index);
      }
      auto t = part.find("text");
      if (t == part.end() || !t->is_string()) return InvalidArgumentError("messages[{}].content part lacks 'text'", index);
      if (!text.empty()) text += '\n';
      text += t->get<std::string>();
    }
    return text;
  }
  return InvalidArgumentError("messages[{}].content must be a string or a list of parts, got {}", index,
                              type_name(*it));
}

}  // namespace

Result<OpenAiRequest> parse_completion_request(std::string_view body) {
  TANDEM_ASSIGN_OR_RETURN(json j, parse_object(body));
  OpenAiRequest r;
  r.endpoint = ApiEndpoint::kCompletions;
  TANDEM_RETURN_IF_ERROR(parse_common(j, r));
  TANDEM_RETURN_IF_ERROR(parse_max_tokens(j, "max_tokens", r));

  const json* p = field(j, "prompt");
  if (!p) return InvalidArgumentError("'prompt' is required");
  if (p->is_string()) {
    r.prompt_text = p->get<std::string>();
  } else if (p->is_array()) {
    if (p->empty()) return InvalidArgumentError("'prompt' must not be empty");
    const json& first = (*p)[0];
    if (first.is_number_integer()) {
      TANDEM_ASSIGN_OR_RETURN(auto ids, token_id_list(*p, "prompt"));
      r.prompt_token_ids = std::move(ids);
    } else if (p->size() > 1) {
      return InvalidArgumentError("'prompt' holds {} prompts; tandem takes one prompt per request", p->size());
    } else if (first.is_string()) {
      r.prompt_text = first.get<std::string>();
    } else if (first.is_array()) {
      TANDEM_ASSIGN_OR_RETURN(auto ids, token_id_list(first, "prompt"));
      r.prompt_token_ids = std::move(ids);
    } else {
      return InvalidArgumentError("'prompt' must be a string, a list of token ids, or a list of one of those");
    }
  } else {
    return InvalidArgumentError("'prompt' must be a string or a list of token ids, got {}", type_name(*p));
  }
  if (r.prompt_token_ids && r.prompt_token_ids->empty()) return InvalidArgumentError("'prompt' must not be empty");

  TANDEM_RETURN_IF_ERROR(get_bool(j, "echo", r.echo));
  std::optional<int64_t> lp;
  TANDEM_RETURN_IF_ERROR(get_int(j, "logprobs", lp, 0, 20));
  if (lp) r.logprobs = static_cast<int32_t>(*lp);
  if (const json* s = field(j, "suffix")) {
    if (!s->is_string() || !s->get<std::string>().empty()) return InvalidArgumentError("'suffix' is not supported");
  }
  return r;
}

Result<OpenAiRequest> parse_chat_request(std::string_view body) {
  TANDEM_ASSIGN_OR_RETURN(json j, parse_object(body));
  OpenAiRequest r;
  r.endpoint = ApiEndpoint::kChatCompletions;
  r.add_special_tokens = false;
  TANDEM_RETURN_IF_ERROR(parse_common(j, r));
  TANDEM_RETURN_IF_ERROR(parse_max_tokens(j, "max_tokens", r));
  TANDEM_RETURN_IF_ERROR(parse_max_tokens(j, "max_completion_tokens", r));  // the newer name wins
  TANDEM_RETURN_IF_ERROR(get_bool(j, "add_generation_prompt", r.add_generation_prompt));

  const json* msgs = field(j, "messages");
  if (!msgs) return InvalidArgumentError("'messages' is required");
  if (!msgs->is_array()) return InvalidArgumentError("'messages' must be a list, got {}", type_name(*msgs));
  if (msgs->empty()) return InvalidArgumentError("'messages' must not be empty");
  for (size_t i = 0; i < msgs->size(); ++i) {
    const json& m = (*msgs)[i];
    if (!m.is_object()) return InvalidArgumentError("messages[{}] must be an object", i);
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) return InvalidArgumentError("messages[{}].role must be a string", i);
    ChatMessage cm;
    cm.role = role->get<std::string>();
    if (cm.role == "developer") cm.role = "system";
    if (cm.role != "system" && cm.role != "user" && cm.role != "assistant" && cm.role != "tool") {
      return InvalidArgumentError("messages[{}].role '{}' is not one of system, user, assistant, tool", i, cm.role);
    }
    TANDEM_ASSIGN_OR_RETURN(cm.content, message_content(m, i));
    r.messages.push_back(std::move(cm));
  }

  bool want_logprobs = false;
  TANDEM_RETURN_IF_ERROR(get_bool(j, "logprobs", want_logprobs));
  std::optional<int64_t> top;
  TANDEM_RETURN_IF_ERROR(get_int(j, "top_logprobs", top, 0, 20));
  if (top && !want_logprobs) return InvalidArgumentError("'top_logprobs' requires 'logprobs' to be true");
  if (want_logprobs) r.logprobs = top ? static_cast<int32_t>(*top) : 0;
  return r;
}

int32_t default_max_tokens(const OpenAiRequest& request, int32_t prompt_tokens, int32_t max_model_len) {
  int32_t room = std::max<int32_t>(max_model_len - prompt_tokens, 1);
  if (request.endpoint == ApiEndpoint::kCompletions) return std::min<int32_t>(16, room);
  return room;
}

}  // namespace tandem
