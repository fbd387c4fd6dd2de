// Unit tests of the small text helpers the tokenizer modules share: UTF-8 stepping and whitespace
// trimming, literal replace_all, the GPT-2 byte-level alphabet reversed, and the GPT-2 split pattern.
#include <gtest/gtest.h>

#include <string>

#include "tokenizer/bpe_model.h"
#include "tokenizer/replace_all.h"
#include "tokenizer/split_scanner.h"
#include "tokenizer/utf8.h"

namespace tandem {
namespace {

TEST(Utf8, PrevCharStartStepsOverContinuationBytes) {
  const std::string s = "a\xC3\xA9\xE3\x80\x80z";  // a é U+3000 z
  EXPECT_EQ(utf8::prev_char_start(s, s.size()), 6u);
  EXPECT_EQ(utf8::prev_char_start(s, 6), 3u);
  EXPECT_EQ(utf8::prev_char_start(s, 3), 1u);
  EXPECT_EQ(utf8::prev_char_start(s, 1), 0u);
  EXPECT_EQ(utf8::prev_char_start(s, 0), 0u);
  EXPECT_EQ(utf8::prev_char_start("\x80\x80", 2), 0u);  // never below the start
}

TEST(Utf8, TrimWhitespaceUsesUnicodeWhiteSpace) {
  const std::string s = " \t\xE3\x80\x80h\xC3\xA9llo \xC2\x85\n";  // U+3000 before, U+0085 after
  EXPECT_EQ(utf8::trim_whitespace(s, true, true), "h\xC3\xA9llo");
  EXPECT_EQ(utf8::trim_whitespace(s, true, false), "h\xC3\xA9llo \xC2\x85\n");
  EXPECT_EQ(utf8::trim_whitespace(s, false, true), " \t\xE3\x80\x80h\xC3\xA9llo");
  EXPECT_EQ(utf8::trim_whitespace(s, false, false), s);
  EXPECT_EQ(utf8::trim_whitespace(" \n\t ", true, true), "");
  EXPECT_EQ(utf8::trim_whitespace("", true, true), "");
  EXPECT_EQ(utf8::trim_whitespace("\xE2\x80\x8B", true, true), "\xE2\x80\x8B");  // U+200B is not White_Space
}

TEST(Utf8, TrimWhitespaceStopsAtInvalidBytes) {
  EXPECT_EQ(utf8::trim_whitespace(" \x80\x80 ", true, true), "\x80\x80");
  EXPECT_EQ(utf8::trim_whitespace(" \xE3\x80", true, true), "\xE3\x80");  // truncated sequence kept
}

TEST(ReplaceAll, LeftToRightWithoutOverlap) {
  std::string out = "x";
  replace_all("aaaba", "aa", "<>", &out);
  EXPECT_EQ(out, "x<>aba");
  out.clear();
  replace_all("none here", "zz", "y", &out);
  EXPECT_EQ(out, "none here");
  out.clear();
  replace_all("\xE2\x96\x81hi\xE2\x96\x81there", "\xE2\x96\x81", " ", &out);
  EXPECT_EQ(out, " hi there");
}

TEST(BpeModel, ByteLevelToBytesReversesTheAlphabet) {
  const auto& b2u = BpeModel::byte_to_unicode();
  std::string token, bytes;
  for (int b = 0; b < 256; ++b) utf8::append_char(token, b2u[b]);
  ASSERT_TRUE(BpeModel::byte_level_to_bytes(token, &bytes));
  ASSERT_EQ(bytes.size(), 256u);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(static_cast<unsigned char>(bytes[b]), b);
  ASSERT_TRUE(BpeModel::byte_level_to_bytes("\xC4\xA0hello\xC4\x8A", &bytes));  // "Ġhello\u010A"
  EXPECT_EQ(bytes, " hello\n");
  EXPECT_FALSE(BpeModel::byte_level_to_bytes("\xE2\x82\xAC", &bytes));  // U+20AC is outside the alphabet
  EXPECT_FALSE(BpeModel::byte_level_to_bytes("a\xFF", &bytes));         // invalid UTF-8
}

TEST(SplitScanner, Gpt2SplitPatternIsRecognised) {
  auto scanner = SplitScanner::for_pattern(kGpt2SplitPattern);
  ASSERT_NE(scanner, nullptr);
  EXPECT_EQ(scanner->flavor(), SplitScanner::Flavor::kGpt2);
}

}  // namespace
}  // namespace tandem
