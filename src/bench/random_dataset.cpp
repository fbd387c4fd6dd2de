// make_random_dataset: see the header for the construction (it follows vLLM's RandomDataset.sample and
// gen_prompt_decode_to_target_len step by step).
#include "bench/random_dataset.h"

#include <cmath>
#include <unordered_set>

#include "bench/bench_rng.h"
#include "tokenizer/utf8.h"

namespace tandem::bench {

namespace {

constexpr int kMaxRetry = 10;

void force_exact_length(const Tokenizer& tok, std::string& prompt, int target);

// Decodes, re-encodes and truncates/extends `ids` until the text re-encodes to `target` tokens.
std::string decode_to_target_len(const Tokenizer& tok, std::vector<int32_t> ids, int target, BenchRng& rng,
                                 int64_t& mismatch, int& final_len) {
  int tries_left = kMaxRetry;
  std::string prompt;
  for (;;) {
    prompt = tok.decode(ids, /*skip_special_tokens=*/false);
    ids = tok.encode(prompt, /*add_special_tokens=*/false);
    int n = static_cast<int>(ids.size());
    if (tries_left <= 0) {
      if (n != target) {
        force_exact_length(tok, prompt, target);
        ids = tok.encode(prompt, false);
        n = static_cast<int>(ids.size());
        if (n != target) mismatch += n - target;
      }
      break;
    }
    if (n == target) break;
    if (n < target) {
      for (int i = n; i < target; ++i) ids.push_back(static_cast<int32_t>(rng.integers(0, tok.vocab_size())));
    } else {
      ids.resize(target);
    }
    --tries_left;
  }
  final_len = static_cast<int>(ids.size());
  return prompt;
}

// Strings that usually encode to one token of their own at the end of a text (tried in order).
constexpr const char* kFillers[] = {" a", " the", " and", " I", " x", ".", ",", "a", "!", " "};

// tandem's extension after vLLM's loop: when 10 decode/re-encode rounds did not converge (random ids
// that decode to invalid UTF-8 or re-merge differently; common with small vocabularies), edit the
// text itself: cut to the target by tokens and then by characters, and pad with filler strings that
// add exactly one token, so every prompt re-encodes to exactly `target` tokens.
void force_exact_length(const Tokenizer& tok, std::string& prompt, int target) {
  std::vector<int32_t> ids = tok.encode(prompt, false);
  for (int iter = 0; iter < 4 * target + 64; ++iter) {
    int n = static_cast<int>(ids.size());
    if (n == target) return;
    if (n > target) {
      std::string cut = tok.decode(std::span<const int32_t>(ids.data(), static_cast<size_t>(target)), false);
      if (static_cast<int>(tok.encode(cut, false).size()) <= target && cut.size() < prompt.size()) {
        prompt = std::move(cut);
      } else if (!prompt.empty()) {
        prompt.erase(utf8::prev_char_start(prompt, prompt.size()));
      } else {
        return;
      }
    } else {
      bool padded = false;
      for (const char* f : kFillers) {
        if (static_cast<int>(tok.encode(prompt + f, false).size()) == n + 1) {
          prompt += f;
          padded = true;
          break;
        }
      }
      if (!padded) prompt += kFillers[0];
    }
    ids = tok.encode(prompt, false);
  }
}

}  // namespace

Result<RandomDataset> make_random_dataset(const Tokenizer& tok, const RandomDatasetOptions& o) {
  if (o.num_prompts < 1) return InvalidArgumentError("--num-prompts must be >= 1 (got {})", o.num_prompts);
  if (!(o.range_ratio >= 0.0 && o.range_ratio < 1.0)) {
    return InvalidArgumentError("--random-range-ratio must be in [0, 1) (got {})", o.range_ratio);
  }
  if (o.input_len < 0 || o.output_len < 0 || o.prefix_len < 0) {
    return InvalidArgumentError("--random-input-len, --random-output-len and --random-prefix-len must be >= 0");
  }
  const int num_special = tok.num_special_tokens_to_add();
  const int real_input_len = std::max(0, o.input_len - num_special);
  const int64_t input_low = static_cast<int64_t>(std::floor(real_input_len * (1.0 - o.range_ratio)));
  const int64_t input_high = static_cast<int64_t>(std::ceil(real_input_len * (1.0 + o.range_ratio)));
  const int64_t output_low = std::max<int64_t>(1, static_cast<int64_t>(std::floor(o.output_len * (1.0 - o.range_ratio))));
  const int64_t output_high = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(o.output_len * (1.0 + o.range_ratio))));
  if (o.prefix_len + input_low < 1) {
    return InvalidArgumentError(
        "--random-input-len is too small: with {} special token(s) and --random-range-ratio {}, the minimum "
        "possible total input is {} tokens; increase --random-input-len or --random-prefix-len",
        num_special, o.range_ratio, o.prefix_len + input_low);
  }
  const int32_t vocab = tok.vocab_size();
  std::unordered_set<int32_t> special;
  for (int32_t id : tok.special_token_ids()) special.insert(id);
  std::vector<int32_t> allowed;
  allowed.reserve(vocab);
  for (int32_t id = 0; id < vocab; ++id) {
    if (!special.count(id)) allowed.push_back(id);
  }
  if (allowed.empty()) return InvalidArgumentError("the tokenizer has no non-special tokens");

  BenchRng rng(o.seed);
  // Same draw order as vLLM: input lengths, output lengths, offsets (then prefix, then fix-ups).
  const size_t n = static_cast<size_t>(o.num_prompts);
  std::vector<int64_t> input_lens(n), output_lens(n), offsets(n);
  for (auto& x : input_lens) x = rng.integers(input_low, input_high + 1);
  for (auto& x : output_lens) x = rng.integers(output_low, output_high + 1);
  for (auto& x : offsets) x = rng.integers(0, vocab);
  std::vector<int32_t> prefix;
  for (int i = 0; i < o.prefix_len; ++i) {
    prefix.push_back(allowed[static_cast<size_t>(rng.integers(0, static_cast<int64_t>(allowed.size())))]);
  }

  RandomDataset out;
  out.requests.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    std::vector<int32_t> ids = prefix;
    for (int64_t k = 0; k < input_lens[i]; ++k) {
      ids.push_back(allowed[static_cast<size_t>((offsets[i] + static_cast<int64_t>(i) + k) %
                                                static_cast<int64_t>(allowed.size()))]);
    }
    int target = o.prefix_len + static_cast<int>(input_lens[i]);
    int final_len = 0;
    SampleRequest r;
    r.prompt = decode_to_target_len(tok, std::move(ids), target, rng, out.token_mismatch_total, final_len);
    r.prompt_len = final_len;  // as vLLM; the server's usage.prompt_tokens replaces it
    r.expected_output_len = static_cast<int>(output_lens[i]);
    r.request_id = o.request_id_prefix + std::to_string(i);
    out.requests.push_back(std::move(r));
  }
  return out;
}

}  // namespace tandem::bench
