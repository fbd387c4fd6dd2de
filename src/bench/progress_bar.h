// ProgressBar: a tqdm-style progress line ("  40%|████      | 40/100 [00:02<00:03, 19.87it/s]") redrawn
// in place on a terminal, at most every 100 ms. Disabled (no output at all) when `enabled` is false;
// callers enable it only when the stream is a TTY and --disable-tqdm was not given.
#pragma once

#include <cstdio>

#include "common/clock.h"

namespace tandem::bench {

class ProgressBar {
 public:
  ProgressBar(size_t total, std::FILE* out, bool enabled);
  ~ProgressBar();
  void update(size_t n = 1);
  void close();  // final redraw and newline (idempotent)

 private:
  void draw();

  size_t total_;
  size_t done_ = 0;
  std::FILE* out_;
  bool enabled_;
  bool closed_ = false;
  TimePoint start_;
  TimePoint last_draw_;
};

}  // namespace tandem::bench
