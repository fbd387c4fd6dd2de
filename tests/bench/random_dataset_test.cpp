// Random and custom datasets: exact prompt token lengths with the tiny test tokenizer and with the
// Llama 3 tokenizer (skipped when /work/shared/models/llama-3.1-8b is absent), range ratios, prefixes,
// determinism, and the decode -> re-encode fix-up on a tokenizer whose merges change lengths.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "bench/custom_dataset.h"
#include "bench/random_dataset.h"
#include "model/tokenizer_writer.h"

namespace tandem::bench {
namespace {

namespace fs = std::filesystem;

// Greedy longest-match tokenizer over {"<s>", "a", "b", "ab", "c", " "}: decoding [a, b] and re-encoding
// gives [ab], so random prompts come back shorter and need the fix-up loop.
class MergingTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    std::vector<int32_t> ids;
    if (add_special) ids.push_back(0);
    size_t i = 0;
    while (i < text.size()) {
      if (text.substr(i, 3) == "<s>") { ids.push_back(0); i += 3; continue; }
      if (text.substr(i, 2) == "ab") { ids.push_back(3); i += 2; continue; }
      char c = text[i++];
      ids.push_back(c == 'a' ? 1 : c == 'b' ? 2 : c == 'c' ? 4 : 5);
    }
    return ids;
  }
  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    static const char* kText[] = {"<s>", "a", "b", "ab", "c", " "};
    std::string s;
    for (int32_t id : ids) {
      if (id == 0 && skip_special) continue;
      s += kText[id];
    }
    return s;
  }
  int32_t vocab_size() const override { return 6; }
  std::optional<int32_t> token_to_id(std::string_view) const override { return std::nullopt; }
  std::optional<std::string> id_to_token(int32_t) const override { return std::nullopt; }
  bool is_special(int32_t id) const override { return id == 0; }
  std::vector<int32_t> special_token_ids() const override { return {0}; }
  std::optional<int32_t> bos_token_id() const override { return 0; }
  std::vector<int32_t> eos_token_ids() const override { return {}; }
  int num_special_tokens_to_add() const override { return 1; }
  Result<std::string> apply_chat_template(std::span<const ChatMessage> m, bool) const override {
    return "<user>" + m[0].content;
  }
  std::string fingerprint() const override { return "merging"; }
};

void expect_exact_lengths(const Tokenizer& tok, const RandomDatasetOptions& o) {
  auto ds = make_random_dataset(tok, o);
  ASSERT_TRUE(ds.ok()) << ds.status().to_string();
  ASSERT_EQ(ds->requests.size(), static_cast<size_t>(o.num_prompts));
  EXPECT_EQ(ds->token_mismatch_total, 0);
  for (const auto& r : ds->requests) {
    EXPECT_EQ(static_cast<int>(tok.encode(r.prompt, false).size()), r.prompt_len);
    if (o.range_ratio == 0) {
      // What the server counts (BOS included) is exactly --random-input-len (+ the prefix).
      EXPECT_EQ(static_cast<int>(tok.encode(r.prompt, true).size()), o.input_len + o.prefix_len) << r.prompt;
      EXPECT_EQ(r.expected_output_len, o.output_len);
    }
  }
}

TEST(RandomDataset, FixUpLoopReachesTargetOnMergingTokenizer) {
  MergingTokenizer tok;
  expect_exact_lengths(tok, {.num_prompts = 50, .input_len = 33, .output_len = 7, .seed = 1});
}

