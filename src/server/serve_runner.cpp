// run_serve: engine + connector + OpenAI server lifecycle for `tandem serve`.
#include "server/serve_runner.h"

#include <csignal>

#include "common/logging.h"
#include "common/termination_signals.h"
#include "disagg/kv_connector_factory.h"
#include "disagg/kv_transfer_config.h"
#include "server/openai_server.h"
#include "tokenizer/tokenizer.h"

namespace tandem {

Status run_serve(const ServeSettings& s) {
  EngineConfig config = s.engine;
  std::unique_ptr<KvConnector> connector;
  const KvConnector* connector_view = nullptr;
  if (!s.kv_transfer_config.empty()) {
    Result<KvTransferConfig> kv = parse_kv_transfer_config(s.kv_transfer_config);
    if (!kv.ok()) return kv.status().with_context("--kv-transfer-config");
    Result<std::unique_ptr<KvConnector>> c = create_kv_connector(*kv);
    if (!c.ok()) return c.status().with_context("--kv-transfer-config");
    connector = std::move(c).value();
    connector_view = connector.get();
    config.kv_transfer_config_json = s.kv_transfer_config;
  }

  std::shared_ptr<const Tokenizer> tokenizer;
  if (!s.chat_template.empty()) {
    auto tok = Tokenizer::load(config.model_dir, s.chat_template);
    if (!tok.ok()) return tok.status().with_context("--chat-template");
    tokenizer = std::move(tok).value();
  }

  TLOG_INFO("loading model from {} (device {}, load format {})", config.model_dir.string(), device_name(config.device),
            config.load_format);
  Result<std::unique_ptr<Engine>> engine = Engine::create(config, std::move(connector));
  if (!engine.ok()) return engine.status().with_context("starting the engine");
  std::unique_ptr<ServingEngine> serving = make_serving_engine(**engine, connector_view, tokenizer);

  OpenAiServerOptions options;
  options.served_model_names = s.served_model_names;
  options.api_key = s.api_key;
  options.http = s.http;
  auto server = std::make_unique<OpenAiServer>(*serving, options);
  Status st = server->start();
  if (!st.ok()) {
    (*engine)->shutdown(std::chrono::milliseconds(0));
    return st;
  }
  TLOG_INFO("tandem serve ready on {} (model '{}', max_model_len {})", server->base_url(),
            s.served_model_names.front(), serving->max_model_len());

  const int sig = wait_for_termination_signal();
  TLOG_INFO("received {}; draining in-flight requests (up to {} ms)", sig == SIGINT ? "SIGINT" : "SIGTERM",
            s.shutdown_timeout.count());
  server->shutdown(s.shutdown_timeout);
  server.reset();
  (*engine)->shutdown(std::chrono::milliseconds(1000));
  serving.reset();
  engine->reset();
  TLOG_INFO("tandem serve stopped");
  return Status::Ok();
}

}  // namespace tandem
