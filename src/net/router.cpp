// Router dispatch.
#include "net/router.h"

namespace tandem {

void Router::add(std::string method, std::string path, HttpHandler handler) {
  routes_[std::move(path)][std::move(method)] = std::move(handler);
}

void Router::handle(const HttpRequest& request, std::shared_ptr<ResponseWriter> writer) const {
  auto it = routes_.find(request.path);
  if (it == routes_.end()) {
    if (not_found_) return not_found_(request, std::move(writer));
    writer->send(HttpResponse::text(404, "Not Found\n"));
    return;
  }
  auto m = it->second.find(request.method);
  if (m != it->second.end()) return m->second(request, std::move(writer));
  if (method_not_allowed_) return method_not_allowed_(request, std::move(writer));
  std::string allow;
  for (const auto& [name, h] : it->second) {
    if (!allow.empty()) allow += ", ";
    allow += name;
  }
  HttpResponse r = HttpResponse::text(405, "Method Not Allowed\n");
  r.headers.emplace_back("Allow", allow);
  writer->send(std::move(r));
}

}  // namespace tandem