TEST(RandomDataset, TinyTokenizerExactLengths) {
  fs::path dir = fs::temp_directory_path() / ("tandem_bench_tok_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  ASSERT_TRUE(write_tokenizer_files(dir, 512, 2048).ok());
  auto tok = Tokenizer::load(dir);
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  expect_exact_lengths(**tok, {.num_prompts = 40, .input_len = 128, .output_len = 16, .seed = 0});
  expect_exact_lengths(**tok, {.num_prompts = 20, .input_len = 64, .output_len = 8, .prefix_len = 10, .seed = 5});
  expect_exact_lengths(**tok, {.num_prompts = 30, .input_len = 100, .output_len = 20, .range_ratio = 0.5, .seed = 2});

  // Range ratio bounds, determinism, request ids.
  RandomDatasetOptions o{.num_prompts = 200, .input_len = 101, .output_len = 10, .range_ratio = 0.3, .seed = 9,
                         .request_id_prefix = "p-"};
  auto a = make_random_dataset(**tok, o);
  auto b = make_random_dataset(**tok, o);
  ASSERT_TRUE(a.ok() && b.ok());
  int min_in = 1 << 30, max_in = 0;
  for (size_t i = 0; i < a->requests.size(); ++i) {
    EXPECT_EQ(a->requests[i].prompt, b->requests[i].prompt);
    const auto& r = a->requests[i];
    min_in = std::min(min_in, r.prompt_len);
    max_in = std::max(max_in, r.prompt_len);
    EXPECT_GE(r.expected_output_len, 7);   // floor(10 * 0.7)
    EXPECT_LE(r.expected_output_len, 13);  // ceil(10 * 1.3)
    EXPECT_EQ(r.request_id, "p-" + std::to_string(i));
  }
  EXPECT_GE(min_in, 70);   // floor(100 * 0.7), 100 = 101 - BOS
  EXPECT_LE(max_in, 130);  // ceil(100 * 1.3)
  EXPECT_LT(min_in, max_in);
  o.seed = 10;
  auto c = make_random_dataset(**tok, o);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(c->requests[0].prompt, a->requests[0].prompt);

  // Custom dataset over the same tokenizer.
  fs::path jsonl = dir / "prompts.jsonl";
  std::ofstream(jsonl) << "{\"prompt\": \"What is the capital of France?\"}\n\n"
                       << "{\"prompt\": \"Name three primes.\", \"output_tokens\": 5}\n";
  auto custom = load_custom_dataset(**tok, {.path = jsonl, .num_prompts = 5, .output_len = 33,
                                            .skip_chat_template = true, .disable_shuffle = true});
  ASSERT_TRUE(custom.ok()) << custom.status().to_string();
  ASSERT_EQ(custom->size(), 5u);  // oversampled by repetition
  EXPECT_EQ((*custom)[0].prompt, "What is the capital of France?");
  EXPECT_EQ((*custom)[0].expected_output_len, 33);
  EXPECT_EQ((*custom)[1].expected_output_len, 5);
  EXPECT_EQ((*custom)[0].prompt_len, static_cast<int>((*tok)->encode((*custom)[0].prompt, true).size()));
  auto templated = load_custom_dataset(**tok, {.path = jsonl, .num_prompts = 2, .disable_shuffle = true});
  ASSERT_TRUE(templated.ok()) << templated.status().to_string();
  EXPECT_NE((*templated)[0].prompt.find("What is the capital of France?"), std::string::npos);
  EXPECT_NE((*templated)[0].prompt, "What is the capital of France?");
  std::ofstream(dir / "bad.jsonl") << "{\"text\": 1}\n";
  EXPECT_FALSE(load_custom_dataset(**tok, {.path = dir / "bad.jsonl"}).ok());
  EXPECT_FALSE(load_custom_dataset(**tok, {.path = dir / "missing.jsonl"}).ok());
  fs::remove_all(dir);
}

TEST(RandomDataset, Llama3TokenizerExactLengths) {
  fs::path dir = fs::path(TANDEM_SOURCE_DIR) / ".." / "shared" / "models" / "llama-3.1-8b";
  if (!fs::exists(dir / "tokenizer.json")) GTEST_SKIP() << "no Llama 3 tokenizer at " << dir;
  auto tok = Tokenizer::load(dir);
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  expect_exact_lengths(**tok, {.num_prompts = 20, .input_len = 1024, .output_len = 128, .seed = 0});
  expect_exact_lengths(**tok, {.num_prompts = 10, .input_len = 200, .output_len = 16, .prefix_len = 50, .seed = 7});
}

TEST(RandomDataset, RejectsBadOptions) {
  MergingTokenizer tok;
  EXPECT_FALSE(make_random_dataset(tok, {.num_prompts = 0}).ok());
  EXPECT_FALSE(make_random_dataset(tok, {.range_ratio = 1.0}).ok());
  EXPECT_FALSE(make_random_dataset(tok, {.num_prompts = 1, .input_len = 1}).ok());  // 1 - BOS = 0 tokens
}

}  // namespace
}  // namespace tandem::bench
