// StreamMerger: one consistent SSE stream out of the prefill and decode legs (see stream_merger.h).
#include "proxy/stream_merger.h"

#include <charconv>

#include "net/sse.h"

namespace tandem::proxy {

std::string_view error_type_for_status(int status) {
  switch (status) {
    case 400: return "BadRequestError";
    case 401: return "AuthenticationError";
    case 404: return "NotFoundError";
    case 408: return "TimeoutError";
    case 413: return "BadRequestError";
    case 429: return "RateLimitError";
    case 502: return "BadGatewayError";
    case 503: return "ServiceUnavailableError";
    case 504: return "GatewayTimeoutError";
    default: return status >= 500 ? "InternalServerError" : "BadRequestError";
  }
}

std::string error_body(std::string_view message, std::string_view type, int code) {
  json e = {{"error", {{"message", message}, {"type", type}, {"param", nullptr}, {"code", code}}}};
  return e.dump();
}

HttpResponse error_response(int status, std::string_view message) {
  return HttpResponse::json(status, error_body(message, error_type_for_status(status), status));
}

StreamMerger::StreamMerger(const RequestInfo& info, bool decode_usage_counts_first_token)
    : info_(info), decode_usage_counts_first_token_(decode_usage_counts_first_token), model_(info.model) {}

Result<std::string> StreamMerger::first_token_events(const json& prefill_response, bool final) {
  auto choices = prefill_response.find("choices");
  if (!prefill_response.is_object() || choices == prefill_response.end() || !choices->is_array() ||
      choices->empty() || !(*choices)[0].is_object()) {
    return InvalidArgumentError("the prefill instance's answer has no choices");
  }
  const json& c = (*choices)[0];
  if (auto it = prefill_response.find("id"); it != prefill_response.end() && it->is_string()) id_ = it->get<std::string>();
  if (auto it = prefill_response.find("created"); it != prefill_response.end() && it->is_number_integer()) {
    created_ = it->get<int64_t>();
  }
  if (auto it = prefill_response.find("model"); it != prefill_response.end() && it->is_string()) {
    model_ = it->get<std::string>();
  }
  if (auto it = prefill_response.find("usage"); it != prefill_response.end() && it->is_object()) prefill_usage_ = *it;

  const bool chat = info_.kind == ApiKind::kChat;
  json logprobs = c.value("logprobs", json(nullptr));
  json finish_reason = final ? c.value("finish_reason", json(nullptr)) : json(nullptr);
  std::string out;
  auto chunk_base = [&] {
    return json{{"id", id_},
                {"object", chat ? "chat.completion.chunk" : "text_completion"},
                {"created", created_},
                {"model", model_}};
  };
  if (chat) {
    std::string content;
    if (auto m = c.find("message"); m != c.end() && m->is_object()) {
      if (auto ct = m->find("content"); ct != m->end() && ct->is_string()) content = ct->get<std::string>();
    }
    // As the servers do: a role chunk first, then the content.
    json role = chunk_base();
    role["choices"] = json::array(
        {{{"index", 0}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"logprobs", nullptr},
          {"finish_reason", nullptr}}});
    out += sse_data(role.dump());
    json first = chunk_base();
    first["choices"] = json::array(
        {{{"index", 0}, {"delta", {{"content", content}}}, {"logprobs", logprobs}, {"finish_reason", finish_reason}}});
    if (final && c.contains("stop_reason")) first["choices"][0]["stop_reason"] = c["stop_reason"];
    if (info_.continuous_usage && prefill_usage_) first["usage"] = *prefill_usage_;
    out += sse_data(first.dump());
  } else {
    json first = chunk_base();
    first["choices"] = json::array({{{"index", 0},
                                     {"text", c.value("text", std::string())},
                                     {"logprobs", logprobs},
                                     {"finish_reason", finish_reason}}});
    if (final && c.contains("stop_reason")) first["choices"][0]["stop_reason"] = c["stop_reason"];
    if (info_.continuous_usage && prefill_usage_) first["usage"] = *prefill_usage_;
    out += sse_data(first.dump());
  }
  first_token_sent_ = true;
  if (final) out += finish();
  return out;
}

json StreamMerger::adjust_usage(const json& usage) const {
  json u = usage;
  if (first_token_sent_ && !decode_usage_counts_first_token_) {
    if (u.contains("completion_tokens") && u["completion_tokens"].is_number_integer()) {
      u["completion_tokens"] = u["completion_tokens"].get<int64_t>() + 1;
    }
    if (u.contains("total_tokens") && u["total_tokens"].is_number_integer()) {
      u["total_tokens"] = u["total_tokens"].get<int64_t>() + 1;
    }
  }
  return u;
}

json StreamMerger::merged_usage() const {
  if (decode_usage_) return adjust_usage(*decode_usage_);
  if (prefill_usage_) return *prefill_usage_;
  return nullptr;
}

