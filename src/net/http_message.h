// Plain HTTP request/response values shared by the server (net/http_server.h), its handlers and the
// proxy. Deliberately free of Beast types so that handler code does not depend on Beast.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tandem {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// Case-insensitive ASCII comparison (HTTP header names).
bool iequals(std::string_view a, std::string_view b);

struct HttpRequest {
  std::string method;   // "GET", "POST", ...
  std::string target;   // as sent: "/v1/models?x=1"
  std::string path;     // target without the query: "/v1/models"
  std::string query;    // after '?', may be empty
  int version = 11;     // 10 or 11
  HttpHeaders headers;  // in arrival order, names as sent
  std::string body;
  bool keep_alive = true;
  std::string remote_address;  // "ip:port" of the peer

  // First header with this name (case-insensitive), or empty.
  std::string_view header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  HttpHeaders headers;  // extra headers (Content-Length, Connection and Content-Type are set by the server)
  std::string body;

  static HttpResponse json(int status, std::string body) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    return r;
  }
  static HttpResponse text(int status, std::string body, std::string content_type = "text/plain; charset=utf-8") {
    HttpResponse r;
    r.status = status;
    r.content_type = std::move(content_type);
    r.body = std::move(body);
    return r;
  }
};

// "OK", "Not Found", ... for a status code ("Unknown" when not standard).
std::string_view http_reason_phrase(int status);

}  // namespace tandem
