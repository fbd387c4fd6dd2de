// ApiError: an OpenAI-shaped error ({"error": {"message", "type", "param", "code"}}) with its HTTP
// status, and the mapping from tandem's Status codes to it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "net/http_message.h"

namespace tandem {

struct ApiError {
  int http_status = 400;
  std::string message;
  std::string type = "BadRequestError";  // vLLM's names: BadRequestError, NotFoundError, ...
  std::optional<std::string> param;

  // Any status, with the error type OpenAI / vLLM use for it (api_error_type_for_status).
  static ApiError of_status(int http_status, std::string message, std::optional<std::string> param = std::nullopt);
  static ApiError bad_request(std::string message, std::optional<std::string> param = std::nullopt);
  static ApiError unauthorized(std::string message);
  static ApiError not_found(std::string message);
  static ApiError overloaded(std::string message);
  static ApiError internal(std::string message);
  // 400 for kInvalidArgument / kOutOfRange / kAlreadyExists / kFailedPrecondition, 404 kNotFound,
  // 503 kResourceExhausted / kUnavailable, 500 otherwise.
  static ApiError from_status(const Status& status);

  // {"error": {"message": ..., "type": ..., "param": ..., "code": <http status>}}
  std::string to_json() const;
  HttpResponse to_response() const;
};

// The error type name OpenAI / vLLM use for an HTTP status.
std::string_view api_error_type_for_status(int http_status);

}  // namespace tandem
