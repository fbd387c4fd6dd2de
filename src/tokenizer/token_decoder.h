// TokenDecoder: the tokenizer.json "decoder" chain turning token strings back into text, with
// tokenizers' decode_chain semantics per step: ByteLevel (alphabet -> bytes, lossy UTF-8 over all
// tokens), Replace (String pattern), ByteFallback ("<0xXX>" runs -> bytes, U+FFFD per byte when the run
// is not valid UTF-8), Fuse, Strip, Metaspace, Sequence. No decoder joins tokens with a space, as HF.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace tandem {

class TokenDecoder {
 public:
  // `json` may be null.
  static Result<std::unique_ptr<TokenDecoder>> from_json(const nlohmann::json& json);

  std::string decode(const std::vector<std::string_view>& tokens) const;

  // True when the chain is exactly one ByteLevel step: callers may concatenate per-token bytes
  // (see byte_level_bytes) and repair UTF-8 once, which is what ByteLevel does.
  bool is_pure_byte_level() const { return steps_.size() == 1 && steps_[0].kind == Kind::kByteLevel; }
  // ByteLevel's per-token bytes: each alphabet character mapped to its byte, or the token's own UTF-8
  // when any character is outside the alphabet.
  static std::string byte_level_bytes(std::string_view token);
  // True when the chain has a ByteFallback step (a trailing "<0xXX>" token may still change text).
  bool has_byte_fallback() const;

 private:
  enum class Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace };
  struct Step {
    Kind kind;
    std::string a, b;  // Replace: pattern, content; Strip/Metaspace: content/replacement
    size_t start = 0, stop = 0;
    bool prepend = true;  // Metaspace: prepend_scheme != never
  };
  static Status add_steps(const nlohmann::json& json, const std::string& where, std::vector<Step>& steps);

  std::vector<Step> steps_;
  bool none_ = false;  // no decoder at all
};

}  // namespace tandem
