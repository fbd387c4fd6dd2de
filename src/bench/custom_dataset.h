// Custom dataset of `tandem bench serve --dataset-name custom --dataset-path FILE.jsonl`, as vLLM's
// CustomDataset: one JSON object per line with a "prompt" string and optionally "output_tokens" (the
// request's max_tokens; default --custom-output-len). Rows are shuffled with --seed (unless
// disable_shuffle), the chat template is applied unless skip_chat_template, prompt_len is the
// tokenizer's count with special tokens, and when the file has fewer rows than --num-prompts the rows
// are repeated (vLLM oversamples) to reach it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "bench/sample_request.h"
#include "common/status.h"
#include "tokenizer/tokenizer.h"

namespace tandem::bench {

struct CustomDatasetOptions {
  std::filesystem::path path;
  int num_prompts = 1000;  // <= 0: every row once
  int output_len = 256;
  bool skip_chat_template = false;
  bool disable_shuffle = false;
  uint64_t seed = 0;
  std::string request_id_prefix;
};

Result<std::vector<SampleRequest>> load_custom_dataset(const Tokenizer& tokenizer, const CustomDatasetOptions& options);

}  // namespace tandem::bench
