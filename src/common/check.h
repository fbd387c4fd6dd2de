// TANDEM_CHECK: aborts with file:line and a message when an internal invariant is broken. Never use it
// for input validation (that returns a Status); a CHECK failure is a bug in tandem.
#pragma once

#include <fmt/format.h>

#include <string>

namespace tandem::detail {
[[noreturn]] void check_failed(const char* file, int line, const char* expr, const std::string& msg);
}  // namespace tandem::detail

#define TANDEM_CHECK(cond, ...)                                                               \
  do {                                                                                        \
    if (!(cond)) [[unlikely]] {                                                               \
      ::tandem::detail::check_failed(__FILE__, __LINE__, #cond, ::fmt::format("" __VA_ARGS__)); \
    }                                                                                         \
  } while (0)

#define TANDEM_CHECK_EQ(a, b) TANDEM_CHECK((a) == (b), "{} vs {}", (a), (b))
#define TANDEM_CHECK_LT(a, b) TANDEM_CHECK((a) < (b), "{} vs {}", (a), (b))
#define TANDEM_CHECK_LE(a, b) TANDEM_CHECK((a) <= (b), "{} vs {}", (a), (b))
#define TANDEM_CHECK_GE(a, b) TANDEM_CHECK((a) >= (b), "{} vs {}", (a), (b))
