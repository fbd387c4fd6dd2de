// Tokenizer encode benchmark: deterministic corpora (English prose, source code, random Unicode) split
// into ~4 KiB documents, and a single-thread timing loop. `tandem bench tokenizer` prints the figures;
// tools/bench_tokenizer_hf.py measures HF tokenizers on the same documents (dumped with --dump-texts).
#pragma once

#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace tandem {

struct BenchCorpus {
  std::string name;
  std::vector<std::string> docs;
};

// Same output on every machine and run (fixed-seed generator, no locale or library dependence).
std::vector<BenchCorpus> make_bench_corpora();

struct EncodeBenchResult {
  double seconds = 0;
  double bytes = 0;
  double tokens = 0;
  double mb_per_s() const { return seconds > 0 ? bytes / 1e6 / seconds : 0; }
  double tokens_per_s() const { return seconds > 0 ? tokens / seconds : 0; }
};

// Encodes the documents one at a time (add_special_tokens=false) on the calling thread, whole passes
// until `min_seconds` have elapsed (after one untimed warm-up pass).
EncodeBenchResult run_encode_bench(const Tokenizer& tok, const BenchCorpus& corpus, double min_seconds);

}  // namespace tandem
