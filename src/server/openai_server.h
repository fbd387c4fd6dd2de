// OpenAiServer: the OpenAI-compatible HTTP API of `tandem serve` over a ServingEngine.
//   POST /v1/completions, POST /v1/chat/completions (streaming and not), GET /v1/models,
//   POST /tokenize, POST /detokenize, GET /health, GET|POST /ping, GET /version, GET /metrics.
// Handlers run on the HTTP I/O threads (parse, tokenize, enqueue) and never block on the engine; a
// GenerationStream per request carries the outputs back. Errors use the OpenAI JSON shape.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "net/http_server.h"
#include "server/api_error.h"
#include "server/generation_stream.h"
#include "server/openai_request.h"
#include "server/server_metrics.h"
#include "server/serving_engine.h"

namespace tandem {

struct OpenAiServerOptions {
  std::vector<std::string> served_model_names;  // the first is reported in responses; must not be empty
  std::string api_key;                          // empty: no authentication
  std::string version = "0.1.0";
  HttpServerOptions http;
};

class OpenAiServer {
 public:
  OpenAiServer(ServingEngine& engine, OpenAiServerOptions options);
  ~OpenAiServer();  // shutdown(0) if still running
  OpenAiServer(const OpenAiServer&) = delete;
  OpenAiServer& operator=(const OpenAiServer&) = delete;

  Status start();
  int port() const { return http_ ? http_->port() : 0; }
  std::string base_url() const;

  // Stops accepting connections, lets in-flight requests finish for up to `deadline`, aborts the rest,
  // and stops the HTTP server. The engine is left running (its owner shuts it down).
  void shutdown(std::chrono::milliseconds deadline);

  size_t num_active_requests() const;

 private:
  void register_routes();
  bool authorized(const HttpRequest& req) const;
  bool model_known(const std::string& model) const;

  void handle_generate(ApiEndpoint endpoint, const HttpRequest& req, std::shared_ptr<ResponseWriter> w);
  void handle_models(const HttpRequest& req, std::shared_ptr<ResponseWriter> w);
  void handle_tokenize(const HttpRequest& req, std::shared_ptr<ResponseWriter> w);
  void handle_detokenize(const HttpRequest& req, std::shared_ptr<ResponseWriter> w);
  void handle_health(const HttpRequest& req, std::shared_ptr<ResponseWriter> w);
  void handle_metrics(const HttpRequest& req, std::shared_ptr<ResponseWriter> w);

  std::string new_request_id();

  ServingEngine& engine_;
  OpenAiServerOptions options_;
  ServerMetrics metrics_;
  Router router_;
  std::shared_ptr<PostGate> gate_;
  int64_t created_ = 0;

  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<GenerationStream>> active_;
  std::mt19937_64 rng_;
  bool shutting_down_ = false;

  std::unique_ptr<HttpServer> http_;  // last: destroyed first, while the rest is alive
};

}  // namespace tandem
