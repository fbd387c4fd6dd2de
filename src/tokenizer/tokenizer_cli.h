// The stream logic behind `tandem tokenize` / `tandem detokenize` (kept in the library so tests can
// drive it): whole-stdin or JSON-lines input, JSON output. In JSON input, \uD800-\uDFFF escapes that
// do not form a surrogate pair are read as U+FFFD instead of failing the line.
#pragma once

#include <string>
#include <string_view>

#include "tokenizer/tokenizer.h"

namespace tandem {

struct TokenizerCliOutput {
  std::string text;   // what goes to stdout
  std::string error;  // non-empty: what went wrong (the output holds the lines before it)
};

TokenizerCliOutput tokenize_stream(const Tokenizer& tok, std::string_view input, bool jsonl,
                                   bool add_special_tokens);
TokenizerCliOutput detokenize_stream(const Tokenizer& tok, std::string_view input, bool jsonl,
                                     bool skip_special_tokens);

// Rewrites unpaired surrogate escapes in JSON text to \uFFFD.
std::string replace_lone_surrogate_escapes(std::string_view json);

}  // namespace tandem
