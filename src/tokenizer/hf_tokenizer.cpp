// HfTokenizer construction from tokenizer.json (+ tokenizer_config.json, generation_config.json), the
// encode/decode pipelines and metadata (see hf_tokenizer.h).
#include "tokenizer/hf_tokenizer.h"

#include <xxhash.h>

#include <algorithm>

#include "tokenizer/utf8.h"

namespace tandem {
namespace {

// tokenizer_config.json tokens are a string or an AddedToken object {"content": ...}.
std::optional<std::string> config_token(const nlohmann::json& config, const char* key) {
  if (!config.is_object()) return std::nullopt;
  auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    return (*it)["content"].get<std::string>();
  }
  return std::nullopt;
}

}  // namespace

Status HfTokenizer::load_post_processor(const nlohmann::json& j, const std::string& where) {
  if (j.is_null()) return Status::Ok();
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return InvalidArgumentError("tokenizer.json: {}.type must be a string", where);
  }
  const std::string type = j["type"].get<std::string>();
  if (type == "ByteLevel") return Status::Ok();  // offsets only
  if (type == "Sequence") {
    if (!j.contains("processors") || !j["processors"].is_array()) {
      return InvalidArgumentError("tokenizer.json: {}.processors must be an array", where);
    }
    for (size_t i = 0; i < j["processors"].size(); ++i) {
      TANDEM_RETURN_IF_ERROR(load_post_processor(j["processors"][i], fmt::format("{}.processors[{}]", where, i)));
    }
    return Status::Ok();
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    for (const char* key : {"cls", "sep"}) {
      if (!j.contains(key) || !j[key].is_array() || j[key].size() != 2 || !j[key][1].is_number_integer()) {
        return InvalidArgumentError("tokenizer.json: {}.{} must be [token, id]", where, key);
      }
    }
    prefix_ids_ = {j["cls"][1].get<int32_t>()};
    suffix_ids_ = {j["sep"][1].get<int32_t>()};
    return Status::Ok();
  }
  if (type != "TemplateProcessing") {
    return InvalidArgumentError(
        "tokenizer.json: {}.type '{}' is not supported (supported: TemplateProcessing, ByteLevel, Sequence, "
        "BertProcessing, RobertaProcessing)",
        where, type);
  }
  if (!j.contains("single") || !j["single"].is_array()) {
    return InvalidArgumentError("tokenizer.json: {}.single must be an array", where);
  }
  const nlohmann::json specials = j.value("special_tokens", nlohmann::json::object());
  prefix_ids_.clear();
  suffix_ids_.clear();
  bool seen_sequence = false;
  for (size_t i = 0; i < j["single"].size(); ++i) {
    const auto& piece = j["single"][i];
    if (piece.contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    if (!piece.contains("SpecialToken") || !piece["SpecialToken"].contains("id") ||
        !piece["SpecialToken"]["id"].is_string()) {
      return InvalidArgumentError("tokenizer.json: {}.single[{}] must be a Sequence or SpecialToken", where, i);
    }
    const std::string name = piece["SpecialToken"]["id"].get<std::string>();
    if (!specials.contains(name) || !specials[name].contains("ids") || !specials[name]["ids"].is_array()) {
      return InvalidArgumentError("tokenizer.json: {}.special_tokens['{}'].ids is missing", where, name);
    }
    for (const auto& id : specials[name]["ids"]) {
      if (!id.is_number_integer()) {
        return InvalidArgumentError("tokenizer.json: {}.special_tokens['{}'].ids must be integers", where, name);
      }
      (seen_sequence ? suffix_ids_ : prefix_ids_).push_back(id.get<int32_t>());
    }
  }
  return Status::Ok();
}

