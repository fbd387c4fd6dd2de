// HfTokenizer: the Tokenizer implementation for Hugging Face tokenizer.json files. Encode pipeline
// (as tokenizers' TokenizerImpl::encode): repair invalid UTF-8 -> split on non-normalized added tokens
// -> normalizer -> split on normalized added tokens -> pre-tokenizer -> BPE -> post-processor (BOS/EOS).
// Decode: added token or vocab string per id (unknown ids dropped) -> decoder chain.
// Long pieces (a 7500-token prompt is ~50 KB) are pre-tokenized on the calling thread and their words
// BPE-encoded on a small pool of this tokenizer's own (created on first use), then concatenated in order:
// the same ids, in a fraction of the time.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/thread_pool.h"
#include "tokenizer/added_vocabulary.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/token_decoder.h"
#include "tokenizer/tokenizer.h"

namespace tandem {

class HfTokenizer final : public Tokenizer {
 public:
  // tokenizer_json: parsed tokenizer.json; config / generation: parsed tokenizer_config.json and
  // generation_config.json (null when absent).
  static Result<std::shared_ptr<HfTokenizer>> create(const nlohmann::json& tokenizer_json,
                                                     const nlohmann::json& config,
                                                     const nlohmann::json& generation,
                                                     const TokenizerLoadOptions& options);

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(entries_.size()); }
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::optional<std::string> id_to_token(int32_t id) const override;
  bool is_special(int32_t id) const override;
  std::vector<int32_t> special_token_ids() const override;
  std::optional<int32_t> bos_token_id() const override { return bos_id_; }
  std::vector<int32_t> eos_token_ids() const override { return eos_ids_; }
  int num_special_tokens_to_add() const override {
    return static_cast<int>(prefix_ids_.size() + suffix_ids_.size());
  }
  Result<std::string> apply_chat_template(std::span<const ChatMessage> messages,
                                          bool add_generation_prompt) const override;
  std::string fingerprint() const override { return fingerprint_; }
  bool is_partial_byte_token(int32_t id) const override;
  bool contributes_to_decode(int32_t id, bool skip_special_tokens) const override {
    if (id < 0 || static_cast<size_t>(id) >= entries_.size()) return false;
    const Entry& e = entries_[id];
    return e.present && !(skip_special_tokens && e.skip);
  }
  std::optional<std::string> chat_template_format() const override;

 private:
  struct Entry {
    std::string token;        // added-token content or vocab spelling
    std::string byte_level;   // ByteLevel decoder bytes (pure byte-level decoders only)
    bool present = false;
    bool special = false;     // added token flagged special
    bool skip = false;        // skipped by skip_special_tokens (content is a special token's)
    bool byte_token = false;  // "<0xXX>" under a ByteFallback decoder
  };
  HfTokenizer() = default;
  Status load_post_processor(const nlohmann::json& j, const std::string& where);
  void encode_segment(std::string_view piece, bool at_origin, std::vector<int32_t>& out) const;
  // Pre-tokenizes `text` and BPE-encodes its words into `out`, on the pool when the text is long.
  void encode_words(std::string_view text, bool at_origin, std::vector<int32_t>& out) const;

  std::unique_ptr<AddedVocabulary> added_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<TokenDecoder> decoder_;
  std::vector<Entry> entries_;
  std::vector<int32_t> prefix_ids_, suffix_ids_;
  std::optional<int32_t> bos_id_;
  std::vector<int32_t> eos_ids_;
  std::string bos_token_, eos_token_;
  std::optional<ChatTemplate> chat_template_;
  std::string chat_template_error_;  // why apply_chat_template fails when chat_template_ is empty
  std::string fingerprint_;
  mutable std::once_flag encode_pool_once_;
  mutable std::unique_ptr<ThreadPool> encode_pool_;  // for encode_words on long texts
  mutable std::mutex encode_pool_busy_;  // held while a long text uses the pool; others encode serially
};

}  // namespace tandem
