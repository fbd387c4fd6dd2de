// JSON rendering of responses and chunks (vLLM field names and order).
#include "server/openai_response.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>

#include "tokenizer/tokenizer.h"

namespace tandem {

using ordered = nlohmann::ordered_json;

namespace {

std::string dump(const ordered& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

ordered usage_json(const UsageInfo& u) {
  ordered j;
  j["prompt_tokens"] = u.prompt_tokens;
  j["total_tokens"] = u.prompt_tokens + u.completion_tokens;
  j["completion_tokens"] = u.completion_tokens;
  if (u.cached_tokens) {
    j["prompt_tokens_details"] = {{"cached_tokens", *u.cached_tokens}};
  } else {
    j["prompt_tokens_details"] = nullptr;
  }
  return j;
}

ordered bytes_of(const std::string& s) {
  ordered a = ordered::array();
  for (unsigned char c : s) a.push_back(static_cast<int>(c));
  return a;
}

}  // namespace

OpenAiResponseBuilder::OpenAiResponseBuilder(ApiEndpoint endpoint, std::string id, int64_t created, std::string model,
                                             const Tokenizer* tokenizer, bool with_logprobs,
                                             std::vector<int32_t> stop_token_ids)
    : endpoint_(endpoint),
      id_(std::move(id)),
      created_(created),
      model_(std::move(model)),
      tokenizer_(tokenizer),
      with_logprobs_(with_logprobs),
      stop_token_ids_(std::move(stop_token_ids)),
      chunk_prefix_(header_json_prefix(endpoint_ == ApiEndpoint::kChatCompletions ? "chat.completion.chunk"
                                                                                     : "text_completion")) {}

std::string OpenAiResponseBuilder::header_json_prefix(std::string_view object) const {
  std::string out = "{\"id\":";
  out += dump(ordered(id_));
  out += ",\"object\":";
  out += dump(ordered(std::string(object)));
  out += ",\"created\":";
  out += std::to_string(created_);
  out += ",\"model\":";
  out += dump(ordered(model_));
  out += ',';
  return out;
}

std::string OpenAiResponseBuilder::with_prefix(const std::string& prefix, const ordered& rest) {
  std::string body = dump(rest);  // {"choices":...}: never empty, so there is a member after the prefix
  std::string out;
  out.reserve(prefix.size() + body.size());
  out += prefix;
  out.append(body, 1);
  return out;
}

std::string OpenAiResponseBuilder::token_string(int32_t id) const {
  if (tokenizer_) {
    int32_t one[1] = {id};
    return tokenizer_->decode(std::span<const int32_t>(one, 1), /*skip_special_tokens=*/false);
  }
  return "token_id:" + std::to_string(id);
}

static ordered stop_reason_json(const std::optional<std::string>& stop_reason, const std::vector<int32_t>& stop_ids) {
  if (!stop_reason) return nullptr;
  int32_t v = 0;
  auto [p, ec] = std::from_chars(stop_reason->data(), stop_reason->data() + stop_reason->size(), v);
  if (ec == std::errc() && p == stop_reason->data() + stop_reason->size() &&
      std::find(stop_ids.begin(), stop_ids.end(), v) != stop_ids.end()) {
    return v;
  }
  return *stop_reason;
}

std::string OpenAiResponseBuilder::role_chunk() const {
  ordered j;
  ordered choice;
  choice["index"] = 0;
  choice["delta"] = {{"role", "assistant"}, {"content", ""}};
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = nullptr;
  j["choices"] = ordered::array({choice});
  return with_prefix(chunk_prefix_, j);
}

ordered OpenAiResponseBuilder::logprobs_json(std::span<const TokenLogprob> logprobs) {
  if (!with_logprobs_ || logprobs.empty()) return nullptr;
  if (endpoint_ == ApiEndpoint::kChatCompletions) {
    ordered content = ordered::array();
    for (const auto& t : logprobs) {
      std::string tok = token_string(t.token_id);
      ordered e{{"token", tok}, {"logprob", t.logprob}, {"bytes", bytes_of(tok)}};
      ordered tops = ordered::array();
      for (const auto& [id, l] : t.top) {
        std::string s = token_string(id);
        tops.push_back(ordered{{"token", s}, {"logprob", l}, {"bytes", bytes_of(s)}});
      }
      e["top_logprobs"] = std::move(tops);
      content.push_back(std::move(e));
    }
    return ordered{{"content", std::move(content)}};
  }
  ordered offsets = ordered::array(), token_lps = ordered::array(), tokens = ordered::array(), tops = ordered::array();
  for (const auto& t : logprobs) {
    std::string tok = token_string(t.token_id);
    offsets.push_back(text_offset_);
    text_offset_ += static_cast<int64_t>(tok.size());
    token_lps.push_back(t.logprob);
    tokens.push_back(tok);
    ordered top = ordered::object();
    for (const auto& [id, l] : t.top) top[token_string(id)] = l;
    tops.push_back(std::move(top));
  }
  return ordered{{"text_offset", std::move(offsets)},
                 {"token_logprobs", std::move(token_lps)},
                 {"tokens", std::move(tokens)},
                 {"top_logprobs", std::move(tops)}};
}

std::string OpenAiResponseBuilder::delta_chunk(std::string_view text, std::span<const TokenLogprob> logprobs,
                                               std::optional<FinishReason> finish,
                                               const std::optional<std::string>& stop_reason,
                                               const std::optional<UsageInfo>& usage) {
  bool chat = endpoint_ == ApiEndpoint::kChatCompletions;
  ordered j;
  ordered choice;
  choice["index"] = 0;
  ordered lp = logprobs_json(logprobs);
  if (chat) {
    ordered delta = ordered::object();
    if (!text.empty() || !finish) delta["content"] = std::string(text);
    choice["delta"] = std::move(delta);
    choice["logprobs"] = std::move(lp);
  } else {
    choice["text"] = std::string(text);
    choice["logprobs"] = std::move(lp);
  }
  choice["finish_reason"] = finish ? ordered(std::string(finish_reason_name(*finish))) : ordered(nullptr);
  choice["stop_reason"] = stop_reason_json(stop_reason, stop_token_ids_);
  j["choices"] = ordered::array({std::move(choice)});
  if (usage) j["usage"] = usage_json(*usage);
  return with_prefix(chunk_prefix_, j);
}

std::string OpenAiResponseBuilder::usage_chunk(const UsageInfo& usage) const {
  ordered j;
  j["choices"] = ordered::array();
  j["usage"] = usage_json(usage);
  return with_prefix(chunk_prefix_, j);
}

std::string OpenAiResponseBuilder::full_response(std::string_view text, std::span<const TokenLogprob> logprobs,
                                                 FinishReason finish, const std::optional<std::string>& stop_reason,
                                                 const UsageInfo& usage,
                                                 const std::optional<std::string>& kv_transfer_params_json) {
  bool chat = endpoint_ == ApiEndpoint::kChatCompletions;
  ordered lp = logprobs_json(logprobs);
  ordered j;
  ordered choice;
  choice["index"] = 0;
  if (chat) {
    choice["message"] = {{"role", "assistant"}, {"content", std::string(text)}, {"tool_calls", ordered::array()}};
    choice["logprobs"] = std::move(lp);
  } else {
    choice["text"] = std::string(text);
    choice["logprobs"] = std::move(lp);
  }
  choice["finish_reason"] = std::string(finish_reason_name(finish));
  choice["stop_reason"] = stop_reason_json(stop_reason, stop_token_ids_);
  j["choices"] = ordered::array({std::move(choice)});
  j["usage"] = usage_json(usage);
  j["system_fingerprint"] = nullptr;
  if (kv_transfer_params_json) {
    ordered kv = ordered::parse(*kv_transfer_params_json, nullptr, false);
    j["kv_transfer_params"] = kv.is_discarded() ? ordered(nullptr) : std::move(kv);
  } else {
    j["kv_transfer_params"] = nullptr;
  }
  return with_prefix(header_json_prefix(chat ? "chat.completion" : "text_completion"), j);
}

}  // namespace tandem
