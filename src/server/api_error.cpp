// ApiError construction and JSON rendering.
#include "server/api_error.h"

#include <nlohmann/json.hpp>

namespace tandem {

std::string_view api_error_type_for_status(int s) {
  switch (s) {
    case 400: return "BadRequestError";
    case 401: return "AuthenticationError";
    case 403: return "PermissionDeniedError";
    case 404: return "NotFoundError";
    case 405: return "MethodNotAllowedError";
    case 413: return "RequestTooLargeError";
    case 422: return "UnprocessableEntityError";
    case 429: return "RateLimitError";
    case 503: return "ServiceUnavailableError";
    default: return s >= 500 ? "InternalServerError" : "BadRequestError";
  }
}

ApiError ApiError::of_status(int status, std::string message, std::optional<std::string> param) {
  ApiError e;
  e.http_status = status;
  e.message = std::move(message);
  e.type = std::string(api_error_type_for_status(status));
  e.param = std::move(param);
  return e;
}

ApiError ApiError::bad_request(std::string message, std::optional<std::string> param) {
  return of_status(400, std::move(message), std::move(param));
}
ApiError ApiError::unauthorized(std::string message) { return of_status(401, std::move(message)); }
ApiError ApiError::not_found(std::string message) { return of_status(404, std::move(message)); }
ApiError ApiError::overloaded(std::string message) { return of_status(503, std::move(message)); }
ApiError ApiError::internal(std::string message) { return of_status(500, std::move(message)); }

ApiError ApiError::from_status(const Status& status) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition:
      return of_status(400, status.message());
    case StatusCode::kNotFound:
      return of_status(404, status.message());
    case StatusCode::kResourceExhausted:
    case StatusCode::kUnavailable:
      return of_status(503, status.message());
    default:
      return of_status(500, status.to_string());
  }
}

std::string ApiError::to_json() const {
  nlohmann::json j;
  j["error"] = {{"message", message},
                {"type", type},
                {"param", param ? nlohmann::json(*param) : nlohmann::json(nullptr)},
                {"code", http_status}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

HttpResponse ApiError::to_response() const { return HttpResponse::json(http_status, to_json()); }

}  // namespace tandem
