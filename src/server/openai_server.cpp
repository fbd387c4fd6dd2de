// OpenAiServer: routes, authentication, request admission and the small endpoints.
#include "server/openai_server.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "common/clock.h"
#include "common/logging.h"
#include "net/sse.h"
#include "tokenizer/tokenizer.h"

namespace tandem {

using nlohmann::json;

namespace {

void send_error(const std::shared_ptr<ResponseWriter>& w, const ApiError& e) { w->send(e.to_response()); }

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// A request id from X-Request-Id when it is sane, else random.
bool usable_request_id(std::string_view id) {
  if (id.empty() || id.size() > 256) return false;
  for (char c : id) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

}  // namespace

OpenAiServer::OpenAiServer(ServingEngine& engine, OpenAiServerOptions options)
    : engine_(engine),
      options_(std::move(options)),
      metrics_(options_.served_model_names.empty() ? std::string("model") : options_.served_model_names.front()),
      gate_(std::make_shared<PostGate>()),
      created_(unix_seconds()),
      rng_(std::random_device{}()) {
  if (options_.served_model_names.empty()) options_.served_model_names.push_back("model");
  register_routes();
}

OpenAiServer::~OpenAiServer() { shutdown(std::chrono::milliseconds(0)); }

std::string OpenAiServer::base_url() const {
  return fmt::format("http://{}:{}", http_ ? http_->host() : std::string("?"), port());
}

size_t OpenAiServer::num_active_requests() const {
  std::lock_guard lock(mu_);
  return active_.size();
}

Status OpenAiServer::start() {
  HttpServerOptions http = options_.http;
  http.error_response = [](int status, std::string_view message) {
    return ApiError::of_status(status, std::string(message)).to_response();
  };
  http_ = std::make_unique<HttpServer>(std::move(http), router_.as_handler());
  return http_->start();
}

void OpenAiServer::shutdown(std::chrono::milliseconds deadline) {
  if (!http_) return;
  {
    std::lock_guard lock(mu_);
    if (shutting_down_ && !http_) return;
    shutting_down_ = true;
  }
  http_->stop_accepting();
  auto until = Clock::now() + deadline;
  while (Clock::now() < until && (num_active_requests() > 0 || http_->stats().requests_in_flight > 0)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::vector<std::shared_ptr<GenerationStream>> left;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, s] : active_) left.push_back(s);
  }
  if (!left.empty()) {
    TLOG_WARN("shutdown: aborting {} request(s) still running", left.size());
    for (auto& s : left) s->abort();
    auto abort_until = Clock::now() + std::chrono::seconds(2);
    while (Clock::now() < abort_until && num_active_requests() > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    http_->wait_idle(std::chrono::milliseconds(500));  // let the final bytes reach the clients
  }
  left.clear();
  {
    std::lock_guard g(gate_->mu);
    gate_->open = false;
  }
  http_->stop();
  {
    std::lock_guard lock(mu_);
    active_.clear();
  }
  http_.reset();
}

std::string OpenAiServer::new_request_id() {
  std::lock_guard lock(mu_);
  return fmt::format("{:016x}{:016x}", rng_(), rng_());
}

bool OpenAiServer::authorized(const HttpRequest& req) const {
  if (options_.api_key.empty()) return true;
  std::string_view auth = req.header("authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (auth.size() < kBearer.size() || !iequals(auth.substr(0, kBearer.size()), kBearer)) return false;
  std::string_view key = auth.substr(kBearer.size());
  // Constant-time comparison.
  const std::string& want = options_.api_key;
  unsigned diff = key.size() == want.size() ? 0u : 1u;
  for (size_t i = 0; i < key.size(); ++i) diff |= static_cast<unsigned>(key[i] ^ want[i % want.size()]);
  return diff == 0;
}

bool OpenAiServer::model_known(const std::string& model) const {
  if (model.empty()) return true;
  for (const auto& n : options_.served_model_names) {
    if (n == model) return true;
  }
  return false;
}

void OpenAiServer::register_routes() {
  auto guarded = [this](auto fn) {
    return [this, fn](const HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
      metrics_.count_http_request();
      if (req.path.starts_with("/v1/") && !authorized(req)) {
        return send_error(w, ApiError::unauthorized("Unauthorized: a valid API key is required "
                                                    "(Authorization: Bearer <key>)"));
      }
      (this->*fn)(req, std::move(w));
    };
  };
  router_.add("POST", "/v1/completions", [this](const HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
    metrics_.count_http_request();
    if (!authorized(req)) return send_error(w, ApiError::unauthorized("Unauthorized: a valid API key is required"));
    handle_generate(ApiEndpoint::kCompletions, req, std::move(w));
  });
  router_.add("POST", "/v1/chat/completions", [this](const HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
    metrics_.count_http_request();
    if (!authorized(req)) return send_error(w, ApiError::unauthorized("Unauthorized: a valid API key is required"));
    handle_generate(ApiEndpoint::kChatCompletions, req, std::move(w));
  });
  router_.add("GET", "/v1/models", guarded(&OpenAiServer::handle_models));
  router_.add("POST", "/tokenize", guarded(&OpenAiServer::handle_tokenize));
  router_.add("POST", "/detokenize", guarded(&OpenAiServer::handle_detokenize));
  router_.add("GET", "/health", guarded(&OpenAiServer::handle_health));
  router_.add("GET", "/ping", guarded(&OpenAiServer::handle_health));
  router_.add("POST", "/ping", guarded(&OpenAiServer::handle_health));
  router_.add("GET", "/metrics", guarded(&OpenAiServer::handle_metrics));
  router_.add("GET", "/version", [this](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
    w->send(HttpResponse::json(200, dump(json{{"version", options_.version}})));
  });
  router_.set_not_found([this](const HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
    if (req.path.starts_with("/v1/") && !authorized(req)) {
      return send_error(w, ApiError::unauthorized("Unauthorized: a valid API key is required"));
    }
    send_error(w, ApiError::not_found(fmt::format("Route {} {} not found", req.method, req.path)));
  });
  router_.set_method_not_allowed([](const HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
    send_error(w, ApiError::of_status(405, fmt::format("Method {} not allowed for {}", req.method, req.path)));
  });
}

void OpenAiServer::handle_generate(ApiEndpoint endpoint, const HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
  TimePoint arrival = Clock::now();
  bool chat = endpoint == ApiEndpoint::kChatCompletions;
  Result<OpenAiRequest> parsed = chat ? parse_chat_request(req.body) : parse_completion_request(req.body);
  if (!parsed.ok()) return send_error(w, ApiError::bad_request(parsed.status().message()));
  OpenAiRequest& r = parsed.value();
  if (!model_known(r.model)) {
    return send_error(w, ApiError::not_found(fmt::format("The model `{}` does not exist.", r.model)));
  }
  {
    std::lock_guard lock(mu_);
    if (shutting_down_) return send_error(w, ApiError::overloaded("The server is shutting down"));
  }

  // Tokenize on this I/O thread.
  const TimePoint tokenize_start = Clock::now();
  std::shared_ptr<const Tokenizer> tok = engine_.tokenizer();
  std::vector<int32_t> prompt_ids;
  std::string echo_text;
  if (chat) {
    if (!tok) return send_error(w, ApiError::bad_request("this model has no tokenizer; chat is unavailable"));
    Result<std::string> rendered = tok->apply_chat_template(r.messages, r.add_generation_prompt);
    if (!rendered.ok()) return send_error(w, ApiError::bad_request(rendered.status().message(), "messages"));
    prompt_ids = tok->encode(*rendered, r.add_special_tokens);
  } else if (r.prompt_text) {
    if (!tok) return send_error(w, ApiError::bad_request("this model has no tokenizer; send the prompt as token ids"));
    prompt_ids = tok->encode(*r.prompt_text, r.add_special_tokens);
    if (r.echo) echo_text = *r.prompt_text;
  } else {
    prompt_ids = std::move(*r.prompt_token_ids);
    if (tok) {
      int32_t vocab = tok->vocab_size();
      for (int32_t id : prompt_ids) {
        if (id >= vocab) {
          return send_error(w, ApiError::bad_request(fmt::format("token id {} is out of vocabulary (size {})", id, vocab),
                                                     "prompt"));
        }
      }
      if (r.echo) echo_text = tok->decode(prompt_ids, r.sampling.skip_special_tokens);
    }
  }
  if (prompt_ids.empty()) return send_error(w, ApiError::bad_request("the prompt is empty", "prompt"));
  TLOG_DEBUG("{} prompt tokens ready in {:.3f} ms (template + tokenizer)", prompt_ids.size(),
             1e3 * seconds_between(tokenize_start, Clock::now()));

  const int32_t max_len = engine_.max_model_len();
  const int32_t n_prompt = static_cast<int32_t>(prompt_ids.size());
  const char* where = chat ? "messages" : "prompt";
  if (n_prompt > max_len || (n_prompt == max_len && !r.max_tokens)) {
    return send_error(w, ApiError::bad_request(
                             fmt::format("This model's maximum context length is {} tokens. However, you requested {} "
                                         "tokens in the {}. Please reduce the length of the {}.",
                                         max_len, n_prompt, where, where),
                             where));
  }
  if (r.max_tokens && static_cast<int64_t>(n_prompt) + *r.max_tokens > max_len) {
    return send_error(w, ApiError::bad_request(
                             fmt::format("This model's maximum context length is {} tokens. However, you requested {} "
                                         "tokens ({} in the {}, {} in the completion). Please reduce the length of the "
                                         "{} or completion.",
                                         max_len, static_cast<int64_t>(n_prompt) + *r.max_tokens, n_prompt, where,
                                         *r.max_tokens, where),
                             "max_tokens"));
  }
  r.sampling.max_tokens = r.max_tokens ? *r.max_tokens : default_max_tokens(r, n_prompt, max_len);
  r.sampling.logprobs = r.logprobs;

  std::string_view header_id = req.header("x-request-id");
  std::string base_id = usable_request_id(header_id) ? std::string(header_id) : new_request_id();
  std::string id = fmt::format("{}-{}", chat ? "chatcmpl" : "cmpl", base_id);

  EngineRequest er;
  er.request_id = id;
  er.prompt_token_ids = std::move(prompt_ids);
  er.sampling = r.sampling;
  er.kv_transfer_params_json = r.kv_transfer_params_json;
  std::vector<int32_t> stop_ids = r.sampling.stop_token_ids;
  Result<std::shared_ptr<OutputChannel>> channel = engine_.add_request(std::move(er));
  if (!channel.ok()) return send_error(w, ApiError::from_status(channel.status()));

  GenerationStreamParams params;
  params.engine_request_id = id;
  params.chat = chat;
  params.stream = r.stream;
  params.include_usage = r.include_usage;
  params.continuous_usage_stats = r.continuous_usage_stats;
  params.echo_text = std::move(echo_text);
  params.prompt_tokens = n_prompt;
  params.arrival = arrival;
  OpenAiResponseBuilder builder(endpoint, id, unix_seconds(), options_.served_model_names.front(), tok.get(),
                                r.logprobs.has_value(), std::move(stop_ids));
  auto stream = std::make_shared<GenerationStream>(
      std::move(params), std::move(builder), w, std::move(channel.value()), engine_, metrics_, gate_,
      [this](const std::string& done_id) {
        std::lock_guard lock(mu_);
        active_.erase(done_id);
      });
  {
    std::lock_guard lock(mu_);
    active_[id] = stream;
  }
  stream->start();
}

void OpenAiServer::handle_models(const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
  json data = json::array();
  for (const auto& name : options_.served_model_names) {
    data.push_back({{"id", name},
                    {"object", "model"},
                    {"created", created_},
                    {"owned_by", "tandem"},
                    {"root", options_.served_model_names.front()},
                    {"parent", nullptr},
                    {"max_model_len", engine_.max_model_len()}});
  }
  w->send(HttpResponse::json(200, dump(json{{"object", "list"}, {"data", data}})));
}

void OpenAiServer::handle_tokenize(const HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
  json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return send_error(w, ApiError::bad_request("the request body is not a JSON object"));
  if (auto m = j.find("model"); m != j.end() && m->is_string() && !model_known(m->get<std::string>())) {
    return send_error(w, ApiError::not_found(fmt::format("The model `{}` does not exist.", m->get<std::string>())));
  }
  auto tok = engine_.tokenizer();
  if (!tok) return send_error(w, ApiError::bad_request("this model has no tokenizer"));
  std::vector<int32_t> ids;
  if (auto p = j.find("prompt"); p != j.end()) {
    if (!p->is_string()) return send_error(w, ApiError::bad_request("'prompt' must be a string", "prompt"));
    bool add_special = true;
    if (auto a = j.find("add_special_tokens"); a != j.end() && !a->is_null()) {
      if (!a->is_boolean()) return send_error(w, ApiError::bad_request("'add_special_tokens' must be a boolean"));
      add_special = a->get<bool>();
    }
    ids = tok->encode(p->get<std::string>(), add_special);
  } else if (j.contains("messages")) {
    Result<OpenAiRequest> chat = parse_chat_request(req.body);
    if (!chat.ok()) return send_error(w, ApiError::bad_request(chat.status().message()));
    Result<std::string> rendered = tok->apply_chat_template(chat->messages, chat->add_generation_prompt);
    if (!rendered.ok()) return send_error(w, ApiError::bad_request(rendered.status().message(), "messages"));
    ids = tok->encode(*rendered, chat->add_special_tokens);
  } else {
    return send_error(w, ApiError::bad_request("'prompt' or 'messages' is required"));
  }
  json out{{"count", ids.size()}, {"max_model_len", engine_.max_model_len()}, {"tokens", ids}, {"token_strs", nullptr}};
  w->send(HttpResponse::json(200, dump(out)));
}

void OpenAiServer::handle_detokenize(const HttpRequest& req, std::shared_ptr<ResponseWriter> w) {
  json j = json::parse(req.body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return send_error(w, ApiError::bad_request("the request body is not a JSON object"));
  auto tok = engine_.tokenizer();
  if (!tok) return send_error(w, ApiError::bad_request("this model has no tokenizer"));
  auto t = j.find("tokens");
  if (t == j.end() || !t->is_array()) return send_error(w, ApiError::bad_request("'tokens' must be a list of integers", "tokens"));
  std::vector<int32_t> ids;
  int32_t vocab = tok->vocab_size();
  for (const auto& v : *t) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= vocab) {
      return send_error(w, ApiError::bad_request("'tokens' must hold token ids within the vocabulary", "tokens"));
    }
    ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
  }
  w->send(HttpResponse::json(200, dump(json{{"prompt", tok->decode(ids, false)}})));
}

void OpenAiServer::handle_health(const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
  bool down;
  {
    std::lock_guard lock(mu_);
    down = shutting_down_;
  }
  if (down || engine_.metrics().dead) {
    w->send(HttpResponse::text(503, "", ""));
    return;
  }
  w->send(HttpResponse::text(200, "", ""));
}

void OpenAiServer::handle_metrics(const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
  std::string text = metrics_.render(engine_.metrics(), engine_.connector_metrics(),
                                     http_ ? http_->stats().connections_open : 0);
  w->send(HttpResponse::text(200, std::move(text), "text/plain; version=0.0.4; charset=utf-8"));
}

}  // namespace tandem
