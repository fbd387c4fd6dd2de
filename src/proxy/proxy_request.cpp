// ProxyRequest: the prefill -> first token -> decode state machine of one client request (see
// proxy_request.h).
#include "proxy/proxy_request.h"

#include "common/logging.h"
#include "proxy/response_merger.h"

namespace tandem::proxy {

namespace {

constexpr size_t kMaxBufferedBody = 64 * 1024 * 1024;  // a whole non-streaming answer

bool is_sse(const net::HttpResponseHead& head) {
  auto ct = head.header("Content-Type");
  return ct && ct->find("text/event-stream") != std::string::npos;
}

int client_status_for(const Status& st) {
  return st.code() == StatusCode::kDeadlineExceeded ? 504 : 502;
}

}  // namespace

ProxyRequest::ProxyRequest(ProxyContext& ctx, size_t shard, RequestInfo info, json body, std::string raw_body,
                           std::vector<net::HttpHeader> forward_headers, std::shared_ptr<ResponseWriter> writer)
    : ctx_(ctx),
      shard_(shard),
      info_(std::move(info)),
      body_(std::move(body)),
      raw_body_(std::move(raw_body)),
      forward_headers_(std::move(forward_headers)),
      writer_(std::move(writer)),
      merger_(info_, ctx.config.decode_usage_counts_first_token),
      t_received_(Clock::now()) {}

std::shared_ptr<net::HttpCall> ProxyRequest::send(size_t instance, std::string body,
                                                  std::chrono::milliseconds idle_timeout,
                                                  std::chrono::milliseconds total_timeout,
                                                  net::HttpResponseCallbacks cb) {
  const InstanceUrl& url = ctx_.registry.url(instance);
  net::HttpClientRequest req;
  req.method = "POST";
  req.target = url.base_path + std::string(api_kind_path(info_.kind));
  req.headers = forward_headers_;
  req.headers.push_back({"Content-Type", "application/json"});
  req.body = std::move(body);
  req.connect_timeout = ctx_.config.connect_timeout;
  req.idle_timeout = idle_timeout;
  req.total_timeout = total_timeout;
  upstream_status_ = 0;
  upstream_body_.clear();
  ejected_ = false;
  if (!first_leg_sent_) {
    first_leg_sent_ = true;
    ctx_.metrics.queue_seconds.observe(seconds_between(t_received_, Clock::now()));
  }
  std::weak_ptr<ProxyRequest> weak = weak_from_this();
  watch_id_ = ctx_.pool.watch(shard_, instance, [weak, instance] {
    if (auto self = weak.lock()) self->on_instance_ejected(instance);
  });
  return ctx_.pool.client(shard_, instance).request(std::move(req), std::move(cb));
}

void ProxyRequest::end_leg(size_t instance) {
  call_.reset();
  if (watch_id_ != 0) ctx_.pool.unwatch(shard_, instance, watch_id_);
  watch_id_ = 0;
}

void ProxyRequest::on_instance_ejected(size_t instance) {
  watch_id_ = 0;  // the pool dropped the watch when it fired
  if (finished_ || !call_) return;
  ejected_ = true;
  if (auto call = call_) call->cancel();  // completes the leg with kAborted, handled as a failure
}

bool ProxyRequest::stopped_by_shutdown(const Status& st) {
  if (st.code() != StatusCode::kAborted || ejected_) return false;
  // Only the pool's shutdown cancels a live request's call without a reason: end quietly.
  finished_ = true;
  lease_.release();
  return true;
}

void ProxyRequest::start() {
  if (finished_) return;
  if (ctx_.config.colocated()) return start_decode();
  if (!info_.disaggregatable) {
    TLOG_DEBUG("proxy: request goes to one decode instance without a prefill leg ({})", info_.direct_reason);
    return start_decode();
  }
  start_prefill();
}

// ---- prefill leg ----

void ProxyRequest::start_prefill() {
  auto lease = ctx_.registry.select(InstanceRole::kPrefill, info_.prompt_tokens_estimate, prefill_excluded_);
  if (!lease) return fall_back_to_self_prefill("no healthy prefill instance");
  lease_ = std::move(*lease);
  const size_t instance = lease_.index();
  ++prefill_attempts_;
  t_prefill_sent_ = Clock::now();
  auto self = shared_from_this();
  call_ = send(instance, make_prefill_body(body_, info_.kind).dump(), ctx_.config.prefill_timeout,
               std::min(ctx_.config.prefill_timeout, ctx_.config.request_timeout),
               {.on_head = [self](const net::HttpResponseHead& h) { self->upstream_status_ = h.status; },
                .on_body =
                    [self](std::string_view piece) {
                      if (self->upstream_body_.size() + piece.size() <= kMaxBufferedBody) {
                        self->upstream_body_.append(piece);
                      }
                    },
                .on_complete = [self, instance](const Status& st) { self->on_prefill_complete(st, instance); }});
}

void ProxyRequest::on_prefill_complete(const Status& st, size_t instance) {
  end_leg(instance);
  if (finished_ || stopped_by_shutdown(st)) return;
  if (!st.ok()) {
    return prefill_leg_failed(instance, ejected_ ? "the instance failed its health check" : st.to_string(),
                              st.code() == StatusCode::kUnavailable);
  }
  if (upstream_status_ >= 500) {
    return prefill_leg_failed(instance, fmt::format("HTTP {}: {}", upstream_status_, upstream_body_.substr(0, 300)),
                              upstream_status_ == 503);
  }
  if (upstream_status_ != 200) {
    // The request itself is bad (4xx): the decode instance would say the same. Relay it.
    lease_.release();
    ctx_.metrics.errors_client.fetch_add(1, std::memory_order_relaxed);
    return reply_json(upstream_status_, std::move(upstream_body_));
  }
  json response = json::parse(upstream_body_, nullptr, /*allow_exceptions=*/false);
  if (!response.is_object()) return prefill_leg_failed(instance, "answer is not a JSON object", false);
  t_prefill_done_ = Clock::now();
  ctx_.metrics.prefill_seconds.observe(seconds_between(t_prefill_sent_, t_prefill_done_));
  lease_.release();

  const bool final = first_token_ends_request(info_, response);
  if (!final) {
    auto params = extract_kv_transfer_params(response);
    if (!params.ok()) {
      // A misconfigured instance (not a producer): its first token cannot be continued elsewhere.
      TLOG_WARN("proxy: prefill instance {}: {}", ctx_.registry.url(instance).text, params.status().message());
      return fall_back_to_self_prefill("the prefill answer had no kv_transfer_params");
    }
    kv_transfer_params_ = std::move(*params);
  }
  if (info_.stream) {
    auto events = merger_.first_token_events(response, final);
    if (!events.ok()) return prefill_leg_failed(instance, events.status().message(), false);
    write(std::move(*events));  // the first token goes out now: TTFT is the prefill time
  }
  if (final) {
    ctx_.metrics.finished_at_prefill.fetch_add(1, std::memory_order_relaxed);
    if (!info_.stream) reply_json(200, finalize_prefill_only(response).dump());
    return finish_success();
  }
  prefill_response_ = std::move(response);
  start_decode();
}

void ProxyRequest::prefill_leg_failed(size_t instance, const std::string& why, bool eject) {
  lease_.release();
  ctx_.metrics.prefill_failures.fetch_add(1, std::memory_order_relaxed);
  TLOG_WARN("proxy: prefill leg on {} failed: {}", ctx_.registry.url(instance).text, why);
  if (eject) ctx_.registry.report_request_failure(instance);
  prefill_excluded_.push_back(instance);
  if (prefill_attempts_ < kMaxPrefillAttempts && ctx_.registry.any_healthy(InstanceRole::kPrefill, prefill_excluded_)) {
    ctx_.metrics.prefill_retries.fetch_add(1, std::memory_order_relaxed);
    return start_prefill();
  }
  fall_back_to_self_prefill("prefill failed");
}

void ProxyRequest::fall_back_to_self_prefill(const std::string& why) {
  TLOG_INFO("proxy: {}; the decode instance prefills the request itself", why);
  ctx_.metrics.prefill_fallbacks.fetch_add(1, std::memory_order_relaxed);
  kv_transfer_params_.reset();
  prefill_response_.reset();
  start_decode();
}

// ---- decode leg ----

void ProxyRequest::start_decode() {
  const InstanceRole role = ctx_.config.colocated() ? InstanceRole::kColocated : InstanceRole::kDecode;
  auto lease = ctx_.registry.select(role, role == InstanceRole::kColocated ? info_.prompt_tokens_estimate : 0,
                                    decode_excluded_);
  if (!lease) {
    ctx_.metrics.errors_upstream.fetch_add(1, std::memory_order_relaxed);
    std::string msg = fmt::format("no healthy {} instance is available", instance_role_name(role));
    if (stream_started_) {
      write(merger_.error_events(msg, 503));
      return finish_with_error();
    }
    return reply_error(503, msg);
  }
  lease_ = std::move(*lease);
  const size_t instance = lease_.index();
  ++decode_attempts_;
  sse_ = SseParser();
  got_decode_byte_ = false;
  const json* params = kv_transfer_params_ ? &*kv_transfer_params_ : nullptr;
  auto self = shared_from_this();
  std::optional<std::string> text = rewrite_decode_body_text(raw_body_, body_, params, info_.stream);
  if (!text) text = make_decode_body(body_, params, info_.stream).dump();
  call_ = send(instance, std::move(*text), ctx_.config.decode_idle_timeout,
               ctx_.config.request_timeout,
               {.on_head = [self](const net::HttpResponseHead& h) {
                  self->upstream_status_ = (h.status == 200 && self->info_.stream && !is_sse(h)) ? 599 : h.status;
                },
                .on_body = [self](std::string_view piece) { self->on_decode_body(piece); },
                .on_complete = [self, instance](const Status& st) { self->on_decode_complete(st, instance); }});
}

void ProxyRequest::on_decode_body(std::string_view piece) {
  if (finished_) return;
  if (!got_decode_byte_) {
    got_decode_byte_ = true;
    t_first_decode_byte_ = Clock::now();
    if (prefill_response_) ctx_.metrics.handoff_seconds.observe(seconds_between(t_prefill_done_, t_first_decode_byte_));
  }
  if (upstream_status_ != 200 || !info_.stream) {
    if (upstream_body_.size() + piece.size() <= kMaxBufferedBody) upstream_body_.append(piece);
    return;
  }
  std::string out;
  sse_.feed(piece, [this, &out](const SseEventView& ev) {
    std::string bytes = merger_.decode_event(ev.data);
    if (out.empty()) {
      out = std::move(bytes);  // the usual one event per piece: no copy
    } else {
      out += bytes;
    }
  });
  if (!out.empty()) {
    decode_relayed_ = true;
    write(std::move(out));
  }
}

void ProxyRequest::on_decode_complete(const Status& st, size_t instance) {
  end_leg(instance);
  if (finished_ || stopped_by_shutdown(st)) return;
  if (!st.ok()) {
    return decode_leg_failed(instance, ejected_ ? "the instance failed its health check" : st.to_string(),
                             client_status_for(st), st.code() == StatusCode::kUnavailable);
  }
  if (upstream_status_ >= 500) {
    return decode_leg_failed(instance, fmt::format("HTTP {}: {}", upstream_status_, upstream_body_.substr(0, 300)),
                             502, upstream_status_ == 503);
  }
  if (got_decode_byte_) ctx_.metrics.decode_seconds.observe(seconds_between(t_first_decode_byte_, Clock::now()));
  if (upstream_status_ != 200) {
    lease_.release();
    ctx_.metrics.errors_client.fetch_add(1, std::memory_order_relaxed);
    if (stream_started_) {
      json err = json::parse(upstream_body_, nullptr, false);
      std::string msg = err.is_object() && err.contains("error") && err["error"].is_object()
                            ? err["error"].value("message", upstream_body_)
                            : upstream_body_;
      write(merger_.error_events(msg, upstream_status_));
      return finish_with_error();
    }
    return reply_json(upstream_status_, std::move(upstream_body_));
  }
  if (info_.stream) {
    if (!merger_.decode_done()) {
      return decode_leg_failed(instance, "the decode stream ended before [DONE]", 502, false);
    }
    write(merger_.finish());
    return finish_success();
  }
  json response = json::parse(upstream_body_, nullptr, /*allow_exceptions=*/false);
  if (!response.is_object()) return decode_leg_failed(instance, "answer is not a JSON object", 502, false);
  if (prefill_response_) {
    auto merged = merge_responses(info_.kind, *prefill_response_, response, ctx_.config.decode_usage_counts_first_token);
    if (!merged.ok()) return decode_leg_failed(instance, merged.status().message(), 502, false);
    reply_json(200, merged->dump());
  } else {
    strip_internal_fields(response);
    reply_json(200, response.dump());
  }
  finish_success();
}

void ProxyRequest::decode_leg_failed(size_t instance, const std::string& why, int client_status, bool eject) {
  lease_.release();
  ctx_.metrics.decode_failures.fetch_add(1, std::memory_order_relaxed);
  TLOG_WARN("proxy: {} leg on {} failed: {}", ctx_.config.colocated() ? "colocated" : "decode",
            ctx_.registry.url(instance).text, why);
  if (eject) ctx_.registry.report_request_failure(instance);
  decode_excluded_.push_back(instance);
  if (!decode_relayed_ && decode_attempts_ < kMaxDecodeAttempts) {
    const InstanceRole role = ctx_.config.colocated() ? InstanceRole::kColocated : InstanceRole::kDecode;
    if (ctx_.registry.any_healthy(role, decode_excluded_)) {
      ctx_.metrics.decode_retries.fetch_add(1, std::memory_order_relaxed);
      return start_decode();
    }
  }
  ctx_.metrics.errors_upstream.fetch_add(1, std::memory_order_relaxed);
  std::string msg = fmt::format("the {} instance failed: {}", ctx_.config.colocated() ? "serving" : "decode", why);
  if (stream_started_) {
    ctx_.metrics.errors_midstream.fetch_add(1, std::memory_order_relaxed);
    write(merger_.error_events(msg, client_status));
    return finish_with_error();
  }
  reply_error(client_status, msg);
}

// ---- client side ----

void ProxyRequest::ensure_stream_started() {
  if (stream_started_) return;
  stream_started_ = true;
  writer_->start_stream(200, "text/event-stream");
}

void ProxyRequest::write(std::string bytes) {
  if (bytes.empty()) return;
  ensure_stream_started();
  writer_->write(std::move(bytes));
  observe_first_byte();
}

void ProxyRequest::reply_json(int status, std::string body) {
  HttpResponse r = HttpResponse::json(status, std::move(body));
  writer_->send(std::move(r));
  observe_first_byte();
  if (status != 200) finished_ = true;
}

void ProxyRequest::observe_first_byte() {
  if (first_byte_sent_) return;
  first_byte_sent_ = true;
  ctx_.metrics.first_byte_seconds.observe(seconds_between(t_received_, Clock::now()));
}

void ProxyRequest::reply_error(int status, const std::string& message) {
  reply_json(status, error_body(message, error_type_for_status(status), status));
  finish_with_error();
}

void ProxyRequest::finish_success() {
  if (stream_started_) writer_->finish();
  finished_ = true;
  lease_.release();
  ctx_.metrics.requests_succeeded.fetch_add(1, std::memory_order_relaxed);
  ctx_.metrics.request_seconds.observe(seconds_between(t_received_, Clock::now()));
}

void ProxyRequest::finish_with_error() {
  if (stream_started_) writer_->finish();
  finished_ = true;
  lease_.release();
  ctx_.metrics.request_seconds.observe(seconds_between(t_received_, Clock::now()));
}

void ProxyRequest::abort_for_disconnect() {
  if (finished_) return;
  finished_ = true;
  ctx_.metrics.client_disconnects.fetch_add(1, std::memory_order_relaxed);
  TLOG_DEBUG("proxy: client went away; cancelling the upstream call");
  if (auto call = std::move(call_)) call->cancel();  // closes the connection: the instance aborts
  lease_.release();
}

}  // namespace tandem::proxy
