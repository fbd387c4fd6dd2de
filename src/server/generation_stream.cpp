// GenerationStream: engine outputs -> HTTP response (see generation_stream.h).
#include "server/generation_stream.h"

#include <fmt/format.h>

#include "common/logging.h"
#include "net/sse.h"
#include "server/api_error.h"

namespace tandem {

GenerationStream::GenerationStream(GenerationStreamParams params, OpenAiResponseBuilder builder,
                                   std::shared_ptr<ResponseWriter> writer, std::shared_ptr<OutputChannel> channel,
                                   ServingEngine& engine, ServerMetrics& metrics, std::shared_ptr<PostGate> gate,
                                   DoneCallback on_done)
    : p_(std::move(params)),
      builder_(std::move(builder)),
      writer_(std::move(writer)),
      channel_(std::move(channel)),
      engine_(engine),
      metrics_(metrics),
      gate_(std::move(gate)),
      on_done_(std::move(on_done)) {}

void GenerationStream::start() {
  std::weak_ptr<GenerationStream> weak = weak_from_this();
  channel_->set_on_push([weak] {
    if (auto self = weak.lock()) self->schedule_drain();
  });
  writer_->on_close([weak] {
    if (auto self = weak.lock()) self->abort();
  });
  if (p_.stream) {
    writer_->start_stream(200, "text/event-stream");
    if (p_.chat) writer_->write(sse_data(builder_.role_chunk()));
  }
  // Outputs pushed before on_push was set are picked up here.
  schedule_drain();
}

void GenerationStream::abort() {
  if (!done_) engine_.abort_request(p_.engine_request_id);
}

void GenerationStream::schedule_drain() {
  if (drain_scheduled_.exchange(true)) return;
  std::lock_guard lock(gate_->mu);
  if (!gate_->open) return;
  auto self = shared_from_this();
  writer_->post([self] { self->drain(); });
}

void GenerationStream::drain() {
  drain_scheduled_.store(false);
  // Read closed() first: once it is true, everything pushed is already queued and the loop below takes
  // it all. A close() after this read fires on_push, which schedules another drain.
  const bool closed = channel_->closed();
  while (!done_) {
    std::optional<RequestOutput> out = channel_->try_pop();
    if (!out) break;
    handle(*out);
  }
  if (!done_ && closed) {
    fail(InternalError("the engine closed request {} without a final output", p_.engine_request_id));
  }
}

UsageInfo GenerationStream::usage(const RequestOutput& out) const {
  UsageInfo u;
  u.prompt_tokens = out.prompt_tokens > 0 ? out.prompt_tokens : p_.prompt_tokens;
  u.completion_tokens = out.completion_tokens;
  u.cached_tokens = out.cached_prompt_tokens;
  return u;
}

void GenerationStream::handle(RequestOutput& out) {
  TimePoint now = Clock::now();
  if (!out.new_token_ids.empty()) {
    if (!first_token_time_) {
      first_token_time_ = now;
      metrics_.observe_time_to_first_token(seconds_between(p_.arrival, now));
    } else {
      metrics_.observe_inter_token_latency(seconds_between(last_token_time_, now));
    }
    last_token_time_ = now;
  }
  if (out.finish_reason == FinishReason::kError) {
    fail(out.error.ok() ? InternalError("the engine failed the request") : out.error);
    return;
  }

  std::string text;
  if (first_output_) {
    text = p_.echo_text;
    first_output_ = false;
  }
  text += out.new_text;

  if (p_.stream) {
    if (!text.empty() || !out.logprobs.empty() || out.finished()) {
      std::optional<UsageInfo> u;
      if (p_.include_usage && p_.continuous_usage_stats) u = usage(out);
      writer_->write(sse_data(builder_.delta_chunk(text, out.logprobs, out.finish_reason, out.stop_reason, u)));
    }
    if (out.finished()) {
      if (p_.include_usage) writer_->write(sse_data(builder_.usage_chunk(usage(out))));
      writer_->write(std::string(kSseDone));
      writer_->finish();
    }
  } else {
    text_ += text;
    for (auto& lp : out.logprobs) logprobs_.push_back(std::move(lp));
    if (out.finished()) {
      HttpResponse resp = HttpResponse::json(
          200, builder_.full_response(text_, logprobs_, *out.finish_reason, out.stop_reason, usage(out),
                                      out.kv_transfer_params_json));
      // Engine-internal time (added -> first token) and the server's own time, for overhead figures
      // (tools/bench_server_overhead.py).
      resp.headers.emplace_back(
          "Server-Timing", fmt::format("engine_ttft;dur={:.3f}, server_total;dur={:.3f}", out.first_token_time_s * 1e3,
                                       seconds_between(p_.arrival, Clock::now()) * 1e3));
      writer_->send(std::move(resp));
    }
  }
  if (out.finished()) finish_bookkeeping(*out.finish_reason, out.completion_tokens, out.cached_prompt_tokens, &out);
}

void GenerationStream::fail(const Status& status) {
  ApiError err = ApiError::from_status(status);
  if (err.http_status < 500 && status.code() != StatusCode::kInvalidArgument) err = ApiError::internal(status.to_string());
  TLOG_WARN("request {} failed: {}", p_.engine_request_id, status.to_string());
  if (p_.stream) {
    writer_->write(sse_data(err.to_json()));
    writer_->write(std::string(kSseDone));
    writer_->finish();
  } else {
    writer_->send(err.to_response());
  }
  finish_bookkeeping(FinishReason::kError, 0, 0, nullptr);
  engine_.abort_request(p_.engine_request_id);
}

void GenerationStream::finish_bookkeeping(FinishReason reason, int32_t completion_tokens, int32_t cached,
                                          const RequestOutput* out) {
  done_ = true;
  channel_->set_on_push({});
  TimePoint now = Clock::now();
  FinishedRequestStats s;
  s.finish_reason = reason;
  s.prompt_tokens = out && out->prompt_tokens > 0 ? out->prompt_tokens : p_.prompt_tokens;
  s.completion_tokens = completion_tokens;
  s.e2e_s = seconds_between(p_.arrival, now);
  s.queue_s = out ? out->queue_time_s : 0.0;
  s.had_first_token = first_token_time_.has_value();
  metrics_.observe_finished(s);
  double ttft = first_token_time_ ? seconds_between(p_.arrival, *first_token_time_) : -1.0;
  // queue: arrival -> first scheduled in the engine; kv_load: the remote KV load (decode side of a
  // disaggregated request); ttft: arrival -> first token sent.
  TLOG_INFO("request {} finished: prompt_tokens={} cached_tokens={} completion_tokens={} queue={:.4f}s kv_load={:.4f}s "
            "ttft={:.4f}s e2e={:.4f}s finish_reason={}{}",
            p_.engine_request_id, s.prompt_tokens, cached, completion_tokens, s.queue_s,
            out ? out->remote_load_time_s : 0.0, ttft, s.e2e_s, finish_reason_name(reason),
            writer_->is_closed() ? " (client disconnected)" : "");
  if (on_done_) on_done_(p_.engine_request_id);
}

}  // namespace tandem
