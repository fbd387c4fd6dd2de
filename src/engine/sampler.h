// Sampler: turns the logits of the rows that sample this step into tokens (and logprobs).
//
// Plain rows go through Backend::sample (greedy / temperature / top-k / top-p / min-p with the
// request's seed and step, see SamplingRow). Rows that need host-side logits processing are copied to
// the host and handled with the CPU reference functions (backend/cpu/cpu_sampling.h), which implement
// the same algorithm, so a request samples the same token on either path:
//   - penalties: repetition (prompt + output tokens: l > 0 ? l / r : l * r, as vLLM), presence and
//     frequency (output tokens: l -= frequency * count + presence * (count > 0));
//   - min_tokens: EOS (unless ignore_eos) and stop_token_ids masked to -inf until min_tokens are out;
//   - logprobs: log_softmax of the raw model logits (vLLM's default "raw_logprobs"), chosen + top-N.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "engine/request.h"
#include "engine/request_output.h"

namespace tandem {

class Sampler {
 public:
  Sampler(Backend& backend, int vocab_size, std::vector<int32_t> eos_token_ids);

  // logits: fp32 [reqs.size(), vocab] on the backend's device, row i for reqs[i]. Writes one token per
  // row; logprobs[i] is filled for requests that asked for logprobs (left empty otherwise).
  void sample(const TensorView& logits, std::span<Request* const> reqs, std::vector<int32_t>* tokens,
              std::vector<std::optional<TokenLogprob>>* logprobs);

  // True when every row can be sampled on the device without host-side logits processing (no penalties,
  // logprobs or min_tokens masks, no forced first token): the overlapped loop then keeps the ids there.
  bool can_sample_on_device(std::span<Request* const> reqs) const;
  // Enqueues sampling of reqs' rows into ids (i32 on the device); nothing waits.
  void sample_to_device(const TensorView& logits, std::span<Request* const> reqs, TensorView ids);


  // Host-side helpers (exposed for tests).
  static void apply_penalties(std::span<float> logits, const Request& req, std::vector<int32_t>* counts);
  static TokenLogprob compute_logprobs(std::span<const float> logits, int32_t chosen, int top_n);

 private:
  bool needs_host(const Request& r) const;
  SamplingRow row_for(const Request& r) const;

  Backend& backend_;
  int vocab_;
  std::vector<int32_t> eos_;
  std::vector<SamplingRow> rows_;
  std::vector<float> host_row_, host_row2_, scratch_;
  std::vector<int32_t> counts_;
};

}  // namespace tandem
