// TextStream: the text side of one request's output: incremental detokenization plus stop strings.
// Text that could be the beginning of a stop string is held back until it is known not to be one; on a
// match the text is cut before the stop string (or after it with include_stop_str_in_output).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/sampling_params.h"
#include "tokenizer/tokenizer.h"

namespace tandem {

class TextStream {
 public:
  // `tokenizer` may be null: no text, stop strings never match.
  TextStream(std::shared_ptr<const Tokenizer> tokenizer, const SamplingParams& params);

  struct Piece {
    std::string text;                        // new text to emit
    std::optional<std::string> stop_string;  // set when a stop string matched (the request stops)
  };
  // Feeds one generated token. With check_stop false (before min_tokens) stop strings are not matched.
  Piece push(int32_t token, bool check_stop);
  // The request ends for another reason: everything still held back.
  std::string finish();

  // Stop-string search on already decoded text (exposed for tests): appends `text` to the pending
  // buffer and returns the emit-able part.
  Piece push_text(const std::string& text, bool check_stop);

 private:
  std::optional<IncrementalDecoder> decoder_;
  std::vector<std::string> stops_;
  bool include_stop_;
  size_t max_stop_len_ = 0;
  std::string pending_;  // decoded, not yet emitted
  bool stopped_ = false;
};

}  // namespace tandem
