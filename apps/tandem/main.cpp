// tandem: one binary, vLLM-style subcommands (serve, proxy, bench, generate, tokenize, make-model).
#include <cstdio>

#include "tandem/commands.h"

int main(int argc, char** argv) {
  using namespace tandem::app;
  CLI::App app{"tandem: LLM serving with disaggregated prefill and decode"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for all subcommands");
  int exit_code = 0;

  register_generate(app, exit_code);
  register_make_model(app, exit_code);
  register_tokenize(app, exit_code);
  register_serve(app, exit_code);
  register_proxy(app, exit_code);

  CLI::App* bench = app.add_subcommand("bench", "Benchmarks: serve, latency, tokenizer, kv-transfer");
  bench->require_subcommand(1);
  register_bench_latency(*bench, exit_code);
  register_bench_serve(*bench, exit_code);
  register_bench_tokenizer(*bench, exit_code);
  register_bench_kv_transfer(*bench, exit_code);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
