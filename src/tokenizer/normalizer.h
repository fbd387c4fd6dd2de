// Normalizer: the tokenizer.json "normalizer" chain applied to text between added tokens. Supported
// types: Sequence, Prepend, Replace (String or Regex pattern), Strip, NFC/NFKC/NFD/NFKD (ICU's
// Normalizer2 filtered to the characters of HF's Unicode version (11.0), see normalizer.cpp;
// ASCII-only text is returned unchanged without calling ICU, as every form leaves it be).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "tokenizer/regex.h"

struct UNormalizer2;

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
    std::shared_ptr<const UNormalizer2> unicode_form;  // filtered ICU normalizer (owns its filter set)
  };
  static Status add_steps(const nlohmann::json& json, const std::string& where, std::vector<Step>& steps);

  std::vector<Step> steps_;
};

}  // namespace tandem
