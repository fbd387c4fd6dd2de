// GenerationStream: one /v1/completions or /v1/chat/completions request in flight. It owns the link
// between the engine's output channel and the HTTP response: the channel's on_push posts a drain to
// the connection's strand (no I/O thread ever blocks on the channel), drain() turns outputs into SSE
// chunks or accumulates them for the full response, a client disconnect aborts the engine request,
// and the finish records metrics and logs one line.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "net/response_writer.h"
#include "server/openai_response.h"
#include "server/server_metrics.h"
#include "server/serving_engine.h"

namespace tandem {

// Closed at shutdown so that engine callbacks stop posting to the HTTP server's executor.
struct PostGate {
  std::mutex mu;
  bool open = true;
};

struct GenerationStreamParams {
  std::string engine_request_id;
  bool chat = false;
  bool stream = false;
  bool include_usage = false;
  bool continuous_usage_stats = false;
  std::string echo_text;  // prepended to the first text (completions echo)
  int32_t prompt_tokens = 0;
  TimePoint arrival;
};

class GenerationStream : public std::enable_shared_from_this<GenerationStream> {
 public:
  using DoneCallback = std::function<void(const std::string& engine_request_id)>;

  GenerationStream(GenerationStreamParams params, OpenAiResponseBuilder builder,
                   std::shared_ptr<ResponseWriter> writer, std::shared_ptr<OutputChannel> channel,
                   ServingEngine& engine, ServerMetrics& metrics, std::shared_ptr<PostGate> gate, DoneCallback on_done);

  // Wires the channel and the disconnect callback and starts the response; call once, on the strand.
  void start();
  // Aborts the engine request (shutdown or disconnect).
  void abort();

 private:
  void schedule_drain();
  void drain();
  void handle(RequestOutput& out);
  void fail(const Status& status);
  void finish_bookkeeping(FinishReason reason, int32_t completion_tokens, int32_t cached, const RequestOutput* out);
  UsageInfo usage(const RequestOutput& out) const;

  GenerationStreamParams p_;
  OpenAiResponseBuilder builder_;
  std::shared_ptr<ResponseWriter> writer_;
  std::shared_ptr<OutputChannel> channel_;
  ServingEngine& engine_;
  ServerMetrics& metrics_;
  std::shared_ptr<PostGate> gate_;
  DoneCallback on_done_;

  std::atomic<bool> drain_scheduled_{false};
  bool done_ = false;
  bool first_output_ = true;
  std::optional<TimePoint> first_token_time_;
  TimePoint last_token_time_;
  std::string text_;                   // non-streaming: accumulated text
  std::vector<TokenLogprob> logprobs_; // non-streaming: accumulated logprobs
};

}  // namespace tandem
