// run_serve: the body of `tandem serve` once its flags are parsed: builds the KV connector (from
// --kv-transfer-config), the engine and the OpenAI server, logs the ready line, and serves until
// SIGINT/SIGTERM, then drains in-flight requests up to a deadline and returns.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/termination_signals.h"
#include "engine/engine_config.h"
#include "net/http_server.h"

namespace tandem {

struct ServeSettings {
  EngineConfig engine;
  std::vector<std::string> served_model_names;
  std::string api_key;
  std::string kv_transfer_config;  // JSON text or a YAML/JSON file; empty: standalone
  std::string chat_template;       // --chat-template; empty: the model's
  HttpServerOptions http;
  std::chrono::milliseconds shutdown_timeout{10000};
};

// Callers block SIGINT/SIGTERM with block_termination_signals() (common/termination_signals.h, included
// here) before any thread starts, so that they are delivered to run_serve's wait.

// Returns ok after a clean shutdown; an error when start-up failed.
Status run_serve(const ServeSettings& settings);

}  // namespace tandem
