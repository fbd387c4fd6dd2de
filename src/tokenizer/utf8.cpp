// UTF-8 decoding and lossy repair (see utf8.h). The lossy rule replaces each maximal subpart of an
// ill-formed sequence by one U+FFFD, as Unicode §3.9 recommends and Rust/Python implement.
#include "tokenizer/utf8.h"

namespace tandem::utf8 {
namespace {

// Valid range for the second byte given the lead byte (Unicode Table 3-7).
inline bool second_byte_ok(unsigned char lead, unsigned char b) {
  switch (lead) {
    case 0xE0: return b >= 0xA0 && b <= 0xBF;
    case 0xED: return b >= 0x80 && b <= 0x9F;
    case 0xF0: return b >= 0x90 && b <= 0xBF;
    case 0xF4: return b >= 0x80 && b <= 0x8F;
    default: return b >= 0x80 && b <= 0xBF;
  }
}

inline bool is_cont(unsigned char b) { return (b & 0xC0) == 0x80; }

// Number of bytes of the maximal subpart at pos when invalid (>= 1), or the full length when valid
// (returned through `valid`).
size_t scan(std::string_view s, size_t pos, bool* valid, uint32_t* cp) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  unsigned char lead = p[pos];
  *valid = false;
  if (lead < 0x80) {
    *valid = true;
    *cp = lead;
    return 1;
  }
  size_t len;
  uint32_t value;
  if (lead >= 0xC2 && lead <= 0xDF) {
    len = 2;
    value = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    len = 3;
    value = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    len = 4;
    value = lead & 0x07;
  } else {
    return 1;  // 0x80..0xC1, 0xF5..0xFF: never valid
  }
  for (size_t i = 1; i < len; ++i) {
    if (pos + i >= n) return i;
    unsigned char b = p[pos + i];
    bool ok = i == 1 ? second_byte_ok(lead, b) : is_cont(b);
    if (!ok) return i;
    value = (value << 6) | (b & 0x3F);
  }
  *valid = true;
  *cp = value;
  return len;
}

}  // namespace

size_t decode_char(std::string_view s, size_t pos, uint32_t* code_point) {
  if (pos >= s.size()) return 0;
  bool valid;
  size_t len = scan(s, pos, &valid, code_point);
  return valid ? len : 0;
}

void append_char(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_valid(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      __builtin_memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    bool valid;
    uint32_t cp;
    size_t len = scan(s, i, &valid, &cp);
    if (!valid) return false;
    i += len;
  }
  return true;
}

void append_lossy(std::string& out, std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  size_t run_start = 0;
  while (i < n) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    bool valid;
    uint32_t cp;
    size_t len = scan(s, i, &valid, &cp);
    if (valid) {
      i += len;
      continue;
    }
    out.append(s.substr(run_start, i - run_start));
    out.append(kReplacementChar);
    i += len;
    run_start = i;
  }
  out.append(s.substr(run_start));
}

std::string to_valid_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  append_lossy(out, s);
  return out;
}

bool ends_with_incomplete_sequence(std::string_view s) {
  // Look back at most 3 bytes for a lead byte whose sequence would run past the end.
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    unsigned char b = static_cast<unsigned char>(s[n - back]);
    if (is_cont(b)) continue;
    if (b < 0xC2 || b > 0xF4) return false;
    size_t need = sequence_length(b);
    if (need <= back) return false;
    // Check the bytes present form a valid prefix.
    bool valid;
    uint32_t cp;
    size_t got = scan(s, n - back, &valid, &cp);
    return !valid && got == back;
  }
  return false;
}

bool is_whitespace(uint32_t c) {
  if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
  if (c < 0x85) return false;
  switch (c) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

size_t prev_char_start(std::string_view s, size_t end) {
  if (end == 0) return 0;
  size_t i = end - 1;
  while (i > 0 && is_cont(static_cast<unsigned char>(s[i]))) --i;
  return i;
}

std::string_view trim_whitespace(std::string_view s, bool left, bool right) {
  uint32_t cp = 0;
  if (left) {
    while (!s.empty()) {
      size_t len = decode_char(s, 0, &cp);
      if (len == 0 || !is_whitespace(cp)) break;
      s.remove_prefix(len);
    }
  }
  if (right) {
    while (!s.empty()) {
      size_t i = prev_char_start(s, s.size());
      size_t len = decode_char(s, i, &cp);
      if (len == 0 || !is_whitespace(cp)) break;
      s = s.substr(0, i);
    }
  }
  return s;
}

}  // namespace tandem::utf8
