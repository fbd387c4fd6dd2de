// SplitScanner: a hand-written matcher for the three well-known byte-level BPE pre-tokenizer patterns
// (GPT-2, Llama 3, Qwen2), recognised by their exact pattern strings. It produces the same matches as
// the regex with Oniguruma's semantics (what HF `tokenizers` uses), with ICU's Unicode 15 character
// classes, so characters newer than PCRE2's Unicode 14 tables classify as HF classifies them; it is
// also faster than the general regex engine. Every other pattern goes through PCRE2 (regex.h).
//
// Character classes, as Oniguruma defines them: \p{L} / \p{N} are the L* / N* general categories;
// \s is U+0009..U+000D, U+0085 and the Zs/Zl/Zp categories (PCRE2's \s also has U+180E, which is not
// whitespace in Unicode >= 6.3). (?i:'s|...) folds case as Unicode simple case folding does: only
// 'S' and U+017F (long s) fold to 's', only the ASCII capitals to the other letters.
#pragma once

#include <memory>
#include <string_view>
#include <utility>
#include <vector>

namespace tandem {

// GPT-2's split pattern (also what the ByteLevel pre-tokenizer splits with when use_regex is true).
inline constexpr std::string_view kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class SplitScanner {
 public:
  // Returns a scanner when `pattern` is exactly one of the known patterns, else null.
  static std::unique_ptr<SplitScanner> for_pattern(std::string_view pattern);

  // Same contract as Regex::find_all: appends the [start, end) byte ranges of successive matches in
  // `subject` (valid UTF-8). These patterns match at every position, so the ranges tile the subject.
  void find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>>& out) const;

  enum class Flavor { kGpt2, kLlama3, kQwen2 };
  Flavor flavor() const { return flavor_; }

 private:
  explicit SplitScanner(Flavor flavor) : flavor_(flavor) {}
  size_t match_gpt2(std::string_view s, size_t i) const;
  size_t match_llama(std::string_view s, size_t i, size_t max_digits) const;

  Flavor flavor_;
};

}  // namespace tandem
