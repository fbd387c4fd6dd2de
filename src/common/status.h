// Status and Result<T>: the one error style for everything recoverable (I/O, parsing, network, bad
// requests). Broken invariants use TANDEM_CHECK (common/check.h) instead. No exception crosses a module
// or thread boundary; functions that can fail return one of these.
#pragma once

#include <fmt/format.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "common/check.h"

namespace tandem {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // bad input from a user, a file or a peer
  kNotFound,            // missing file, tensor, model, route, request id
  kAlreadyExists,
  kOutOfRange,          // e.g. a prompt longer than max_model_len
  kResourceExhausted,   // no free KV blocks, queue full
  kFailedPrecondition,  // e.g. incompatible peer (fingerprint mismatch)
  kUnavailable,         // peer unreachable, engine not ready or dead
  kDeadlineExceeded,    // a wait timed out
  kAborted,             // cancelled by the client or by shutdown
  kIoError,
  kUnimplemented,
  kInternal,
};

std::string_view status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // ok
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "NotFound: tensor 'x' missing in model.safetensors"
  std::string to_string() const;

  // Returns a copy with "context: " prepended to the message.
  Status with_context(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Factory helpers taking fmt-style format strings.
#define TANDEM_DEFINE_STATUS_FACTORY(Name)                                     \
  template <typename... Args>                                                  \
  Status Name##Error(fmt::format_string<Args...> f, Args&&... args) {          \
    return Status(StatusCode::k##Name, fmt::format(f, std::forward<Args>(args)...)); \
  }
TANDEM_DEFINE_STATUS_FACTORY(InvalidArgument)
TANDEM_DEFINE_STATUS_FACTORY(NotFound)
TANDEM_DEFINE_STATUS_FACTORY(AlreadyExists)
TANDEM_DEFINE_STATUS_FACTORY(OutOfRange)
TANDEM_DEFINE_STATUS_FACTORY(ResourceExhausted)
TANDEM_DEFINE_STATUS_FACTORY(FailedPrecondition)
TANDEM_DEFINE_STATUS_FACTORY(Unavailable)
TANDEM_DEFINE_STATUS_FACTORY(DeadlineExceeded)
TANDEM_DEFINE_STATUS_FACTORY(Aborted)
TANDEM_DEFINE_STATUS_FACTORY(IoError)
TANDEM_DEFINE_STATUS_FACTORY(Unimplemented)
TANDEM_DEFINE_STATUS_FACTORY(Internal)
#undef TANDEM_DEFINE_STATUS_FACTORY

// Result<T>: a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    TANDEM_CHECK(!std::get<Status>(v_).ok(), "Result constructed from an ok Status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & {
    TANDEM_CHECK(ok(), "Result::value() on error: {}", std::get<Status>(v_).to_string());
    return std::get<T>(v_);
  }
  const T& value() const& {
    TANDEM_CHECK(ok(), "Result::value() on error: {}", std::get<Status>(v_).to_string());
    return std::get<T>(v_);
  }
  T&& value() && {
    TANDEM_CHECK(ok(), "Result::value() on error: {}", std::get<Status>(v_).to_string());
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace tandem

#define TANDEM_CONCAT_INNER(a, b) a##b
#define TANDEM_CONCAT(a, b) TANDEM_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if `expr` (a Status) is not ok.
#define TANDEM_RETURN_IF_ERROR(expr)                   \
  do {                                                 \
    ::tandem::Status _tandem_st = (expr);              \
    if (!_tandem_st.ok()) return _tandem_st;           \
  } while (0)

// TANDEM_ASSIGN_OR_RETURN(auto x, MakeX()); declares/assigns lhs from a Result or returns its error.
#define TANDEM_ASSIGN_OR_RETURN(lhs, rexpr) \
  TANDEM_ASSIGN_OR_RETURN_IMPL(TANDEM_CONCAT(_tandem_res_, __LINE__), lhs, rexpr)
#define TANDEM_ASSIGN_OR_RETURN_IMPL(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                 \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()
