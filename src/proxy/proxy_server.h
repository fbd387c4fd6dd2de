// ProxyServer: `tandem proxy`, the client-facing router of a disaggregated (xPyD) or colocated fleet.
// Routes: POST /v1/completions and /v1/chat/completions (through ProxyRequest), GET /health (200 when
// at least one instance of each needed kind is healthy, else 503), GET /v1/models (from a decode
// instance), GET /metrics (Prometheus).
#pragma once

#include <memory>

#include "common/status.h"
#include "net/http_server.h"
#include "net/router.h"
#include "proxy/health_checker.h"
#include "proxy/instance_registry.h"
#include "proxy/proxy_config.h"
#include "proxy/proxy_metrics.h"
#include "proxy/proxy_request.h"
#include "proxy/upstream_pool.h"

namespace tandem::proxy {

class ProxyServer {
 public:
  // Validates the config and registers the instances; start() opens the port.
  static Result<std::unique_ptr<ProxyServer>> create(ProxyConfig config);
  ~ProxyServer();  // stop()
  ProxyServer(const ProxyServer&) = delete;
  ProxyServer& operator=(const ProxyServer&) = delete;

  Status start();
  int port() const { return server_ ? server_->port() : 0; }
  // Stops accepting, lets in-flight requests finish for up to `grace`, then closes everything.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(0));

  InstanceRegistry& registry() { return registry_; }
  ProxyMetrics& metrics() { return metrics_; }

 private:
  explicit ProxyServer(ProxyConfig config);
  void handle_generate(ApiKind kind, const HttpRequest& req, std::shared_ptr<ResponseWriter> w);
  void handle_health(const HttpRequest& req, std::shared_ptr<ResponseWriter> w);
  void handle_models(const HttpRequest& req, std::shared_ptr<ResponseWriter> w);
  void handle_metrics(const HttpRequest& req, std::shared_ptr<ResponseWriter> w);
  bool authorized(const HttpRequest& req, const std::shared_ptr<ResponseWriter>& w);
  bool healthy() const;
  size_t pick_shard();  // the upstream shard for a request handled on the calling thread

  ProxyConfig config_;
  InstanceRegistry registry_;
  ProxyMetrics metrics_;
  Router router_;
  // Declared before the pool and the health checker: by default they run on the server's io_contexts,
  // which must outlive everything bound to them.
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<UpstreamPool> pool_;
  std::unique_ptr<ProxyContext> ctx_;
  std::unique_ptr<HealthChecker> health_;
  std::atomic<uint64_t> next_request_id_{0};
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace tandem::proxy
