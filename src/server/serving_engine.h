// ServingEngine: what the OpenAI server needs from an engine. make_serving_engine() adapts a real
// tandem::Engine; tests and the server-overhead benchmark use small fakes, so the HTTP layer can be
// exercised and measured without a model.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "engine/engine.h"
#include "engine/kv_connector.h"

namespace tandem {

class ServingEngine {
 public:
  virtual ~ServingEngine() = default;
  // As Engine::add_request (thread-safe; the channel is closed after the final output).
  virtual Result<std::shared_ptr<OutputChannel>> add_request(EngineRequest request) = 0;
  virtual void abort_request(const std::string& request_id) = 0;
  virtual EngineMetrics metrics() const = 0;
  virtual int32_t max_model_len() const = 0;
  virtual std::shared_ptr<const Tokenizer> tokenizer() const = 0;
  // Transfer statistics when the engine has a KV connector.
  virtual std::optional<KvConnectorMetrics> connector_metrics() const { return std::nullopt; }
};

// Wraps `engine` (not owned; must outlive the adapter). `connector` is the KvConnector given to
// Engine::create (owned by the engine), or null. `tokenizer` replaces the engine's own (e.g. loaded
// with a --chat-template override); null: the engine's.
std::unique_ptr<ServingEngine> make_serving_engine(Engine& engine, const KvConnector* connector,
                                                   std::shared_ptr<const Tokenizer> tokenizer = nullptr);

}  // namespace tandem
