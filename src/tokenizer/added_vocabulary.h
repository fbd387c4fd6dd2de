// AddedVocabulary: the tokenizer.json "added_tokens" (special and user tokens) and how encode splits
// text around them before the model sees it: leftmost-longest exact matching (as HF's Aho-Corasick with
// MatchKind::LeftmostLongest), honouring single_word, lstrip and rstrip. Tokens with normalized=false
// are matched in the raw text, tokens with normalized=true in the normalized text.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
};

class AddedVocabulary {
 public:
  explicit AddedVocabulary(std::vector<AddedToken> tokens);

  const std::vector<AddedToken>& tokens() const { return tokens_; }

  // Splits `text` into runs: calls emit(start, end, id) with id >= 0 for an added-token match (the
  // range includes whitespace taken by lstrip/rstrip) and id == -1 for the text between matches.
  // `normalized_tokens` picks which set is matched. Empty text emits nothing.
  void split(std::string_view text, bool normalized_tokens,
             const std::function<void(size_t, size_t, int32_t)>& emit) const;

  bool has_tokens(bool normalized_tokens) const {
    return !(normalized_tokens ? norm_ : raw_).nodes.empty() &&
           (normalized_tokens ? norm_ : raw_).nodes[0].children.size() > 0;
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;  // sorted by byte
    int32_t token_index = -1;                                  // index into tokens_ when a match ends here
  };
  struct Trie {
    std::vector<Node> nodes;
    bool first_byte[256] = {};
  };
  void build(Trie& trie, bool normalized);
  // Longest match starting at `pos`: returns its token index and sets *end, or -1.
  int32_t longest_match(const Trie& trie, std::string_view text, size_t pos, size_t* end) const;

  std::vector<AddedToken> tokens_;
  Trie raw_;
  Trie norm_;
};

}  // namespace tandem
