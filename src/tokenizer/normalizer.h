// Normalizer: the tokenizer.json "normalizer" chain applied to text between added tokens. Supported
// types: Sequence, Prepend, Replace (String or Regex pattern), Strip, NFC/NFKC/NFD/NFKD (identity on
// ASCII-only input; non-ASCII needs a Unicode library, see docs/tokenizer.md).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "tokenizer/regex.h"

namespace tandem {

class Normalizer {
 public:
  // `json` is the "normalizer" value (non-null). Errors name the offending field.
  static Result<std::unique_ptr<Normalizer>> from_json(const nlohmann::json& json);

  // Writes the normalized form of `in` to `out` (cleared first).
  void normalize(std::string_view in, std::string& out) const;

 private:
  enum class Kind { kPrepend, kReplaceString, kReplaceRegex, kStrip, kUnicodeForm };
  struct Step {
    Kind kind;
    std::string a;  // Prepend: prefix; Replace: pattern (string form)
    std::string b;  // Replace: content
    bool left = false, right = false;
    std::unique_ptr<Regex> regex;
  };
  static Status add_steps(const nlohmann::json& json, const std::string& where, std::vector<Step>& steps);

  std::vector<Step> steps_;
};

}  // namespace tandem
