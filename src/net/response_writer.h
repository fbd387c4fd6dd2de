// ResponseWriter: how an HTTP handler answers one request, now or later, from any thread.
//
// A handler either sends one full response (send) or streams a chunked body (start_stream, then
// write ... , then finish). Every method is thread-safe and non-blocking: the work is posted to the
// connection's strand. Calls after the response is complete, or after the client went away, are
// ignored. If the last reference to a writer is dropped before a response was sent, the server answers
// 500 so that no connection is left hanging.
#pragma once

#include <functional>
#include <string>

#include "net/http_message.h"

namespace tandem {

class ResponseWriter {
 public:
  virtual ~ResponseWriter() = default;

  // A complete response with Content-Length.
  virtual void send(HttpResponse response) = 0;

  // Starts a chunked (Transfer-Encoding: chunked) response; for "text/event-stream" it also sets
  // Cache-Control: no-cache. Each write() becomes one chunk, finish() sends the last chunk.
  virtual void start_stream(int status, std::string content_type, HttpHeaders headers = {}) = 0;
  virtual void write(std::string data) = 0;
  virtual void finish() = 0;

  // True once the client disconnected, the connection timed out, or a write failed (before the response
  // was complete).
  virtual bool is_closed() const = 0;
  // `fn` runs once, on the connection's strand, if the connection closes before the response is
  // complete (client disconnect, timeout, write error, output backlog overflow, server stop). Runs at
  // once (posted) when already closed. Not called after a normal completion.
  virtual void on_close(std::function<void()> fn) = 0;

  // Runs `fn` on the connection's strand (serialised with the connection's own work); use it to hand
  // results produced on other threads (e.g. an engine channel's on_push) to the response. `fn` runs
  // even after the connection closed (until the server stops).
  virtual void post(std::function<void()> fn) = 0;
};

}  // namespace tandem
