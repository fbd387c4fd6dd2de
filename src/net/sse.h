// Server-sent events framing (text/event-stream) and HTTP/1.1 chunk framing, plus an incremental SSE
// parser for clients (proxy, benchmark, tests).
#pragma once

#include <functional>
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
// The head of one HTTP/1.1 chunk of `size` bytes: "<hex size>\r\n" (short enough to stay in the string's
// inline storage, no allocation). A chunk is this, the data, then kChunkEnd.
std::string http_chunk_size_line(size_t size);
inline constexpr std::string_view kChunkEnd = "\r\n";
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

// Incremental parser for a text/event-stream (WHATWG SSE framing), the one parser of clients (proxy,
// benchmark, tests). Bytes may arrive split anywhere (inside a line, a CRLF or a UTF-8 sequence).
// Lines end in \n, \r\n or \r; comment lines (':') are skipped; "data:<value>" (one optional space after
// the colon) appends <value> to the event's data (several data lines are joined with '\n'); "event:" names
// the event; other fields (id:, retry:) are ignored. A blank line dispatches the pending event if it has
// data or an event name. finish() dispatches a last event that was not followed by a blank line (a server
// that closes the stream right after "data: [DONE]\n").
struct SseEvent {
  std::string event;  // empty: the default "message"
  std::string data;
};

// One dispatched event, valid only during the callback.
struct SseEventView {
  std::string_view event;  // empty: the default "message"
  std::string_view data;
  bool has_data = false;   // at least one data: line (false for a block with only an event: line)
};

class SseParser {
 public:
  using EventFn = std::function<void(const SseEventView& event)>;

  // Parses `bytes`, calling on_event for each event completed by them.
  void feed(std::string_view bytes, const EventFn& on_event);
  // End of stream: dispatches a pending event (lines without the closing blank line).
  void finish(const EventFn& on_event);

  // Convenience form (tests): appends `bytes` and returns the events completed by them.
  std::vector<SseEvent> feed(std::string_view bytes);

  size_t buffered_bytes() const { return line_.size() + data_.size() + event_.size(); }

 private:
  void process_line(std::string_view line, const EventFn& on_event);

  std::string line_;       // the current, incomplete line
  std::string event_;      // event name of the event being built
  std::string data_;       // data of the event being built
  bool has_data_ = false;  // at least one data: line seen for the current event
  bool skip_lf_ = false;   // the previous chunk ended in \r: a leading \n belongs to it
};

}  // namespace tandem
