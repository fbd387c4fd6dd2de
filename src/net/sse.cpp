// SSE and chunk framing; the incremental SSE parser (scans each fed chunk for line ends without copying complete lines).
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

std::string http_chunk_size_line(size_t size) {
  char digits[20];
  int n = 0;
  for (size_t v = size; v != 0; v >>= 4) digits[n++] = "0123456789abcdef"[v & 0xf];
  if (n == 0) digits[n++] = '0';
  std::string out;
  while (n > 0) out += digits[--n];
  out += kChunkEnd;
  return out;
}

std::string http_chunk(std::string_view data) {
  if (data.empty()) return {};
  std::string out = http_chunk_size_line(data.size());
  out.reserve(out.size() + data.size() + kChunkEnd.size());
  out.append(data);
  out += kChunkEnd;
  return out;
}

void SseParser::feed(std::string_view bytes, const EventFn& on_event) {
  size_t pos = 0;
  if (skip_lf_ && !bytes.empty()) {
    if (bytes[0] == '\n') pos = 1;
    skip_lf_ = false;
  }
  // Complete lines are parsed in place; only a line split across chunks is copied.
  while (pos < bytes.size()) {
    size_t end = bytes.find_first_of("\r\n", pos);
    if (end == std::string_view::npos) {
      line_.append(bytes.substr(pos));
      return;
    }
    if (line_.empty()) {
      process_line(bytes.substr(pos, end - pos), on_event);
    } else {
      line_.append(bytes.substr(pos, end - pos));
      std::string line = std::move(line_);
      line_.clear();
      process_line(line, on_event);
    }
    if (bytes[end] == '\r') {
      if (end + 1 < bytes.size()) {
        if (bytes[end + 1] == '\n') ++end;
      } else {
        skip_lf_ = true;
      }
    }
    pos = end + 1;
  }
}

void SseParser::finish(const EventFn& on_event) {
  if (!line_.empty()) {
    std::string line = std::move(line_);
    line_.clear();
    process_line(line, on_event);
  }
  process_line("", on_event);  // dispatch what is pending
}

std::vector<SseEvent> SseParser::feed(std::string_view bytes) {
  std::vector<SseEvent> out;
  feed(bytes, [&out](const SseEventView& e) { out.push_back(SseEvent{std::string(e.event), std::string(e.data)}); });
  return out;
}

void SseParser::process_line(std::string_view line, const EventFn& on_event) {
  if (line.empty()) {  // dispatch
    if (has_data_ || !event_.empty()) {
      on_event(SseEventView{.event = event_, .data = data_, .has_data = has_data_});
    }
    event_.clear();
    data_.clear();
    has_data_ = false;
    return;
  }
  if (line[0] == ':') return;  // comment / keep-alive ping
  size_t colon = line.find(':');
  std::string_view field = line.substr(0, colon);
  std::string_view value;
  if (colon != std::string_view::npos) {
    value = line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (has_data_) data_.push_back('\n');
    data_.append(value);
    has_data_ = true;
  } else if (field == "event") {
    event_.assign(value);
  }
}

}  // namespace tandem
