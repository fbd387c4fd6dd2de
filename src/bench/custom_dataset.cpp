// load_custom_dataset: see the header.
#include "bench/custom_dataset.h"

#include <nlohmann/json.hpp>

#include <fstream>

#include "bench/bench_rng.h"

namespace tandem::bench {

Result<std::vector<SampleRequest>> load_custom_dataset(const Tokenizer& tok, const CustomDatasetOptions& o) {
  std::ifstream in(o.path);
  if (!in) return NotFoundError("cannot open --dataset-path '{}'", o.path.string());
  struct Row {
    std::string prompt;
    int output_len;
  };
  std::vector<Row> rows;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return InvalidArgumentError("{}:{}: not a JSON object", o.path.string(), line_no);
    }
    auto p = j.find("prompt");
    if (p == j.end() || !p->is_string()) {
      return InvalidArgumentError("{}:{}: missing string field \"prompt\"", o.path.string(), line_no);
    }
    Row row{p->get<std::string>(), o.output_len};
    if (auto ot = j.find("output_tokens"); ot != j.end() && !ot->is_null()) {
      if (!ot->is_number_integer() || ot->get<int64_t>() < 1) {
        return InvalidArgumentError("{}:{}: \"output_tokens\" must be a positive integer", o.path.string(), line_no);
      }
      row.output_len = static_cast<int>(ot->get<int64_t>());
    }
    rows.push_back(std::move(row));
  }
  if (rows.empty()) return InvalidArgumentError("--dataset-path '{}' has no prompts", o.path.string());
  if (!o.disable_shuffle) {  // Fisher-Yates with the benchmark's seeded generator
    BenchRng rng(o.seed);
    for (size_t i = rows.size() - 1; i > 0; --i) {
      std::swap(rows[i], rows[static_cast<size_t>(rng.integers(0, static_cast<int64_t>(i) + 1))]);
    }
  }
  size_t want = o.num_prompts <= 0 ? rows.size() : static_cast<size_t>(o.num_prompts);
  std::vector<SampleRequest> out;
  out.reserve(want);
  for (size_t i = 0; i < want; ++i) {
    const Row& row = rows[i % rows.size()];
    SampleRequest r;
    r.prompt = row.prompt;
    if (!o.skip_chat_template) {
      ChatMessage msg{"user", row.prompt};
      auto rendered = tok.apply_chat_template(std::span<const ChatMessage>(&msg, 1), /*add_generation_prompt=*/true);
      if (!rendered.ok()) return rendered.status().with_context("custom dataset: applying the chat template");
      r.prompt = std::move(rendered).value();
    }
    r.prompt_len = static_cast<int>(tok.encode(r.prompt, /*add_special_tokens=*/true).size());
    r.expected_output_len = row.output_len;
    r.request_id = o.request_id_prefix + std::to_string(i);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace tandem::bench
