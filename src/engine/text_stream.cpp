// TextStream: see text_stream.h.
#include "engine/text_stream.h"

#include <algorithm>

namespace tandem {

TextStream::TextStream(std::shared_ptr<const Tokenizer> tokenizer, const SamplingParams& params)
    : include_stop_(params.include_stop_str_in_output) {
  if (tokenizer) decoder_.emplace(std::move(tokenizer), params.skip_special_tokens);
  for (const std::string& s : params.stop)
    if (!s.empty()) stops_.push_back(s);
  for (const std::string& s : stops_) max_stop_len_ = std::max(max_stop_len_, s.size());
}

TextStream::Piece TextStream::push(int32_t token, bool check_stop) {
  if (!decoder_ || stopped_) return {};
  return push_text(decoder_->step(token), check_stop);
}

TextStream::Piece TextStream::push_text(const std::string& text, bool check_stop) {
  Piece piece;
  if (stopped_) return piece;
  const size_t old_size = pending_.size();
  pending_ += text;
  if (stops_.empty()) {
    piece.text.swap(pending_);
    return piece;
  }
  if (check_stop) {
    // A match must end inside the new text (older text was checked already), so it starts at or after
    // old_size - (max_stop_len - 1).
    size_t from = old_size >= max_stop_len_ ? old_size - max_stop_len_ + 1 : 0;
    size_t best = std::string::npos;
    const std::string* best_stop = nullptr;
    for (const std::string& s : stops_) {
      size_t pos = pending_.find(s, from);
      if (pos != std::string::npos && pos < best) {
        best = pos;
        best_stop = &s;
      }
    }
    if (best_stop) {
      stopped_ = true;
      piece.text = pending_.substr(0, best + (include_stop_ ? best_stop->size() : 0));
      piece.stop_string = *best_stop;
      pending_.clear();
      return piece;
    }
  }
  // Hold back the longest suffix that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& s : stops_) {
    size_t max_k = std::min(s.size() - 1, pending_.size());
    for (size_t k = max_k; k > hold; --k) {
      if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  piece.text = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return piece;
}

std::string TextStream::finish() {
  if (stopped_) return {};
  std::string out;
  out.swap(pending_);
  if (decoder_) out += decoder_->flush();
  stopped_ = true;
  return out;
}

}  // namespace tandem
