// SseParser implementation: scans each fed chunk for line ends without copying complete lines.
#include "bench/sse_parser.h"

namespace tandem::bench {

void SseParser::feed(std::string_view bytes, const EventFn& on_event) {
  size_t pos = 0;
  if (skip_lf_ && !bytes.empty()) {
    if (bytes[0] == '\n') pos = 1;
    skip_lf_ = false;
  }
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

void SseParser::process_line(std::string_view line, const EventFn& on_event) {
  if (line.empty()) {
    if (has_data_) {
      on_event(data_);
      data_.clear();
      has_data_ = false;
    }
    return;
  }
  if (line[0] == ':') return;  // comment / keep-alive ping
  size_t colon = line.find(':');
  std::string_view field = line.substr(0, colon);
  if (field != "data") return;  // event:, id:, retry: and unknown fields are not used here
  std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
  if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
  if (has_data_) data_.push_back('\n');
  data_.append(value);
  has_data_ = true;
}

}  // namespace tandem::bench
