// Server-sent events framing (text/event-stream) and HTTP/1.1 chunk framing, plus an incremental SSE
// parser for clients (proxy, benchmark, tests).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tandem {

// "data: <payload>\n\n"; a payload with newlines becomes several data lines (the SSE rule).
std::string sse_data(std::string_view payload);
// "event: <name>\ndata: <payload>\n\n".
std::string sse_event(std::string_view name, std::string_view payload);
// ": <text>\n\n" (ignored by clients; a keep-alive).
std::string sse_comment(std::string_view text);
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

// One HTTP/1.1 chunk: "<hex size>\r\n<data>\r\n". Empty data gives nothing (the last chunk is kLastChunk).
std::string http_chunk(std::string_view data);
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

// Incremental parser: feed bytes as they arrive, get complete events. Lines end in \n or \r\n; comment
// lines (':') are skipped; multiple data lines are joined with '\n'.
struct SseEvent {
  std::string event;  // empty: the default "message"
  std::string data;
};

class SseParser {
 public:
  // Appends `bytes` and returns the events completed by them.
  std::vector<SseEvent> feed(std::string_view bytes);

 private:
  void take_line(std::string_view line, std::vector<SseEvent>& out);
  std::string pending_;  // an incomplete line
  SseEvent current_;
  bool has_data_ = false;
};

}  // namespace tandem