Result<std::shared_ptr<HfTokenizer>> HfTokenizer::create(const nlohmann::json& tj, const nlohmann::json& config,
                                                         const nlohmann::json& generation,
                                                         const TokenizerLoadOptions& options) {
  if (!tj.is_object()) return InvalidArgumentError("tokenizer.json: top level must be an object");
  std::shared_ptr<HfTokenizer> t(new HfTokenizer());
  auto field = [&](const char* key) { return tj.contains(key) ? tj[key] : nlohmann::json(); };

  // Added tokens.
  std::vector<AddedToken> added;
  const nlohmann::json added_json = field("added_tokens");
  if (!added_json.is_null() && !added_json.is_array()) {
    return InvalidArgumentError("tokenizer.json: added_tokens must be an array");
  }
  for (size_t i = 0; i < added_json.size(); ++i) {
    const auto& a = added_json[i];
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || a["id"].get<int64_t>() < 0 ||
        a["id"].get<int64_t>() > INT32_MAX / 2) {
      return InvalidArgumentError("tokenizer.json: added_tokens[{}].id must be a non-negative integer", i);
    }
    if (!a.contains("content") || !a["content"].is_string()) {
      return InvalidArgumentError("tokenizer.json: added_tokens[{}].content must be a string", i);
    }
    AddedToken tok;
    tok.id = a["id"].get<int32_t>();
    tok.content = a["content"].get<std::string>();
    tok.special = a.value("special", false);
    tok.single_word = a.value("single_word", false);
    tok.lstrip = a.value("lstrip", false);
    tok.rstrip = a.value("rstrip", false);
    tok.normalized = a.value("normalized", !tok.special);
    added.push_back(std::move(tok));
  }

  // Pipeline.
  if (!field("normalizer").is_null()) {
    TANDEM_ASSIGN_OR_RETURN(t->normalizer_, Normalizer::from_json(field("normalizer")));
  }
  TANDEM_ASSIGN_OR_RETURN(t->pre_tokenizer_, PreTokenizer::from_json(field("pre_tokenizer")));
  if (!tj.contains("model")) return InvalidArgumentError("tokenizer.json: model is missing");
  TANDEM_ASSIGN_OR_RETURN(t->model_, BpeModel::from_json(tj["model"], t->pre_tokenizer_->byte_level()));
  TANDEM_ASSIGN_OR_RETURN(t->decoder_, TokenDecoder::from_json(field("decoder")));
  TANDEM_RETURN_IF_ERROR(t->load_post_processor(field("post_processor"), "post_processor"));

  // Id table: added tokens take precedence over the vocabulary (as simple_id_to_token does).
  int32_t size = t->model_->vocab_size();
  for (const auto& a : added) size = std::max(size, a.id + 1);
  t->entries_.resize(static_cast<size_t>(size));
  for (int32_t id = 0; id < t->model_->vocab_size(); ++id) {
    std::string_view tok;
    if (t->model_->id_to_token(id, &tok)) {
      t->entries_[id].token = std::string(tok);
      t->entries_[id].present = true;
    }
  }
  std::vector<std::string> special_contents;
  for (const auto& a : added) {
    Entry& e = t->entries_[a.id];
    e.token = a.content;
    e.present = true;
    e.special = e.special || a.special;
    if (a.special) special_contents.push_back(a.content);
  }
  std::sort(special_contents.begin(), special_contents.end());
  const bool pure_byte_level = t->decoder_->is_pure_byte_level();
  const bool byte_fallback = t->decoder_->has_byte_fallback();
  for (Entry& e : t->entries_) {
    if (!e.present) continue;
    e.skip = std::binary_search(special_contents.begin(), special_contents.end(), e.token);
    if (pure_byte_level) e.byte_level = TokenDecoder::byte_level_bytes(e.token);
    e.byte_token = byte_fallback && e.token.size() == 6 && e.token.rfind("<0x", 0) == 0 && e.token[5] == '>';
  }
  t->added_ = std::make_unique<AddedVocabulary>(std::move(added));

  // tokenizer_config.json: BOS/EOS, and LlamaTokenizer's add_bos_token/add_eos_token, which transformers
  // applies on top of tokenizer.json's post-processor.
  if (auto bos = config_token(config, "bos_token")) {
    t->bos_token_ = *bos;
    if (auto id = t->token_to_id(*bos)) t->bos_id_ = *id;
  }
  if (auto eos = config_token(config, "eos_token")) {
    t->eos_token_ = *eos;
    if (auto id = t->token_to_id(*eos)) t->eos_ids_.push_back(*id);
  }
  if (config.is_object()) {
    std::string cls = config.value("tokenizer_class", std::string());
    bool llama_class = cls.find("Llama") != std::string::npos || cls.find("Gemma") != std::string::npos;
    bool has_add_bos = config.contains("add_bos_token") && config["add_bos_token"].is_boolean();
    bool has_add_eos = config.contains("add_eos_token") && config["add_eos_token"].is_boolean();
    if (llama_class && (has_add_bos || has_add_eos)) {
      t->prefix_ids_.clear();
      t->suffix_ids_.clear();
      if (has_add_bos && config["add_bos_token"].get<bool>() && t->bos_id_) t->prefix_ids_.push_back(*t->bos_id_);
      if (has_add_eos && config["add_eos_token"].get<bool>() && !t->eos_ids_.empty()) {
        t->suffix_ids_.push_back(t->eos_ids_[0]);
      }
    }
  }
  if (generation.is_object()) {
    if (!t->bos_id_ && generation.contains("bos_token_id") && generation["bos_token_id"].is_number_integer()) {
      t->bos_id_ = generation["bos_token_id"].get<int32_t>();
    }
    auto eos = generation.find("eos_token_id");
    std::vector<int32_t> gen_eos;
    if (eos != generation.end() && eos->is_number_integer()) gen_eos.push_back(eos->get<int32_t>());
    if (eos != generation.end() && eos->is_array()) {
      for (const auto& e : *eos)
        if (e.is_number_integer()) gen_eos.push_back(e.get<int32_t>());
    }
    for (int32_t e : gen_eos)
      if (std::find(t->eos_ids_.begin(), t->eos_ids_.end(), e) == t->eos_ids_.end()) t->eos_ids_.push_back(e);
  }

  // Chat template.
  if (!options.chat_template_override.empty()) {
    TANDEM_ASSIGN_OR_RETURN(auto ct, ChatTemplate::from_override(options.chat_template_override));
    t->chat_template_ = ct;
  } else if (config.is_object() && config.contains("chat_template")) {
    std::string jinja;
    const auto& ctj = config["chat_template"];
    if (ctj.is_string()) jinja = ctj.get<std::string>();
    if (ctj.is_array()) {  // [{"name": "default", "template": ...}, ...]
      for (const auto& e : ctj)
        if (e.is_object() && e.value("name", std::string()) == "default" && e.contains("template") &&
            e["template"].is_string())
          jinja = e["template"].get<std::string>();
    }
    t->chat_template_ = ChatTemplate::detect(jinja);
    if (!t->chat_template_) {
      t->chat_template_error_ =
          "tokenizer_config.json chat_template matches no supported format (llama3, chatml, llama2, mistral); "
          "pass --chat-template with a format name or a template file";
      if (options.require_known_chat_template) return InvalidArgumentError("{}", t->chat_template_error_);
    }
  } else {
    t->chat_template_error_ =
        "the tokenizer has no chat_template; pass --chat-template (llama3, chatml, llama2, mistral or a file)";
  }

  // Fingerprint: canonical dump (nlohmann objects are key-sorted) of everything that affects ids.
  std::string canon;
  for (const char* key : {"added_tokens", "normalizer", "pre_tokenizer", "model", "post_processor", "decoder"}) {
    canon += key;
    canon += '=';
    canon += field(key).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    canon += '\n';
  }
  canon += fmt::format("prefix={} suffix={} bos={} eos={}", fmt::join(t->prefix_ids_, ","),
                       fmt::join(t->suffix_ids_, ","), t->bos_id_.value_or(-1), fmt::join(t->eos_ids_, ","));
  XXH128_hash_t h = XXH3_128bits(canon.data(), canon.size());
  t->fingerprint_ = fmt::format("{:016x}{:016x}", h.high64, h.low64);
  return t;
}

