// Non-streaming merge of the prefill and decode answers (see response_merger.h).
#include "proxy/response_merger.h"

namespace tandem::proxy {

namespace {

bool has_choice(const json& r) {
  auto c = r.find("choices");
  return r.is_object() && c != r.end() && c->is_array() && !c->empty() && (*c)[0].is_object();
}

std::string string_or_empty(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

void append_array(json& dst, const json& src) {
  if (!src.is_array()) return;
  if (!dst.is_array()) dst = json::array();
  for (const json& e : src) dst.push_back(e);
}

// Completions logprobs {tokens, token_logprobs, top_logprobs, text_offset}: concatenated, the decode
// part's text offsets shifted past the first token's text.
json merge_completion_logprobs(const json& first, const json& rest, size_t first_text_len) {
  if (first.is_null()) return rest;
  if (rest.is_null()) return first;
  json out = first;
  append_array(out["tokens"], rest.value("tokens", json::array()));
  append_array(out["token_logprobs"], rest.value("token_logprobs", json::array()));
  append_array(out["top_logprobs"], rest.value("top_logprobs", json::array()));
  json offsets = rest.value("text_offset", json::array());
  for (json& o : offsets) {
    if (o.is_number_integer()) o = o.get<int64_t>() + static_cast<int64_t>(first_text_len);
  }
  append_array(out["text_offset"], offsets);
  return out;
}

// Chat logprobs {content: [...]}: concatenated.
json merge_chat_logprobs(const json& first, const json& rest) {
  if (first.is_null()) return rest;
  if (rest.is_null()) return first;
  json out = first;
  append_array(out["content"], rest.value("content", json::array()));
  return out;
}

}  // namespace

void strip_internal_fields(json& response) {
  if (response.is_object()) response.erase("kv_transfer_params");
}

json finalize_prefill_only(const json& prefill_response) {
  json out = prefill_response;
  strip_internal_fields(out);
  return out;
}

Result<json> merge_responses(ApiKind kind, const json& prefill_response, const json& decode_response,
                             bool decode_usage_counts_first_token) {
  if (!has_choice(prefill_response)) return InvalidArgumentError("the prefill instance's answer has no choices");
  if (!has_choice(decode_response)) return InvalidArgumentError("the decode instance's answer has no choices");
  const json& pc = prefill_response["choices"][0];
  json out = decode_response;
  strip_internal_fields(out);
  if (auto it = prefill_response.find("id"); it != prefill_response.end()) out["id"] = *it;
  if (auto it = prefill_response.find("created"); it != prefill_response.end()) out["created"] = *it;
  json& dc = out["choices"][0];
  if (kind == ApiKind::kChat) {
    std::string first = pc.contains("message") && pc["message"].is_object() ? string_or_empty(pc["message"], "content")
                                                                            : std::string();
    json& msg = dc["message"];
    if (!msg.is_object()) msg = json{{"role", "assistant"}};
    msg["content"] = first + string_or_empty(msg, "content");
    dc["logprobs"] = merge_chat_logprobs(pc.value("logprobs", json(nullptr)), dc.value("logprobs", json(nullptr)));
  } else {
    std::string first = string_or_empty(pc, "text");
    dc["text"] = first + string_or_empty(dc, "text");
    dc["logprobs"] = merge_completion_logprobs(pc.value("logprobs", json(nullptr)),
                                               dc.value("logprobs", json(nullptr)), first.size());
  }
  if (auto u = out.find("usage"); u != out.end() && u->is_object()) {
    if (!decode_usage_counts_first_token) {
      for (const char* key : {"completion_tokens", "total_tokens"}) {
        if (u->contains(key) && (*u)[key].is_number_integer()) (*u)[key] = (*u)[key].get<int64_t>() + 1;
      }
    }
  } else if (auto pu = prefill_response.find("usage"); pu != prefill_response.end()) {
    out["usage"] = *pu;
  }
  return out;
}

}  // namespace tandem::proxy
