// Writes a genuine Hugging Face byte-level BPE tokenizer (Llama 3 style) for test models:
// tokenizer.json (Split pre-tokenizer with the Llama 3 regex + ByteLevel, BPE vocab and merges learned
// deterministically from a built-in English/code text, the Llama 3 special tokens, a TemplateProcessing
// post-processor that adds BOS, a ByteLevel decoder) and tokenizer_config.json (bos/eos, add_bos_token,
// a Llama 3 style chat template).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/status.h"

namespace tandem {

struct WrittenTokenizer {
  int32_t size = 0;  // base vocabulary + special tokens
  int32_t begin_of_text_id = -1;
  int32_t end_of_text_id = -1;
  int32_t eot_id = -1;
};

// Learns merges until base vocabulary + 5 special tokens reaches `max_size` (or the text runs out of
// pairs), then fills the remaining ids with <|reserved_special_token_N|> (Llama 3 style) so the
// tokenizer size is exactly max_size. The result depends only on max_size.
Result<WrittenTokenizer> write_tokenizer_files(const std::filesystem::path& dir, int32_t max_size, int model_max_length);

// The BPE training itself (exposed for tests): returns merges as pairs of byte-level symbol strings.
std::vector<std::pair<std::string, std::string>> train_byte_level_bpe(const std::string& text, int num_merges);

}  // namespace tandem
