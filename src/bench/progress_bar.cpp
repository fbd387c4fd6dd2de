// ProgressBar implementation.
#include "bench/progress_bar.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>

namespace tandem::bench {

namespace {
std::string mmss(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  auto t = static_cast<int64_t>(s);
  if (t >= 3600) return fmt::format("{}:{:02}:{:02}", t / 3600, (t / 60) % 60, t % 60);
  return fmt::format("{:02}:{:02}", t / 60, t % 60);
}
}  // namespace

ProgressBar::ProgressBar(size_t total, std::FILE* out, bool enabled)
    : total_(total), out_(out), enabled_(enabled && out != nullptr), start_(Clock::now()), last_draw_(start_) {
  if (enabled_) draw();
}

ProgressBar::~ProgressBar() { close(); }

void ProgressBar::update(size_t n) {
  done_ += n;
  if (!enabled_) return;
  auto now = Clock::now();
  if (done_ >= total_ || now - last_draw_ >= std::chrono::milliseconds(100)) draw();
}

void ProgressBar::close() {
  if (closed_) return;
  closed_ = true;
  if (!enabled_) return;
  draw();
  std::fputc('\n', out_);
  std::fflush(out_);
}

void ProgressBar::draw() {
  last_draw_ = Clock::now();
  double elapsed = seconds_between(start_, last_draw_);
  double frac = total_ ? std::min(1.0, static_cast<double>(done_) / static_cast<double>(total_)) : 1.0;
  constexpr int kWidth = 10;
  static const char* kPartial[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
  double cells = frac * kWidth;
  int full = static_cast<int>(cells);
  std::string bar;
  for (int i = 0; i < full; ++i) bar += "█";
  int used = full;
  if (full < kWidth) {
    bar += kPartial[static_cast<int>((cells - full) * 8)];
    used += (cells - full) * 8 >= 1 ? 1 : 0;
  }
  bar += std::string(static_cast<size_t>(kWidth - used), ' ');
  double rate = elapsed > 0 ? static_cast<double>(done_) / elapsed : 0;
  double remaining = rate > 0 ? static_cast<double>(total_ - std::min(done_, total_)) / rate : NAN;
  std::fprintf(out_, "\r%3d%%|%s| %zu/%zu [%s<%s, %.2fit/s]", static_cast<int>(frac * 100), bar.c_str(), done_,
               total_, mmss(elapsed).c_str(), mmss(remaining).c_str(), rate);
  std::fflush(out_);
}

}  // namespace tandem::bench
