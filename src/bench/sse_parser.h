// SseParser: incremental parser for a Server-Sent Events stream (text/event-stream), as the OpenAI
// streaming APIs send it: "data: <json>\n\n" events, ": comment" lines (pings), and a final
// "data: [DONE]". Bytes may arrive split anywhere (inside a line, a CRLF or a UTF-8 sequence).
//
// Framing (WHATWG SSE): lines end in \n, \r\n or \r; a line "data:<value>" (one optional space after
// the colon) appends <value> to the event's data (several data lines are joined with \n); lines starting
// with ':' are comments; other fields (event:, id:, retry:) are ignored; a blank line dispatches the
// event if it has data. finish() dispatches a last event that was not followed by a blank line (a server
// that closes the stream right after "data: [DONE]\n").
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace tandem::bench {

class SseParser {
 public:
  using EventFn = std::function<void(std::string_view data)>;

  // Parses `bytes`, calling on_event(data) for each event completed by them.
  void feed(std::string_view bytes, const EventFn& on_event);
  // End of stream: dispatches a pending event (data lines without the closing blank line).
  void finish(const EventFn& on_event);

  size_t buffered_bytes() const { return line_.size() + data_.size(); }

 private:
  void process_line(std::string_view line, const EventFn& on_event);

  std::string line_;        // the current, incomplete line
  std::string data_;        // data of the event being built
  bool has_data_ = false;   // at least one data: line seen for the current event
  bool skip_lf_ = false;    // the previous chunk ended in \r: a leading \n belongs to it
};

}  // namespace tandem::bench
