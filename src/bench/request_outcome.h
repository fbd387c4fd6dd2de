// RequestOutcome: what one benchmark request measured (vLLM's RequestFuncOutput). Times are seconds on
// the monotonic clock; start_time is relative to the benchmark start.
#pragma once

#include <string>
#include <vector>

namespace tandem::bench {

struct RequestOutcome {
  bool success = false;
  std::string error;             // why it failed (empty on success)
  std::string generated_text;
  int prompt_len = 0;            // usage.prompt_tokens when the server sends it, else the dataset's count
  int output_tokens = 0;         // usage.completion_tokens (0 when the server sent no usage)
  double start_time = 0;         // when the request was sent (after the concurrency semaphore)
  double client_queue_time = 0;  // arrival -> start: time spent waiting for the semaphore
  double ttft = 0;               // start -> first chunk with non-empty choices
  std::vector<double> itl;       // gaps between consecutive chunks with non-empty choices
  double latency = 0;            // start -> last chunk with non-empty choices (E2EL)
};

}  // namespace tandem::bench
