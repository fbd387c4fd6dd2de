// PCRE2 wrapper: compile with UTF|UCP, JIT-compile, and a pooled match loop (see regex.h).
#include "tokenizer/regex.h"

namespace tandem {

Result<std::unique_ptr<Regex>> Regex::compile(std::string_view pattern) {
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &err, &err_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof(buf));
    return InvalidArgumentError("bad regex '{}': {} at offset {}", pattern, reinterpret_cast<char*>(buf),
                                err_offset);
  }
  std::unique_ptr<Regex> re(new Regex());
  re->code_ = code;
  re->jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return re;
}

Regex::~Regex() {
  for (Scratch* s : pool_) {
    pcre2_match_data_free(s->match_data);
    pcre2_match_context_free(s->match_context);
    if (s->jit_stack) pcre2_jit_stack_free(s->jit_stack);
    delete s;
  }
  pcre2_code_free(code_);
}

Regex::Scratch* Regex::acquire() const {
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    if (!pool_.empty()) {
      Scratch* s = pool_.back();
      pool_.pop_back();
      return s;
    }
  }
  auto* s = new Scratch();
  s->match_data = pcre2_match_data_create_from_pattern(code_, nullptr);
  s->match_context = pcre2_match_context_create(nullptr);
  if (jit_) {
    // Long whitespace runs make `\s+(?!\S)` backtrack deeply; 32 KiB default stack is too small.
    s->jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    if (s->jit_stack) pcre2_jit_stack_assign(s->match_context, nullptr, s->jit_stack);
  }
  return s;
}

void Regex::release(Scratch* s) const {
  std::lock_guard<std::mutex> lock(pool_mu_);
  pool_.push_back(s);
}

void Regex::find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>>& out) const {
  Scratch* s = acquire();
  auto subj = reinterpret_cast<PCRE2_SPTR>(subject.data());
  const size_t n = subject.size();
  size_t offset = 0;
  uint32_t extra = 0;  // PCRE2_NOTEMPTY_ATSTART|PCRE2_ANCHORED after an empty match
  while (offset <= n) {
    int rc;
    if (jit_) {
      rc = pcre2_jit_match(code_, subj, n, offset, extra | PCRE2_NO_UTF_CHECK, s->match_data,
                           s->match_context);
      if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
        rc = pcre2_match(code_, subj, n, offset, extra | PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                         s->match_data, s->match_context);
      }
    } else {
      rc = pcre2_match(code_, subj, n, offset, extra | PCRE2_NO_UTF_CHECK, s->match_data,
                       s->match_context);
    }
    if (rc == PCRE2_ERROR_NOMATCH) {
      if (extra == 0) break;
      // No non-empty match at `offset`: step over one character.
      extra = 0;
      ++offset;
      while (offset < n && (static_cast<unsigned char>(subject[offset]) & 0xC0) == 0x80) ++offset;
      continue;
    }
    if (rc < 0) break;  // resource limit or internal error: leave the rest unmatched
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s->match_data);
    size_t start = ov[0], end = ov[1];
    if (end > start) out.emplace_back(start, end);
    if (end == start) {
      extra = PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED;
    } else {
      extra = 0;
    }
    offset = end;
    if (offset >= n && extra == 0) break;
    if (offset >= n) break;
  }
  release(s);
}

}  // namespace tandem
