// make_serving_engine: ServingEngine over a real tandem::Engine.
#include <algorithm>

#include "model/model_config.h"
#include "server/serving_engine.h"

namespace tandem {

namespace {

class EngineServingAdapter final : public ServingEngine {
 public:
  EngineServingAdapter(Engine& engine, const KvConnector* connector, std::shared_ptr<const Tokenizer> tokenizer)
      : engine_(engine), connector_(connector), tokenizer_(tokenizer ? std::move(tokenizer) : engine.tokenizer()) {}

  Result<std::shared_ptr<OutputChannel>> add_request(EngineRequest request) override {
    return engine_.add_request(std::move(request));
  }
  void abort_request(const std::string& request_id) override { engine_.abort_request(request_id); }
  EngineMetrics metrics() const override { return engine_.metrics(); }
  int32_t max_model_len() const override {
    int32_t n = engine_.config().max_model_len;
    return n > 0 ? n : engine_.model_config().max_position_embeddings;
  }
  std::shared_ptr<const Tokenizer> tokenizer() const override { return tokenizer_; }
  std::optional<KvConnectorMetrics> connector_metrics() const override {
    if (!connector_) return std::nullopt;
    return connector_->metrics();
  }

 private:
  Engine& engine_;
  const KvConnector* connector_;
  std::shared_ptr<const Tokenizer> tokenizer_;
};

}  // namespace

std::unique_ptr<ServingEngine> make_serving_engine(Engine& engine, const KvConnector* connector,
                                                   std::shared_ptr<const Tokenizer> tokenizer) {
  return std::make_unique<EngineServingAdapter>(engine, connector, std::move(tokenizer));
}

}  // namespace tandem
