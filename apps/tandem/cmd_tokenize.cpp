// `tandem tokenize` / `tandem detokenize`: text <-> JSON arrays of ids through a tokenizer.json
// (or a model directory). With --jsonl each stdin line is one JSON string (tokenize) or one JSON array
// (detokenize) and each output line answers it.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "tandem/commands.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_cli.h"

namespace tandem::app {
namespace {

struct TokenizeFlags {
  std::string tokenizer;
  bool add_special_tokens = false;
  bool skip_special_tokens = false;
  bool jsonl = false;
};

std::shared_ptr<Tokenizer> load_or_report(const std::string& path, int& exit_code) {
  TokenizerLoadOptions options;
  options.require_known_chat_template = false;
  auto tok = Tokenizer::load(path, options);
  if (!tok.ok()) {
    std::fprintf(stderr, "error: %s\n", tok.status().to_string().c_str());
    exit_code = 2;
    return nullptr;
  }
  return std::move(tok).value();
}

std::string read_stdin() {
  std::ios::sync_with_stdio(false);
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

}  // namespace

void register_tokenize(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<TokenizeFlags>();
  CLI::App* tok = app.add_subcommand("tokenize", "Text on stdin -> JSON array of token ids on stdout");
  tok->add_option("--tokenizer", flags->tokenizer, "tokenizer.json or a model directory")->required();
  tok->add_flag("--add-special-tokens", flags->add_special_tokens, "Apply the post-processor (BOS)");
  tok->add_flag("--jsonl", flags->jsonl, "Each input line is a JSON string; print one JSON array per line");
  tok->callback([flags, &exit_code] {
    auto t = load_or_report(flags->tokenizer, exit_code);
    if (!t) return;
    std::string input = read_stdin();
    auto out = tokenize_stream(*t, input, flags->jsonl, flags->add_special_tokens);
    std::fwrite(out.text.data(), 1, out.text.size(), stdout);
    if (!out.error.empty()) {
      std::fprintf(stderr, "error: %s\n", out.error.c_str());
      exit_code = 1;
    }
  });

  CLI::App* detok = app.add_subcommand("detokenize", "JSON array(s) of token ids on stdin -> text on stdout");
  detok->add_option("--tokenizer", flags->tokenizer, "tokenizer.json or a model directory")->required();
  detok->add_flag("--skip-special-tokens", flags->skip_special_tokens, "Drop special tokens from the text");
  detok->add_flag("--jsonl", flags->jsonl, "Each input line is a JSON array; print one JSON string per line");
  detok->callback([flags, &exit_code] {
    auto t = load_or_report(flags->tokenizer, exit_code);
    if (!t) return;
    std::string input = read_stdin();
    auto out = detokenize_stream(*t, input, flags->jsonl, flags->skip_special_tokens);
    std::fwrite(out.text.data(), 1, out.text.size(), stdout);
    if (!out.error.empty()) {
      std::fprintf(stderr, "error: %s\n", out.error.c_str());
      exit_code = 1;
    }
  });
}

}  // namespace tandem::app
