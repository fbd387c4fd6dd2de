// HttpRequest helpers and reason phrases.
#include "net/http_message.h"

#include <ostream>

#include <boost/beast/http/status.hpp>

namespace tandem {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return {};
}

std::string_view http_reason_phrase(int status) {
  auto sv = boost::beast::http::obsolete_reason(static_cast<boost::beast::http::status>(status));
  if (sv.empty()) return "Unknown";
  return {sv.data(), sv.size()};
}

}  // namespace tandem
