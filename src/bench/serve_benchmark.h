// The `tandem bench serve` runner: sends the dataset's requests to an OpenAI-compatible server on one
// event loop (Asio, one thread) and measures each streamed response as vLLM's
// async_request_openai_completions / _chat_completions do:
// - arrivals from make_arrival_schedule (--request-rate, --burstiness, seeded); --max-concurrency caps
//   the requests in flight (a FIFO semaphore: an arrived request waits for a free slot; its wait is
//   client_queue_time and is not part of its latency);
// - POST {endpoint} with stream: true and stream_options.include_usage; x-request-id header;
//   Authorization: Bearer <api_key> when set;
// - every received body piece is stamped with the monotonic clock the moment the read completes, then
//   parsed as SSE: each event with non-empty "choices" is a token chunk (the first gives TTFT, the next
//   ones ITL gaps; the last one ends the latency), a "usage" event gives completion_tokens and
//   prompt_tokens, "[DONE]" and ": comments" are skipped;
// - failures (connect errors, HTTP status != 200, dropped connections, invalid JSON events, no token
//   chunk at all, timeouts) are recorded with their error text.
#pragma once

#include <chrono>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "bench/request_outcome.h"
#include "bench/sample_request.h"
#include "common/clock.h"
#include "common/status.h"

namespace tandem::bench {

struct ServeBenchmarkOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8000;
  std::string endpoint = "/v1/completions";  // path (and query) on host:port
  std::string backend = "openai";            // openai (completions) | openai-chat
  std::string model;                         // the request's "model" field
  double request_rate = std::numeric_limits<double>::infinity();
  double burstiness = 1.0;
  std::optional<int> max_concurrency;
  uint64_t seed = 0;
  bool ignore_eos = false;
  std::optional<int> logprobs;
  int num_warmups = 0;
  bool progress_bar = false;  // draw a progress bar on stderr (callers check for a TTY)
  std::string api_key;        // OPENAI_API_KEY
  std::chrono::milliseconds request_timeout{6LL * 3600 * 1000};  // per request, as aiohttp's default
  std::chrono::milliseconds connect_timeout{30'000};
};

struct ServeBenchmarkRun {
  std::vector<RequestOutcome> outputs;  // in dataset order
  double duration_s = 0;                // first dispatch .. last completion
  TimePoint start{};                    // the benchmark start (RequestOutcome::start_time is relative to it)
};

// Runs the benchmark; `log` (may be null) gets vLLM's progress messages (the progress bar goes to stderr).
// Fails only for bad options; request failures are reported in the outcomes.
Result<ServeBenchmarkRun> run_serve_benchmark(const ServeBenchmarkOptions& options,
                                              const std::vector<SampleRequest>& requests, std::FILE* log);

// The JSON body vLLM sends for one request (exposed for tests).
std::string build_request_body(const ServeBenchmarkOptions& options, const SampleRequest& request);

}  // namespace tandem::bench
