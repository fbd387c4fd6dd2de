// `tandem bench tokenizer`: single-thread encode throughput (MB/s, tokens/s) on deterministic prose,
// code and random-Unicode corpora. --dump-texts DIR writes the corpora as JSONL (one document per line)
// for tools/bench_tokenizer_hf.py, which measures HF tokenizers on the same documents.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "tandem/commands.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_bench.h"

namespace tandem::app {

void register_bench_tokenizer(CLI::App& bench, int& exit_code) {
  struct Flags {
    std::string tokenizer;
    double seconds = 3.0;
    std::string dump_texts;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = bench.add_subcommand("tokenizer", "Single-thread tokenizer encode throughput");
  cmd->add_option("--tokenizer", flags->tokenizer, "tokenizer.json or a model directory");
  cmd->add_option("--seconds", flags->seconds, "Minimum timed seconds per corpus")->check(CLI::PositiveNumber);
  cmd->add_option("--dump-texts", flags->dump_texts, "Write the corpora as DIR/<corpus>.jsonl and exit");
  cmd->callback([flags, &exit_code] {
    auto corpora = make_bench_corpora();
    if (!flags->dump_texts.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(flags->dump_texts, ec);
      for (const auto& c : corpora) {
        std::ofstream out(std::filesystem::path(flags->dump_texts) / (c.name + ".jsonl"));
        for (const auto& d : c.docs) out << nlohmann::json(d).dump() << "\n";
        if (!out) {
          std::fprintf(stderr, "error: cannot write %s\n", flags->dump_texts.c_str());
          exit_code = 1;
          return;
        }
      }
      return;
    }
    if (flags->tokenizer.empty()) {
      std::fprintf(stderr, "error: --tokenizer is required\n");
      exit_code = 2;
      return;
    }
    TokenizerLoadOptions options;
    options.require_known_chat_template = false;
    auto tok = Tokenizer::load(flags->tokenizer, options);
    if (!tok.ok()) {
      std::fprintf(stderr, "error: %s\n", tok.status().to_string().c_str());
      exit_code = 2;
      return;
    }
    std::printf("tandem tokenizer encode, single thread, tokenizer %s\n", flags->tokenizer.c_str());
    std::printf("%-8s %6s %9s %10s %12s\n", "corpus", "docs", "MB/s", "tokens/s", "bytes/token");
    for (const auto& c : corpora) {
      auto r = run_encode_bench(**tok, c, flags->seconds);
      std::printf("%-8s %6zu %9.2f %10.0f %12.2f\n", c.name.c_str(), c.docs.size(), r.mb_per_s(), r.tokens_per_s(),
                  r.tokens > 0 ? r.bytes / r.tokens : 0.0);
    }
  });
}

}  // namespace tandem::app
