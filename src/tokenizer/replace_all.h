// replace_all: literal (non-regex) search-and-replace shared by the Replace normalizer and decoder.
#pragma once

#include <string>
#include <string_view>

namespace tandem {

// Appends `text` to *out with every occurrence of `from` (non-empty) replaced by `to`, matches taken
// left to right without overlap (Rust's str::replace).
inline void replace_all(std::string_view text, std::string_view from, std::string_view to, std::string* out) {
  size_t pos = 0;
  for (size_t hit; (hit = text.find(from, pos)) != std::string_view::npos; pos = hit + from.size()) {
    out->append(text, pos, hit - pos);
    out->append(to);
  }
  out->append(text, pos, std::string_view::npos);
}

}  // namespace tandem
