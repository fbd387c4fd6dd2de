// Subcommand registration: each cmd_*.cpp adds its subcommand to the CLI and, when it is selected,
// stores the process exit code in `exit_code`.
#pragma once

#include <CLI/CLI.hpp>

namespace tandem::app {

void register_generate(CLI::App& app, int& exit_code);
void register_make_model(CLI::App& app, int& exit_code);
void register_tokenize(CLI::App& app, int& exit_code);    // tokenize and detokenize
void register_serve(CLI::App& app, int& exit_code);
void register_proxy(CLI::App& app, int& exit_code);
// `tandem bench <kind>`: each registers itself under the bench subcommand.
void register_bench_latency(CLI::App& bench, int& exit_code);
void register_bench_serve(CLI::App& bench, int& exit_code);
void register_bench_tokenizer(CLI::App& bench, int& exit_code);
void register_bench_kv_transfer(CLI::App& bench, int& exit_code);

}  // namespace tandem::app
