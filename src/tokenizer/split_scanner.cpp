// SplitScanner (see split_scanner.h). Each match_* function returns the end of the match that the
// pattern's alternation finds at byte offset i (first alternative that matches, each quantifier greedy
// with backtracking resolved by hand); the patterns match at every position, so the end is > i.
#include "tokenizer/split_scanner.h"

#include <unicode/uchar.h>

#include "tokenizer/utf8.h"

namespace tandem {
namespace {

constexpr std::string_view kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

enum Class : uint8_t { kLetter, kNumber, kSpace, kOther };

struct Char {
  uint32_t cp = 0;
  size_t len = 0;  // 0 at the end of the subject
  Class cls = kOther;
};

Class classify(uint32_t cp) {
  if (cp < 0x80) {
    if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') return kLetter;
    if (cp >= '0' && cp <= '9') return kNumber;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return kSpace;
    return kOther;
  }
  const uint32_t mask = U_GET_GC_MASK(static_cast<UChar32>(cp));
  if (mask & U_GC_L_MASK) return kLetter;
  if (mask & U_GC_N_MASK) return kNumber;
  if (u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_WHITE_SPACE)) return kSpace;
  return kOther;
}

Char char_at(std::string_view s, size_t i) {
  Char c;
  if (i >= s.size()) return c;
  const auto b = static_cast<unsigned char>(s[i]);
  if (b < 0x80) {
    c.cp = b;
    c.len = 1;
  } else {
    c.len = utf8::decode_char(s, i, &c.cp);
    if (c.len == 0) {  // not reachable on valid input; treat the byte as an "other" character
      c.cp = 0xFFFD;
      c.len = 1;
      return c;
    }
  }
  c.cls = classify(c.cp);
  return c;
}

// End of the run of characters of class `cls` starting at i.
size_t run_end(std::string_view s, size_t i, Class cls) {
  for (Char c = char_at(s, i); c.len != 0 && c.cls == cls; c = char_at(s, i)) i += c.len;
  return i;
}

bool is_cr_or_lf(uint32_t cp) { return cp == '\r' || cp == '\n'; }

// `'` followed by s|t|re|ve|m|ll|d (case-insensitive when `fold`) at i: returns the end or 0.
size_t match_contraction(std::string_view s, size_t i, bool fold) {
  if (s[i] != '\'') return 0;
  auto lower_at = [&](size_t j, size_t* len) -> char {  // lower-cased letter at j, or 0
    Char c = char_at(s, j);
    *len = c.len;
    if (c.len == 0) return 0;
    if (c.cp >= 'a' && c.cp <= 'z') return static_cast<char>(c.cp);
    if (fold && c.cp >= 'A' && c.cp <= 'Z') return static_cast<char>(c.cp + 32);
    if (fold && c.cp == 0x17F) return 's';  // LATIN SMALL LETTER LONG S folds to 's'
    return 0;
  };
  size_t l1 = 0, l2 = 0;
  const char a = lower_at(i + 1, &l1);
  switch (a) {
    case 's': case 't': case 'm': case 'd':
      return i + 1 + l1;
    case 'r': case 'v':
      return lower_at(i + 1 + l1, &l2) == 'e' ? i + 1 + l1 + l2 : 0;
    case 'l':
      return lower_at(i + 1 + l1, &l2) == 'l' ? i + 1 + l1 + l2 : 0;
    default:
      return 0;
  }
}

// \s+(?!\S)|\s+ at a whitespace character i: the whole run when it reaches the end or is one
// character long, else the run minus its last character.
size_t match_trailing_space(std::string_view s, size_t i) {
  size_t last_start = i, j = i;
  for (Char c = char_at(s, j); c.len != 0 && c.cls == kSpace; c = char_at(s, j)) {
    last_start = j;
    j += c.len;
  }
  if (j == s.size() || last_start == i) return j;
  return last_start;
}

}  // namespace

std::unique_ptr<SplitScanner> SplitScanner::for_pattern(std::string_view pattern) {
  if (pattern == kGpt2SplitPattern) return std::unique_ptr<SplitScanner>(new SplitScanner(Flavor::kGpt2));
  if (pattern == kLlama3) return std::unique_ptr<SplitScanner>(new SplitScanner(Flavor::kLlama3));
  if (pattern == kQwen2) return std::unique_ptr<SplitScanner>(new SplitScanner(Flavor::kQwen2));
  return nullptr;
}

size_t SplitScanner::match_gpt2(std::string_view s, size_t i) const {
  if (size_t e = match_contraction(s, i, false)) return e;
  const Char c = char_at(s, i);
  if (c.cp == ' ') {
    const Char n = char_at(s, i + 1);
    if (n.len != 0 && n.cls != kSpace) return run_end(s, i + 1, n.cls);  // ` ?\p{L}+` etc.
  }
  if (c.cls != kSpace) return run_end(s, i, c.cls);
  return match_trailing_space(s, i);
}

size_t SplitScanner::match_llama(std::string_view s, size_t i, size_t max_digits) const {
  if (size_t e = match_contraction(s, i, true)) return e;
  const Char c = char_at(s, i);
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (c.cls == kLetter) return run_end(s, i, kLetter);
  if (c.cls != kNumber && !is_cr_or_lf(c.cp)) {
    const Char n = char_at(s, i + c.len);
    if (n.len != 0 && n.cls == kLetter) return run_end(s, i + c.len, kLetter);
  }
  // \p{N}{1,max}
  if (c.cls == kNumber) {
    size_t j = i;
    for (size_t k = 0; k < max_digits; ++k) {
      const Char d = char_at(s, j);
      if (d.len == 0 || d.cls != kNumber) break;
      j += d.len;
    }
    return j;
  }
  //  ?[^\s\p{L}\p{N}]+[\r\n]*
  size_t other_start = 0;
  if (c.cls == kOther) {
    other_start = i;
  } else if (c.cp == ' ') {
    const Char n = char_at(s, i + 1);
    if (n.len != 0 && n.cls == kOther) other_start = i + 1;
  }
  if (other_start != 0 || c.cls == kOther) {
    size_t j = run_end(s, other_start, kOther);
    while (j < s.size() && (s[j] == '\r' || s[j] == '\n')) ++j;
    return j;
  }
  // c is whitespace. \s*[\r\n]+: up to and including the last CR/LF of the whitespace run.
  size_t j = i, after_last_newline = 0;
  for (Char w = char_at(s, j); w.len != 0 && w.cls == kSpace; w = char_at(s, j)) {
    j += w.len;
    if (is_cr_or_lf(w.cp)) after_last_newline = j;
  }
  if (after_last_newline != 0) return after_last_newline;
  return match_trailing_space(s, i);
}

void SplitScanner::find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>>& out) const {
  size_t i = 0;
  while (i < subject.size()) {
    size_t end = 0;
    switch (flavor_) {
      case Flavor::kGpt2: end = match_gpt2(subject, i); break;
      case Flavor::kLlama3: end = match_llama(subject, i, 3); break;
      case Flavor::kQwen2: end = match_llama(subject, i, 1); break;
    }
    if (end <= i) {  // cannot happen (every position matches); step one byte rather than loop
      end = i + 1;
    }
    out.emplace_back(i, end);
    i = end;
  }
}

}  // namespace tandem
