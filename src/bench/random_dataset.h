// Random dataset of `tandem bench serve --dataset-name random`, built as vLLM's RandomDataset:
// - real_input_len = input_len - tokenizer.num_special_tokens_to_add() (the BOS the server adds);
//   input lengths uniform in [floor(real * (1 - r)), ceil(real * (1 + r))], output lengths in
//   [max(1, floor(out * (1 - r))), max(1, ceil(out * (1 + r)))], offsets uniform in [0, vocab).
// - allowed ids = [0, vocab) minus the special ids; a shared prefix of --random-prefix-len ids drawn
//   from them; request i's body is allowed[(offset_i + i + k) % |allowed|] for k < input_len_i.
// - decode -> re-encode (without special tokens) -> truncate or extend with random ids, up to 10
//   retries, so that the prompt re-encodes to prefix_len + input_len_i tokens; where vLLM would give
//   up with a mismatch, tandem then edits the text (cut by tokens / characters, pad with one-token
//   fillers such as " a") until it re-encodes exactly; prompt_len is that length
//   (as in vLLM, without the special tokens; with them the server counts --random-input-len tokens, and
//   the benchmark takes usage.prompt_tokens from the response when the server reports it).
// The vocabulary is Tokenizer::vocab_size() (added tokens included, special ones excluded).
// Random draws come from BenchRng(seed) (not numpy's PCG64 stream; see bench_rng.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/sample_request.h"
#include "common/status.h"
#include "tokenizer/tokenizer.h"

namespace tandem::bench {

struct RandomDatasetOptions {
  int num_prompts = 1000;
  int input_len = 1024;
  int output_len = 128;
  double range_ratio = 0.0;
  int prefix_len = 0;
  uint64_t seed = 0;
  std::string request_id_prefix;
};

struct RandomDataset {
  std::vector<SampleRequest> requests;
  // Sum over prompts of (re-encoded length - target) when the 10 retries did not converge (vLLM warns).
  int64_t token_mismatch_total = 0;
};

Result<RandomDataset> make_random_dataset(const Tokenizer& tokenizer, const RandomDatasetOptions& options);

}  // namespace tandem::bench