namespace {
// Texts from this size on are encoded in parallel (below, waking the pool costs more than it saves).
constexpr size_t kParallelEncodeBytes = 16 * 1024;
constexpr int kEncodeThreads = 4;  // the calling thread included
constexpr int kPartsPerThread = 4;  // contiguous word ranges per thread (balances uneven words)
}  // namespace

void HfTokenizer::encode_words(std::string_view text, bool at_origin, std::vector<int32_t>& out) const {
  // Short texts, and long ones while another caller has the pool (ThreadPool serves one call at a time:
  // waiting for it would be slower than encoding here), take the serial path.
  std::unique_lock pool_lock(encode_pool_busy_, std::defer_lock);
  if (text.size() < kParallelEncodeBytes || !pool_lock.try_lock()) {
    pre_tokenizer_->pre_tokenize(text, at_origin, [&](std::string_view w) { model_->encode_word(w, out); });
    return;
  }
  std::call_once(encode_pool_once_, [&] { encode_pool_ = std::make_unique<ThreadPool>(kEncodeThreads); });
  // Words are copied into one arena: a pre-tokenizer step may hand out views of its own scratch.
  std::string arena;
  arena.reserve(text.size() + text.size() / 8);
  std::vector<std::pair<size_t, size_t>> words;  // (offset, length) in arena
  words.reserve(text.size() / 4);
  pre_tokenizer_->pre_tokenize(text, at_origin, [&](std::string_view w) {
    words.emplace_back(arena.size(), w.size());
    arena.append(w);
  });
  const int64_t n = static_cast<int64_t>(words.size());
  const int64_t parts = std::min<int64_t>(n, kEncodeThreads * kPartsPerThread);
  std::vector<std::vector<int32_t>> part_ids(parts);
  encode_pool_->parallel_for(parts, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      std::vector<int32_t>& ids = part_ids[p];
      ids.reserve(text.size() / parts / 3 + 16);
      for (int64_t i = n * p / parts, stop = n * (p + 1) / parts; i < stop; ++i)
        model_->encode_word(std::string_view(arena).substr(words[i].first, words[i].second), ids);
    }
  });
  for (const std::vector<int32_t>& ids : part_ids) out.insert(out.end(), ids.begin(), ids.end());
}

