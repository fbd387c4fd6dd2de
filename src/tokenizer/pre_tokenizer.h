// PreTokenizer: the tokenizer.json "pre_tokenizer" chain that cuts normalized text into words for the
// model. Supported: Sequence, Split (Regex or String pattern, every SplitDelimiterBehavior, invert),
// ByteLevel (optional prefix space and GPT-2 regex; must be the last step: the byte->unicode mapping
// itself is folded into the BPE model, which then works on raw bytes), Metaspace (replacement,
// prepend_scheme always/first/never or legacy add_prefix_space, split), Digits, WhitespaceSplit. The
// GPT-2 / Llama 3 / Qwen2 patterns run on SplitScanner (ICU classes), any other regex on PCRE2.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "tokenizer/regex.h"
#include "tokenizer/split_scanner.h"

namespace tandem {

class PreTokenizer {
 public:
  // `json` may be null (no pre-tokenizer: the whole piece is one word).
  static Result<std::unique_ptr<PreTokenizer>> from_json(const nlohmann::json& json);

  // True when the chain ends with ByteLevel: words passed to the sink are raw bytes that the model must
  // map through the byte-level alphabet.
  bool byte_level() const { return byte_level_; }

  // Splits `piece` (valid UTF-8) into words. `at_origin`: the piece starts at offset 0 of the input
  // (Metaspace prepend_scheme "first"). Empty words are never emitted.
  using Sink = std::function<void(std::string_view)>;
  void pre_tokenize(std::string_view piece, bool at_origin, const Sink& sink) const;

 private:
  enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
  enum class Kind { kSplit, kByteLevel, kMetaspace, kDigits, kWhitespaceSplit };
  enum class Prepend { kAlways, kFirst, kNever };
  struct Step {
    Kind kind;
    std::unique_ptr<Regex> regex;  // Split (regex pattern) / ByteLevel with use_regex
    std::unique_ptr<SplitScanner> scanner;  // replaces `regex` for the GPT-2 / Llama 3 / Qwen2 patterns
    std::string literal;           // Split with a String pattern / Metaspace replacement
    Behavior behavior = Behavior::kIsolated;
    bool invert = false;
    bool add_prefix_space = false;  // ByteLevel
    Prepend prepend = Prepend::kAlways;
    bool split = true;  // Metaspace; Digits: individual_digits
  };
  static Status add_steps(const nlohmann::json& json, const std::string& where, std::vector<Step>& steps);
  void run(size_t step, std::string_view piece, bool at_origin, const Sink& sink) const;
  // Cuts `piece` by step `s` into (start, end) ranges per its behavior.
  void segments(const Step& s, std::string_view piece, std::vector<std::pair<size_t, size_t>>& out) const;

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace tandem
