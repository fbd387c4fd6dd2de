// UTF-8 helpers for the tokenizer: strict decoding, lossy repair with U+FFFD (the "maximal subpart"
// rule used by Rust's String::from_utf8_lossy and Python's bytes.decode("utf-8", "replace")), and the
// Unicode White_Space set (Rust's char::is_whitespace, used by added-token lstrip/rstrip).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tandem::utf8 {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Length of the valid UTF-8 sequence starting at s[pos] (1..4), or 0 if the bytes there are not a
// valid scalar value encoding (overlong, surrogate, > U+10FFFF, truncated). Writes the code point.
size_t decode_char(std::string_view s, size_t pos, uint32_t* code_point);

// Length in bytes of the sequence a lead byte announces (1..4), 1 for invalid lead bytes.
inline size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xF0) return 4;
  if (lead >= 0xE0) return 3;
  if (lead >= 0xC0) return 2;
  return 1;
}

void append_char(std::string& out, uint32_t code_point);

bool is_valid(std::string_view s);

// Appends `s` to `out`, replacing each maximal invalid subpart by U+FFFD.
void append_lossy(std::string& out, std::string_view s);
std::string to_valid_lossy(std::string_view s);

// True when `s` ends with a proper prefix of a valid multi-byte sequence (more bytes could complete it).
bool ends_with_incomplete_sequence(std::string_view s);

// Rust char::is_whitespace (the Unicode White_Space property).
bool is_whitespace(uint32_t code_point);

// Start of the last character before `end`: end - 1 stepped back over UTF-8 continuation bytes (never
// below 0). 0 when `end` is 0.
size_t prev_char_start(std::string_view s, size_t end);

// `s` without its leading (`left`) and/or trailing (`right`) is_whitespace characters (Python
// str.strip() / Rust trim). Trimming stops at the first invalid byte sequence.
std::string_view trim_whitespace(std::string_view s, bool left, bool right);

}  // namespace tandem::utf8