namespace {

// Replaces the string value of the first `pat` (`"key":"`) in `s` (no escapes in the old value); false
// when the key is missing or the value is not a plain string.
bool replace_string_value(std::string& s, std::string_view pat, std::string_view value) {
  size_t k = s.find(pat);
  if (k == std::string::npos) return false;
  size_t b = k + pat.size();
  size_t e = s.find('"', b);
  if (e == std::string::npos || s.find('\\', b) < e) return false;
  s.replace(b, e - b, value);
  return true;
}

// Replaces the integer value of the first `pat` (`"key":`) followed by digits in `s`.
bool replace_int_value(std::string& s, std::string_view pat, int64_t value) {
  size_t k = s.find(pat);
  if (k == std::string::npos) return false;
  size_t b = k + pat.size();
  size_t e = b;
  while (e < s.size() && s[e] >= '0' && s[e] <= '9') ++e;
  if (e == b) return false;
  char digits[24];
  auto [end, ec] = std::to_chars(std::begin(digits), std::end(digits), value);
  s.replace(b, e - b, digits, static_cast<size_t>(end - digits));
  return true;
}

}  // namespace

ChunkKeys scan_chunk_keys(std::string_view data) {
  ChunkKeys k;
  // One pass over the quotes (a find() per key would compare at every quote of the chunk, per key).
  for (size_t q = data.find('"'); q != std::string_view::npos; q = data.find('"', q + 1)) {
    const std::string_view rest = data.substr(q + 1);
    if (!rest.empty()) {
      switch (rest[0]) {
        case 'u': k.usage |= rest.starts_with("usage\""); break;
        case 'e': k.error |= rest.starts_with("error\""); break;
        case 'c': k.empty_choices |= rest.starts_with("choices\":[]"); break;
        case 'r': k.role |= rest.starts_with("role\""); break;
        case 't': k.tool_calls |= rest.starts_with("tool_calls\""); break;
        default: break;
      }
    }
  }
  return k;
}

std::string StreamMerger::decode_event(std::string_view data) {
  if (data == "[DONE]") {
    decode_done_ = true;
    return {};
  }
  // Fast path for the common token chunk (no usage, no role, one line): string edits instead of a JSON
  // parse and dump. Anything unusual takes the general path below.
  if (!id_.empty() && !model_.empty()) {
    const ChunkKeys keys = scan_chunk_keys(data);
    if (!keys.usage && !keys.error && !keys.empty_choices && !keys.tool_calls &&
        data.find('\n') == std::string_view::npos) {
      if (!first_token_sent_) return sse_data(data);  // pass-through
      std::string framed;
      framed.reserve(data.size() + id_.size() + 32);
      framed += "data: ";
      framed += data;
      // Edited in place: the payload is one line (checked above).
      if ((info_.kind != ApiKind::kChat || !keys.role) && replace_string_value(framed, R"("id":")", id_) &&
          replace_int_value(framed, R"("created":)", created_)) {
        framed += "\n\n";
        return framed;
      }
    }
  }
  json j = json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return sse_data(data);  // not ours to judge: relay as is
  auto choices = j.find("choices");
  if (choices == j.end() || !choices->is_array()) return sse_data(data);  // e.g. an error event

  if (id_.empty()) {
    // Pass-through mode: adopt the decode stream's identity for the final usage chunk.
    if (auto it = j.find("id"); it != j.end() && it->is_string()) id_ = it->get<std::string>();
    if (auto it = j.find("created"); it != j.end() && it->is_number_integer()) created_ = it->get<int64_t>();
  }
  if (model_.empty()) {
    if (auto it = j.find("model"); it != j.end() && it->is_string()) model_ = it->get<std::string>();
  }
  if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
    decode_usage_ = *u;
    if (choices->empty()) return {};  // the usage chunk: merged into the one sent by finish()
    if (info_.continuous_usage) {
      *u = adjust_usage(*u);
    } else {
      j.erase("usage");
    }
  }
  if (first_token_sent_) {
    j["id"] = id_;
    j["created"] = created_;
    if (info_.kind == ApiKind::kChat) {
      // The role went out with the first token: drop it here, and drop chunks left with nothing.
      json kept = json::array();
      for (json& ch : *choices) {
        auto d = ch.find("delta");
        if (d != ch.end() && d->is_object()) {
          d->erase("role");
          bool empty_content = !d->contains("content") || (*d)["content"].is_null() ||
                               ((*d)["content"].is_string() && (*d)["content"].get_ref<const std::string&>().empty());
          bool nothing = empty_content && d->size() <= 1 && ch.value("finish_reason", json(nullptr)).is_null() &&
                         ch.value("logprobs", json(nullptr)).is_null();
          if (nothing) continue;
        }
        kept.push_back(std::move(ch));
      }
      if (kept.empty() && !j.contains("usage")) return {};
      j["choices"] = std::move(kept);
    }
  }
  return sse_data(j.dump());
}

std::string StreamMerger::finish() {
  if (finished_) return {};
  finished_ = true;
  std::string out;
  json usage = merged_usage();
  if (info_.include_usage && !usage.is_null()) {
    json chunk = {{"id", id_},
                  {"object", info_.kind == ApiKind::kChat ? "chat.completion.chunk" : "text_completion"},
                  {"created", created_},
                  {"model", model_},
                  {"choices", json::array()},
                  {"usage", usage}};
    out += sse_data(chunk.dump());
  }
  out += kSseDone;
  return out;
}

std::string StreamMerger::error_events(std::string_view message, int code) {
  finished_ = true;
  std::string out = sse_data(error_body(message, error_type_for_status(code), code));
  out += kSseDone;
  return out;
}

}  // namespace tandem::proxy
