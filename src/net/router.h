// Router: maps (method, exact path) to a handler. An unknown path goes to the not-found handler (by
// default a plain 404), a known path with another method gets 405 with an Allow header.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "net/http_message.h"
#include "net/response_writer.h"

namespace tandem {

using HttpHandler = std::function<void(const HttpRequest&, std::shared_ptr<ResponseWriter>)>;

class Router {
 public:
  void add(std::string method, std::string path, HttpHandler handler);
  void set_not_found(HttpHandler handler) { not_found_ = std::move(handler); }
  void set_method_not_allowed(HttpHandler handler) { method_not_allowed_ = std::move(handler); }

  // Dispatches one request (the HttpServer's handler).
  void handle(const HttpRequest& request, std::shared_ptr<ResponseWriter> writer) const;
  // A handler bound to this router (the router must outlive the server).
  HttpHandler as_handler() const {
    return [this](const HttpRequest& r, std::shared_ptr<ResponseWriter> w) { handle(r, std::move(w)); };
  }

 private:
  std::map<std::string, std::map<std::string, HttpHandler>> routes_;  // path -> method -> handler
  HttpHandler not_found_;
  HttpHandler method_not_allowed_;
};

}  // namespace tandem
