// Regex: a compiled PCRE2 pattern (UTF + Unicode properties, JIT when available) used by the Split
// pre-tokenizer and Replace normalizer. find_all() is const and thread-safe: per-call match state
// (match data, JIT stack) comes from a small pool owned by the Regex, so nothing is allocated per match.
#pragma once

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace tandem {

class Regex {
 public:
  // Compiles `pattern`; the error names the pattern and PCRE2's message and offset.
  static Result<std::unique_ptr<Regex>> compile(std::string_view pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the [start, end) byte ranges of successive non-overlapping matches in `subject` (valid
  // UTF-8). Empty matches are skipped. On a matcher failure (e.g. resource limits) the remainder is
  // left unmatched rather than failing.
  void find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>>& out) const;

  bool jit() const { return jit_; }

 private:
  struct Scratch {
    pcre2_match_data* match_data = nullptr;
    pcre2_match_context* match_context = nullptr;
    pcre2_jit_stack* jit_stack = nullptr;
  };
  Regex() = default;
  Scratch* acquire() const;
  void release(Scratch* s) const;

  pcre2_code* code_ = nullptr;
  bool jit_ = false;
  mutable std::mutex pool_mu_;
  mutable std::vector<Scratch*> pool_;
};

}  // namespace tandem
