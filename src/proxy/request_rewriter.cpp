// Request rewriting for the prefill and decode legs (see request_rewriter.h).
#include "proxy/request_rewriter.h"

namespace tandem::proxy {

std::string_view api_kind_path(ApiKind kind) {
  return kind == ApiKind::kChat ? "/v1/chat/completions" : "/v1/completions";
}

namespace {

int64_t text_tokens(const std::string& s) { return static_cast<int64_t>((s.size() + 3) / 4); }

int64_t prompt_part_tokens(const json& p) {
  if (p.is_string()) return text_tokens(p.get_ref<const std::string&>());
  if (p.is_array()) {
    // A list of token ids, or a list of prompts (strings or token-id lists).
    int64_t n = 0;
    for (const json& e : p) n += e.is_number() ? 1 : prompt_part_tokens(e);
    return n;
  }
  return 0;
}

int64_t message_tokens(const json& messages) {
  int64_t n = 0;
  if (!messages.is_array()) return 0;
  for (const json& m : messages) {
    if (!m.is_object()) continue;
    n += 4;  // role and template tokens
    auto c = m.find("content");
    if (c == m.end()) continue;
    if (c->is_string()) {
      n += text_tokens(c->get_ref<const std::string&>());
    } else if (c->is_array()) {
      for (const json& part : *c) {
        if (!part.is_object()) continue;
        auto t = part.find("text");
        if (t != part.end() && t->is_string()) n += text_tokens(t->get_ref<const std::string&>());
      }
    }
  }
  return n;
}

std::optional<int64_t> int_field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<int64_t>();
}

}  // namespace

int64_t estimate_prompt_tokens(const json& body, ApiKind kind) {
  int64_t n = 0;
  if (kind == ApiKind::kChat) {
    auto it = body.find("messages");
    if (it != body.end()) n = message_tokens(*it);
  } else {
    auto it = body.find("prompt");
    if (it != body.end()) n = prompt_part_tokens(*it);
  }
  return std::max<int64_t>(n, 1);
}

Result<RequestInfo> inspect_request(const json& body, ApiKind kind) {
  if (!body.is_object()) return InvalidArgumentError("the request body must be a JSON object");
  RequestInfo info;
  info.kind = kind;
  if (kind == ApiKind::kChat) {
    auto it = body.find("messages");
    if (it == body.end() || !it->is_array() || it->empty()) {
      return InvalidArgumentError("'messages' must be a non-empty array");
    }
  } else {
    auto it = body.find("prompt");
    if (it == body.end() || !(it->is_string() || it->is_array())) {
      return InvalidArgumentError("'prompt' must be a string, a list of token ids or a list of prompts");
    }
    // Several prompts in one request (list of strings or list of lists) are served by one instance.
    if (it->is_array() && !it->empty() && !(*it)[0].is_number()) {
      if (it->size() > 1) {
        info.disaggregatable = false;
        info.direct_reason = "several prompts in one request";
      }
    }
  }
  if (auto s = body.find("stream"); s != body.end() && !s->is_null()) {
    if (!s->is_boolean()) return InvalidArgumentError("'stream' must be a boolean");
    info.stream = s->get<bool>();
  }
  if (auto so = body.find("stream_options"); so != body.end() && so->is_object()) {
    info.include_usage = so->value("include_usage", false);
    info.continuous_usage = so->value("continuous_usage_stats", false);
  }
  if (auto m = body.find("model"); m != body.end() && m->is_string()) info.model = m->get<std::string>();
  info.prompt_tokens_estimate = estimate_prompt_tokens(body, kind);
  info.max_tokens = kind == ApiKind::kChat ? int_field(body, "max_completion_tokens") : std::nullopt;
  if (!info.max_tokens) info.max_tokens = int_field(body, "max_tokens");
  if (auto n = int_field(body, "n"); n && *n > 1) {
    info.disaggregatable = false;
    info.direct_reason = "n > 1";
  }
  if (auto b = int_field(body, "best_of"); b && *b > 1) {
    info.disaggregatable = false;
    info.direct_reason = "best_of > 1";
  }
  if (auto e = body.find("echo"); e != body.end() && e->is_boolean() && e->get<bool>()) {
    info.disaggregatable = false;
    info.direct_reason = "echo";
  }
  return info;
}

json make_prefill_body(const json& body, ApiKind kind) {
  json p = body;
  p["max_tokens"] = 1;
  if (kind == ApiKind::kChat) p["max_completion_tokens"] = 1;
  p["stream"] = false;
  p.erase("stream_options");
  if (auto mt = int_field(body, "min_tokens"); mt && *mt > 1) p["min_tokens"] = 1;
  p["kv_transfer_params"] = json{{"do_remote_decode", true}};
  return p;
}

json make_decode_body(const json& body, const json* kv_transfer_params, bool stream) {
  json d = body;
  if (kv_transfer_params != nullptr) {
    d["kv_transfer_params"] = *kv_transfer_params;
  } else {
    d.erase("kv_transfer_params");
  }
  d["stream"] = stream;
  if (stream) {
    json so = d.contains("stream_options") && d["stream_options"].is_object() ? d["stream_options"] : json::object();
    so["include_usage"] = true;
    d["stream_options"] = std::move(so);
  } else {
    d.erase("stream_options");
  }
  return d;
}

std::optional<std::string> rewrite_decode_body_text(std::string_view raw, const json& body,
                                                    const json* kv_transfer_params, bool stream) {
  if (!body.is_object() || body.empty() || body.contains("kv_transfer_params")) return std::nullopt;
  auto s = body.find("stream");
  const bool add_stream = s == body.end();
  if (!add_stream && !(s->is_boolean() && s->get<bool>() == stream)) return std::nullopt;
  bool add_stream_options = false;
  if (auto so = body.find("stream_options"); so != body.end()) {
    // Kept as is only when the instance gets what make_decode_body() would send.
    if (!stream || !so->is_object()) return std::nullopt;
    auto iu = so->find("include_usage");
    if (iu == so->end() || !iu->is_boolean() || !iu->get<bool>()) return std::nullopt;
  } else {
    add_stream_options = stream;
  }
  size_t end = raw.find_last_not_of(" \t\r\n");
  if (end == std::string_view::npos || raw[end] != '}') return std::nullopt;
  std::string out;
  std::string params = kv_transfer_params != nullptr ? kv_transfer_params->dump() : std::string();
  out.reserve(raw.size() + params.size() + 64);
  out.append(raw.substr(0, end));
  if (add_stream) out += stream ? R"(,"stream":true)" : R"(,"stream":false)";
  if (add_stream_options) out += R"(,"stream_options":{"include_usage":true})";
  if (kv_transfer_params != nullptr) {
    out += R"(,"kv_transfer_params":)";
    out += params;
  }
  out += '}';
  return out;
}

bool first_token_ends_request(const RequestInfo& info, const json& prefill_response) {
  if (info.max_tokens && *info.max_tokens <= 1) return true;
  auto choices = prefill_response.find("choices");
  if (choices == prefill_response.end() || !choices->is_array() || choices->empty()) return false;
  const json& c = (*choices)[0];
  auto fr = c.find("finish_reason");
  return fr != c.end() && fr->is_string() && fr->get_ref<const std::string&>() == "stop";
}

Result<json> extract_kv_transfer_params(const json& prefill_response) {
  auto it = prefill_response.find("kv_transfer_params");
  if (it == prefill_response.end() || !it->is_object()) {
    return FailedPreconditionError(
        "the prefill instance's answer has no kv_transfer_params (is it started with a producer "
        "--kv-transfer-config?)");
  }
  return *it;
}

}  // namespace tandem::proxy
