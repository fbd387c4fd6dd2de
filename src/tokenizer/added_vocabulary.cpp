// Added-token matching (see added_vocabulary.h). Mirrors tokenizers' AddedVocabulary::find_matches.
#include "tokenizer/added_vocabulary.h"

#include <algorithm>

#include "tokenizer/utf8.h"

namespace tandem {
namespace {

// Last code point before `end`, or 0 when none.
uint32_t char_before(std::string_view s, size_t end, size_t* start) {
  if (end == 0) return 0;
  size_t i = utf8::prev_char_start(s, end);
  uint32_t cp = 0;
  if (utf8::decode_char(s, i, &cp) == 0) return 0;
  *start = i;
  return cp;
}

// Rust char::is_alphanumeric approximation for single_word: ASCII exact; non-ASCII letters and digits
// are treated as word characters except whitespace and common punctuation blocks.
bool is_word_char(uint32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  if (utf8::is_whitespace(c)) return false;
  if (c >= 0x2000 && c <= 0x206F) return false;  // general punctuation
  if (c >= 0x3000 && c <= 0x303F) return false;  // CJK punctuation
  if (c >= 0xA0 && c <= 0xBF) return false;      // Latin-1 punctuation and symbols
  return true;
}

}  // namespace

AddedVocabulary::AddedVocabulary(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  build(raw_, false);
  build(norm_, true);
}

void AddedVocabulary::build(Trie& trie, bool normalized) {
  trie.nodes.assign(1, Node{});
  for (size_t t = 0; t < tokens_.size(); ++t) {
    const AddedToken& tok = tokens_[t];
    if (tok.normalized != normalized || tok.content.empty()) continue;
    int32_t node = 0;
    for (unsigned char b : tok.content) {
      auto& ch = trie.nodes[node].children;
      auto it = std::lower_bound(ch.begin(), ch.end(), std::make_pair(b, int32_t{-1}));
      if (it != ch.end() && it->first == b) {
        node = it->second;
      } else {
        int32_t next = static_cast<int32_t>(trie.nodes.size());
        ch.insert(it, {b, next});
        trie.nodes.emplace_back();
        node = next;
      }
    }
    // A later duplicate of the same content keeps the first entry (HF maps content -> one id).
    if (trie.nodes[node].token_index < 0) trie.nodes[node].token_index = static_cast<int32_t>(t);
    trie.first_byte[static_cast<unsigned char>(tok.content[0])] = true;
  }
}

int32_t AddedVocabulary::longest_match(const Trie& trie, std::string_view text, size_t pos,
                                       size_t* end) const {
  int32_t node = 0, best = -1;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto& ch = trie.nodes[node].children;
    unsigned char b = static_cast<unsigned char>(text[i]);
    auto it = std::lower_bound(ch.begin(), ch.end(), std::make_pair(b, int32_t{-1}));
    if (it == ch.end() || it->first != b) break;
    node = it->second;
    if (trie.nodes[node].token_index >= 0) {
      best = trie.nodes[node].token_index;
      *end = i + 1;
    }
  }
  return best;
}

void AddedVocabulary::split(std::string_view text, bool normalized_tokens,
                            const std::function<void(size_t, size_t, int32_t)>& emit) const {
  const Trie& trie = normalized_tokens ? norm_ : raw_;
  const size_t n = text.size();
  if (n == 0) return;
  size_t start_offset = 0;  // end of the last emitted range
  if (trie.nodes[0].children.empty()) {
    emit(0, n, -1);
    return;
  }
  size_t pos = 0;
  while (pos < n) {
    if (!trie.first_byte[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    size_t mend = 0;
    int32_t ti = longest_match(trie, text, pos, &mend);
    if (ti < 0) {
      ++pos;
      continue;
    }
    const AddedToken& tok = tokens_[ti];
    size_t start = pos, stop = mend;
    if (tok.single_word) {
      size_t cs = 0;
      uint32_t before = start == 0 ? 0 : char_before(text, start, &cs);
      uint32_t after = 0;
      if (stop < n) utf8::decode_char(text, stop, &after);
      bool start_space = start == 0 || !is_word_char(before);
      bool stop_space = stop == n || !is_word_char(after);
      if (!start_space || !stop_space) {
        pos = mend;  // aho-corasick resumes after the rejected match
        continue;
      }
    }
    if (tok.lstrip) {
      size_t s = start;
      while (s > 0) {
        size_t cs = 0;
        uint32_t c = char_before(text, s, &cs);
        if (!utf8::is_whitespace(c)) break;
        s = cs;
      }
      start = std::max(s, start_offset);
    }
    if (tok.rstrip) stop = n - utf8::trim_whitespace(text.substr(stop), true, false).size();
    if (start < start_offset) {  // overlaps whitespace a previous rstrip took: HF would misbehave; skip
      pos = mend;
      continue;
    }
    if (start_offset < start) emit(start_offset, start, -1);
    emit(start, stop, tok.id);
    start_offset = stop;
    pos = std::max(mend, stop);
  }
  if (start_offset < n) emit(start_offset, n, -1);
}

}  // namespace tandem

