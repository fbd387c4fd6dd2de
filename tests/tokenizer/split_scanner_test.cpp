// SplitScanner (the hand-written GPT-2 / Llama 3 / Qwen2 pre-tokenizer matcher) against PCRE2 running
// the same pattern, on every committed vector input and on seeded random strings over a character mix
// that exercises each alternative. Only characters both engines classify alike are compared: PCRE2
// 10.42 has Unicode 14 tables (ICU 72: Unicode 15), and PCRE2's \s also holds U+180E. Agreement with
// HF on all characters is checked by the vector tests (Llama 3, bytelevel_bpe, bytelevel_nfc).
#include <gtest/gtest.h>

#include <random>

#include <unicode/uchar.h>

#include "tokenizer/regex.h"
#include "tokenizer/split_scanner.h"
#include "tokenizer/utf8.h"
#include "tokenizer_test_util.h"

namespace tandem {
namespace {

using testing::read_jsonl;
using testing::tokenizer_fixtures;

const char* const kPatterns[] = {
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)",
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
};

// True when every character of `s` was assigned by Unicode 14 (or is unassigned in 15 too) and is
// not U+180E, i.e. PCRE2 10.42 and ICU 72 give it the same classes.
bool comparable(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t len = utf8::decode_char(s, i, &cp);
    if (len == 0) return false;
    UVersionInfo age;
    u_charAge(static_cast<UChar32>(cp), age);
    if (age[0] >= 15 || cp == 0x180E) return false;
    i += len;
  }
  return true;
}

std::vector<std::string> vector_inputs() {
  std::vector<std::string> out;
  for (const auto& entry : std::filesystem::directory_iterator(tokenizer_fixtures())) {
    if (entry.path().extension() != ".jsonl") continue;
    for (const auto& r : read_jsonl(entry.path())) {
      if (r.contains("text")) out.push_back(r["text"].get<std::string>());
    }
  }
  return out;
}

std::vector<std::string> random_inputs() {
  // Characters that hit every alternative: contractions (with case variants and long s), letters,
  // marks, numbers of each kind, ASCII and Unicode whitespace, CR/LF, punctuation, symbols, CJK, emoji.
  const std::vector<uint32_t> alphabet = {
      ' ', ' ', ' ', '\n', '\r', '\t', 0x0B, 0x0C, 'a', 'Z', 's', 'S', 't', 'T', 'r', 'R', 'e', 'E', 'v', 'V',
      'm', 'M', 'l', 'L', 'd', 'D', '\'', '\'', '1', '9', '0', '!', '.', '-', '_', 0x17F, 0xE9, 0x301, 0x663,
      0x2460, 0x216B, 0xBD, 0xA0, 0x85, 0x2028, 0x2029, 0x3000, 0x2003, 0x200B, 0x4E2D, 0x1F600, 0xFFFD, 0x5D0,
      0x2019, 0x212A, 0x10400, 0x1D7D9};
  std::mt19937 rng(2024);
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1), len(1, 16);
  std::vector<std::string> out;
  for (int i = 0; i < 30000; ++i) {
    std::string s;
    for (size_t n = len(rng); n > 0; --n) utf8::append_char(s, alphabet[pick(rng)]);
    out.push_back(std::move(s));
  }
  return out;
}

TEST(SplitScanner, RecognisesOnlyTheKnownPatterns) {
  for (const char* p : kPatterns) EXPECT_NE(SplitScanner::for_pattern(p), nullptr) << p;
  EXPECT_EQ(SplitScanner::for_pattern(R"(\p{N}+)"), nullptr);
  EXPECT_EQ(SplitScanner::for_pattern(std::string(kPatterns[1]) + " "), nullptr);
}

TEST(SplitScanner, SameMatchesAsPcre2) {
  std::vector<std::string> inputs = vector_inputs();
  ASSERT_GT(inputs.size(), 1000u);
  for (auto& s : random_inputs()) inputs.push_back(std::move(s));
  for (const char* pattern : kPatterns) {
    auto scanner = SplitScanner::for_pattern(pattern);
    ASSERT_NE(scanner, nullptr);
    auto re = Regex::compile(pattern);
    ASSERT_TRUE(re.ok()) << re.status().to_string();
    size_t compared = 0, failures = 0;
    std::vector<std::pair<size_t, size_t>> want, got;
    for (const std::string& s : inputs) {
      if (!comparable(s)) continue;
      ++compared;
      want.clear();
      got.clear();
      (*re)->find_all(s, want);
      scanner->find_all(s, got);
      if (got != want && ++failures <= 10) {
        std::string w, g;
        for (auto [a, b] : want) w += "[" + s.substr(a, b - a) + "]";
        for (auto [a, b] : got) g += "[" + s.substr(a, b - a) + "]";
        ADD_FAILURE() << "pattern " << pattern << "\n  input '" << s << "'\n  pcre2   " << w << "\n  scanner " << g;
      }
    }
    EXPECT_EQ(failures, 0u);
    EXPECT_GT(compared, inputs.size() * 9 / 10);
  }
}

// A Unicode 15 letter (CJK Extension H) is \p{L} for the scanner, as for HF.
TEST(SplitScanner, ClassifiesUnicode15Letters) {
  auto scanner = SplitScanner::for_pattern(kPatterns[1]);
  ASSERT_NE(scanner, nullptr);
  std::vector<std::pair<size_t, size_t>> got;
  const std::string text = "a\xF0\xB1\xAE\x89" "b 1";  // a U+31B89 b ' ' 1
  scanner->find_all(text, got);
  EXPECT_EQ(got, (std::vector<std::pair<size_t, size_t>>{{0, 6}, {6, 7}, {7, 8}}));
}

}  // namespace
}  // namespace tandem
