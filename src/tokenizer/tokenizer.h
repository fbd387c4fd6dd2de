// Tokenizer: Hugging Face tokenizer.json compatible encode/decode (byte-level BPE as in Llama 3 / GPT-2
// / Qwen, and SentencePiece-style BPE with byte_fallback as in Llama 2 / Mistral), special tokens, and
// the model directory's tokenizer_config.json / generation_config.json metadata.
// Thread-safe for concurrent const use.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace tandem {

// Options for Tokenizer::load beyond the path.
struct TokenizerLoadOptions {
  // --chat-template: a format name (llama3, chatml, llama2, mistral) or a file with a Jinja template of
  // a known format. An unknown value is a load error that names it.
  std::string chat_template_override;
  // When true (servers), a tokenizer_config.json chat_template of no known format fails the load with a
  // message pointing at --chat-template; when false (tokenize, bench) apply_chat_template fails instead.
  bool require_known_chat_template = true;
};

struct ChatMessage {
  std::string role;     // system | user | assistant | tool
  std::string content;
};

class Tokenizer {
 public:
  // `path` is a tokenizer.json file or a model directory holding one (plus tokenizer_config.json and
  // generation_config.json when present). `chat_template_override` is --chat-template (a format name
  // such as "llama3", "chatml", "llama2", or a file with a Jinja template of a known format).
  static Result<std::shared_ptr<Tokenizer>> load(const std::filesystem::path& path,
                                                 const std::string& chat_template_override = "");
  static Result<std::shared_ptr<Tokenizer>> load(const std::filesystem::path& path,
                                                 const TokenizerLoadOptions& options);
  virtual ~Tokenizer() = default;

  // Encodes text. add_special_tokens applies the post-processor (BOS for Llama).
  // Invalid UTF-8 in `text` is handled as documented in docs/tokenizer.md (never a crash).
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const = 0;
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special_tokens) const = 0;

  virtual int32_t vocab_size() const = 0;  // base vocabulary + added tokens (max id + 1)
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  virtual std::optional<std::string> id_to_token(int32_t id) const = 0;
  virtual bool is_special(int32_t id) const = 0;
  virtual std::vector<int32_t> special_token_ids() const = 0;
  virtual std::optional<int32_t> bos_token_id() const = 0;
  virtual std::vector<int32_t> eos_token_ids() const = 0;  // tokenizer_config eos + generation_config eos
  // How many tokens encode(text, true) adds beyond encode(text, false) (1 for Llama's BOS).
  virtual int num_special_tokens_to_add() const = 0;

  // Renders the chat template; add_generation_prompt appends the assistant header.
  virtual Result<std::string> apply_chat_template(std::span<const ChatMessage> messages,
                                                  bool add_generation_prompt) const = 0;
  // Stable digest of the vocabulary, merges and special tokens (for disaggregation fingerprints).
  virtual std::string fingerprint() const = 0;
  // Name of the chat format in use (llama3, chatml, llama2, mistral), if any.
  virtual std::optional<std::string> chat_template_format() const { return std::nullopt; }
  // True for byte-fallback tokens ("<0xXX>") whose text depends on the tokens that follow them; the
  // IncrementalDecoder holds text back while the last token is one.
  virtual bool is_partial_byte_token(int32_t id) const { return false; }
  // False when decode() drops `id` (unknown id, or a special token under skip_special_tokens).
  virtual bool contributes_to_decode(int32_t id, bool skip_special_tokens) const {
    return id_to_token(id).has_value() && !(skip_special_tokens && is_special(id));
  }
};

// Streaming detokenizer for one sequence: feed generated ids one at a time, get the new text. Never
// emits a broken UTF-8 sequence; the concatenation of all outputs plus flush() equals
// decode(all ids, skip_special_tokens).
class IncrementalDecoder {
 public:
  IncrementalDecoder(std::shared_ptr<const Tokenizer> tokenizer, bool skip_special_tokens);
  std::string step(int32_t id);
  std::string flush();  // text held back (an incomplete UTF-8 tail is replaced per docs)

 private:
  std::shared_ptr<const Tokenizer> tok_;
  bool skip_special_;
  std::vector<int32_t> ids_;
  // vLLM's scheme: decode(ids_[prefix_offset_..read_offset_]) has been emitted (as the tail of earlier
  // windows); each step decodes ids_[prefix_offset_..] and returns what extends it.
  size_t prefix_offset_ = 0;
  size_t read_offset_ = 0;
  bool pending_byte_token_ = false;  // the last contributing id is a byte-fallback token
};

}  // namespace tandem