void HfTokenizer::encode_segment(std::string_view piece, bool at_origin, std::vector<int32_t>& out) const {
  auto words = [&](std::string_view text, bool origin) { encode_words(text, origin, out); };
  if (!normalizer_ && !added_->has_tokens(true)) {
    words(piece, at_origin);
    return;
  }
  std::string normalized;
  std::string_view text = piece;
  if (normalizer_) {
    normalizer_->normalize(piece, normalized);
    text = normalized;
  }
  added_->split(text, true, [&](size_t a, size_t b, int32_t id) {
    if (id >= 0) out.push_back(id);
    else words(text.substr(a, b - a), at_origin && a == 0);
  });
}

std::vector<int32_t> HfTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::string repaired;
  if (!utf8::is_valid(text)) {
    repaired = utf8::to_valid_lossy(text);
    text = repaired;
  }
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special_tokens) out.insert(out.end(), prefix_ids_.begin(), prefix_ids_.end());
  added_->split(text, false, [&](size_t a, size_t b, int32_t id) {
    if (id >= 0) out.push_back(id);
    else encode_segment(text.substr(a, b - a), a == 0, out);
  });
  if (add_special_tokens) out.insert(out.end(), suffix_ids_.begin(), suffix_ids_.end());
  return out;
}

std::string HfTokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const size_t n = entries_.size();
  if (decoder_->is_pure_byte_level()) {
    std::string bytes;
    bytes.reserve(ids.size() * 4);
    for (int32_t id : ids) {
      if (id < 0 || static_cast<size_t>(id) >= n) continue;
      const Entry& e = entries_[id];
      if (!e.present || (skip_special_tokens && e.skip)) continue;
      bytes.append(e.byte_level);
    }
    if (utf8::is_valid(bytes)) return bytes;
    return utf8::to_valid_lossy(bytes);
  }
  std::vector<std::string_view> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= n) continue;
    const Entry& e = entries_[id];
    if (!e.present || (skip_special_tokens && e.skip)) continue;
    tokens.push_back(e.token);
  }
  return decoder_->decode(tokens);
}

std::optional<int32_t> HfTokenizer::token_to_id(std::string_view token) const {
  for (const AddedToken& a : added_->tokens())
    if (a.content == token) return a.id;
  int32_t id = model_->token_to_id(token);
  if (id >= 0) return id;
  return std::nullopt;
}

std::optional<std::string> HfTokenizer::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= entries_.size() || !entries_[id].present) return std::nullopt;
  return entries_[id].token;
}

bool HfTokenizer::is_special(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < entries_.size() && entries_[id].special;
}

bool HfTokenizer::is_partial_byte_token(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < entries_.size() && entries_[id].byte_token;
}

std::vector<int32_t> HfTokenizer::special_token_ids() const {
  std::vector<int32_t> ids;
  for (const AddedToken& a : added_->tokens())
    if (a.special) ids.push_back(a.id);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

std::optional<std::string> HfTokenizer::chat_template_format() const {
  if (!chat_template_) return std::nullopt;
  return std::string(ChatTemplate::format_name(chat_template_->format()));
}

Result<std::string> HfTokenizer::apply_chat_template(std::span<const ChatMessage> messages,
                                                     bool add_generation_prompt) const {
  if (!chat_template_) return FailedPreconditionError("{}", chat_template_error_);
  return chat_template_->render(messages, add_generation_prompt, bos_token_, eos_token_);
}

}  // namespace tandem
