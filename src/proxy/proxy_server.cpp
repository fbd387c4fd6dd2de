// ProxyServer: routes, auth, health and lifecycle of `tandem proxy` (see proxy_server.h).
#include "proxy/proxy_server.h"

#include <random>

#include "common/logging.h"
#include "proxy/stream_merger.h"

namespace tandem::proxy {

namespace {

void send_error(const std::shared_ptr<ResponseWriter>& w, int status, std::string_view message) {
  w->send(error_response(status, message));
}

}  // namespace

Result<std::unique_ptr<ProxyServer>> ProxyServer::create(ProxyConfig config) {
  TANDEM_RETURN_IF_ERROR(config.validate());
  std::unique_ptr<ProxyServer> p(new ProxyServer(std::move(config)));
  auto add_all = [&](const std::vector<std::string>& urls, InstanceRole role) -> Status {
    for (const auto& u : urls) {
      auto idx = p->registry_.add(role, u);
      if (!idx.ok()) return idx.status();
    }
    return Status::Ok();
  };
  TANDEM_RETURN_IF_ERROR(add_all(p->config_.prefill_urls, InstanceRole::kPrefill));
  TANDEM_RETURN_IF_ERROR(add_all(p->config_.decode_urls, InstanceRole::kDecode));
  TANDEM_RETURN_IF_ERROR(add_all(p->config_.colocated_urls, InstanceRole::kColocated));
  HttpServerOptions opts;
  opts.host = p->config_.host;
  opts.port = p->config_.port;
  opts.num_io_threads = p->config_.server_threads;
  opts.context_per_thread = true;
  opts.thread_name = "proxy-io";
  opts.read_timeout = std::chrono::milliseconds(120000);
  opts.error_response = [](int status, std::string_view message) { return error_response(status, message); };
  p->server_ = std::make_unique<HttpServer>(std::move(opts), p->router_.as_handler());
  if (p->config_.upstream_threads > 0) {
    p->pool_ = std::make_unique<UpstreamPool>(p->config_.upstream_threads, p->registry_);
  } else {
    std::vector<boost::asio::io_context*> contexts;
    for (size_t i = 0; i < p->server_->num_io_contexts(); ++i) contexts.push_back(&p->server_->io_context(i));
    p->pool_ = std::make_unique<UpstreamPool>(contexts, p->registry_);
  }
  p->ctx_ = std::make_unique<ProxyContext>(ProxyContext{p->config_, p->registry_, p->metrics_, *p->pool_});
  p->health_ = std::make_unique<HealthChecker>(*p->pool_, 0, p->registry_, p->metrics_, p->config_.health_interval,
                                               p->config_.health_timeout);
  return p;
}

ProxyServer::ProxyServer(ProxyConfig config) : config_(std::move(config)), registry_(config_.routing) {
  ProxyServer* self = this;
  router_.add("POST", "/v1/completions", [self](const HttpRequest& r, std::shared_ptr<ResponseWriter> w) {
    self->handle_generate(ApiKind::kCompletions, r, std::move(w));
  });
  router_.add("POST", "/v1/chat/completions", [self](const HttpRequest& r, std::shared_ptr<ResponseWriter> w) {
    self->handle_generate(ApiKind::kChat, r, std::move(w));
  });
  router_.add("GET", "/health", [self](const HttpRequest& r, std::shared_ptr<ResponseWriter> w) {
    self->handle_health(r, std::move(w));
  });
  router_.add("GET", "/v1/models", [self](const HttpRequest& r, std::shared_ptr<ResponseWriter> w) {
    self->handle_models(r, std::move(w));
  });
  router_.add("GET", "/metrics", [self](const HttpRequest& r, std::shared_ptr<ResponseWriter> w) {
    self->handle_metrics(r, std::move(w));
  });
  router_.set_not_found([](const HttpRequest& r, std::shared_ptr<ResponseWriter> w) {
    send_error(w, 404, fmt::format("no route for {} {}", r.method, r.path));
  });
  router_.set_method_not_allowed([](const HttpRequest& r, std::shared_ptr<ResponseWriter> w) {
    send_error(w, 405, fmt::format("method {} is not allowed on {}", r.method, r.path));
  });
}

ProxyServer::~ProxyServer() { stop(); }

Status ProxyServer::start() {
  if (started_ || stopped_) return FailedPreconditionError("the proxy is already started");
  Status st = server_->start();
  if (!st.ok()) {
    stop();
    return st.with_context(fmt::format("proxy on {}:{}", config_.host, config_.port));
  }
  pool_->start();
  started_ = true;
  health_->start();
  std::string fleet;
  for (const auto& s : registry_.snapshot()) fleet += fmt::format(" {}={}", instance_role_name(s.role), s.url);
  TLOG_INFO("proxy: listening on http://{}:{} ({} routing);{}", config_.host, server_->port(),
            config_.routing == RoutingPolicy::kRoundRobin ? "round_robin" : "least_loaded", fleet);
  return Status::Ok();
}

void ProxyServer::stop(std::chrono::milliseconds grace) {
  if (stopped_) return;
  stopped_ = true;
  if (server_) {
    server_->stop_accepting();
    if (grace.count() > 0) server_->wait_idle(grace);
  }
  if (started_) health_->stop();
  if (server_) server_->stop();  // closes client connections: their requests cancel upstream
  // After the server's threads are joined: a pool sharing its io_contexts destroys its clients here.
  if (pool_) pool_->stop();
}

size_t ProxyServer::pick_shard() {
  // Upstream work runs on this connection's own thread when the pool shares the server's threads.
  if (auto current = pool_->current_shard()) return *current;
  return pool_->next_shard();
}

bool ProxyServer::authorized(const HttpRequest& req, const std::shared_ptr<ResponseWriter>& w) {
  if (config_.api_key.empty()) return true;
  std::string_view auth = req.header("Authorization");
  if (auth == "Bearer " + config_.api_key) return true;
  send_error(w, 401, "invalid or missing API key (send 'Authorization: Bearer <key>')");
  return false;
}

bool ProxyServer::healthy() const {
  if (config_.colocated()) return registry_.any_healthy(InstanceRole::kColocated);
  return registry_.any_healthy(InstanceRole::kPrefill) && registry_.any_healthy(InstanceRole::kDecode);
}

void ProxyServer::handle_generate(ApiKind kind, const HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
  (kind == ApiKind::kChat ? metrics_.requests_chat : metrics_.requests_completions)
      .fetch_add(1, std::memory_order_relaxed);
  if (!authorized(req, w)) {
    metrics_.errors_client.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    metrics_.errors_client.fetch_add(1, std::memory_order_relaxed);
    return send_error(w, 400, "the request body is not valid JSON");
  }
  auto info = inspect_request(body, kind);
  if (!info.ok()) {
    metrics_.errors_client.fetch_add(1, std::memory_order_relaxed);
    return send_error(w, 400, info.status().message());
  }
  if (info->stream) metrics_.requests_streaming.fetch_add(1, std::memory_order_relaxed);

  std::vector<net::HttpHeader> fwd;
  if (std::string_view a = req.header("Authorization"); !a.empty()) fwd.push_back({"Authorization", std::string(a)});
  std::string_view rid = req.header("X-Request-Id");
  fwd.push_back({"X-Request-Id", rid.empty() ? fmt::format("proxy-{}", next_request_id_.fetch_add(1)) : std::string(rid)});

  const size_t shard = pick_shard();
  auto request = std::make_shared<ProxyRequest>(*ctx_, shard, std::move(*info), std::move(body), req.body,
                                                std::move(fwd), w);
  UpstreamPool* pool = pool_.get();
  w->on_close([pool, shard, weak = std::weak_ptr<ProxyRequest>(request)] {
    pool->post(shard, [weak] {
      if (auto r = weak.lock()) r->abort_for_disconnect();
    });
  });
  // On this connection's own thread (the pool shares the server's threads) the request starts at once,
  // instead of queueing behind every other ready handler of the event loop (during a burst of
  // arrivals, all the other connections' reads).
  pool_->dispatch(shard, [request] { request->start(); });
}

void ProxyServer::handle_health(const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
  if (healthy()) return w->send(HttpResponse::text(200, ""));
  send_error(w, 503, config_.colocated() ? "no healthy instance" : "no healthy prefill or no healthy decode instance");
}

void ProxyServer::handle_metrics(const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
  w->send(HttpResponse::text(200, metrics_.render(registry_.snapshot()), "text/plain; version=0.0.4; charset=utf-8"));
}

void ProxyServer::handle_models(const HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
  if (!authorized(req, w)) return;
  const InstanceRole role = config_.colocated() ? InstanceRole::kColocated : InstanceRole::kDecode;
  std::optional<size_t> pick;
  for (const auto& s : registry_.snapshot()) {
    if (s.role != role) continue;
    if (s.healthy) {
      pick = s.index;
      break;
    }
    if (!pick) pick = s.index;
  }
  if (!pick) return send_error(w, 503, "no decode instance");
  net::HttpClientRequest up;
  up.method = "GET";
  up.target = registry_.url(*pick).base_path + "/v1/models";
  if (std::string_view a = req.header("Authorization"); !a.empty()) up.headers.push_back({"Authorization", std::string(a)});
  up.connect_timeout = config_.connect_timeout;
  up.idle_timeout = std::chrono::milliseconds(30000);
  up.total_timeout = std::chrono::milliseconds(30000);
  const size_t shard = pick_shard();
  UpstreamPool* pool = pool_.get();
  pool_->post(shard, [pool, shard, idx = *pick, up = std::move(up), w]() mutable {
    auto status = std::make_shared<int>(0);
    auto body = std::make_shared<std::string>();
    pool->client(shard, idx).request(
        std::move(up), {.on_head = [status](const net::HttpResponseHead& h) { *status = h.status; },
                        .on_body = [body](std::string_view p) { body->append(p); },
                        .on_complete = [status, body, w](const Status& st) {
                          if (!st.ok()) return send_error(w, 502, "decode instance: " + st.to_string());
                          w->send(HttpResponse::json(*status, std::move(*body)));
                        }});
  });
}

}  // namespace tandem::proxy
