// SSE and chunk framing.
#include "net/sse.h"

#include <fmt/format.h>

namespace tandem {

std::string sse_data(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 8);
  size_t start = 0;
  while (true) {
    size_t nl = payload.find('\n', start);
    out += "data: ";
    if (nl == std::string_view::npos) {
      out.append(payload.substr(start));
      out += '\n';
      break;
    }
    size_t end = nl;
    if (end > start && payload[end - 1] == '\r') --end;
    out.append(payload.substr(start, end - start));
    out += '\n';
    start = nl + 1;
  }
  out += '\n';
  return out;
}

std::string sse_event(std::string_view name, std::string_view payload) {
  std::string out = "event: ";
  out.append(name);
  out += '\n';
  out += sse_data(payload);
  return out;
}

std::string sse_comment(std::string_view text) { return fmt::format(": {}\n\n", text); }

std::string http_chunk(std::string_view data) {
  if (data.empty()) return {};
  char size[20];
  int n = 0;
  for (size_t v = data.size(); v != 0; v >>= 4) size[n++] = "0123456789abcdef"[v & 0xf];
  std::string out;
  out.reserve(static_cast<size_t>(n) + data.size() + 4);
  while (n > 0) out += size[--n];
  out += "\r\n";
  out.append(data);
  out += "\r\n";
  return out;
}

std::vector<SseEvent> SseParser::feed(std::string_view bytes) {
  std::vector<SseEvent> out;
  pending_.append(bytes);
  size_t start = 0;
  while (true) {
    size_t nl = pending_.find('\n', start);
    if (nl == std::string::npos) break;
    size_t end = nl;
    if (end > start && pending_[end - 1] == '\r') --end;
    take_line(std::string_view(pending_).substr(start, end - start), out);
    start = nl + 1;
  }
  pending_.erase(0, start);
  return out;
}

void SseParser::take_line(std::string_view line, std::vector<SseEvent>& out) {
  if (line.empty()) {  // dispatch
    if (has_data_ || !current_.event.empty()) out.push_back(std::move(current_));
    current_ = {};
    has_data_ = false;
    return;
  }
  if (line[0] == ':') return;
  size_t colon = line.find(':');
  std::string_view field = line.substr(0, colon);
  std::string_view value;
  if (colon != std::string_view::npos) {
    value = line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (has_data_) current_.data += '\n';
    current_.data.append(value);
    has_data_ = true;
  } else if (field == "event") {
    current_.event.assign(value);
  }
}

}  // namespace tandem
