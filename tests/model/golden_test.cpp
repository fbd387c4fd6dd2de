// Golden test against HF transformers: for each tests/fixtures/golden/<variant>.json (written by
// tools/make_golden_fixtures.py), regenerate the same model with write_preset_model, load it on the CPU
// backend, and require
//   - teacher-forced prefill logits at the fixture's positions within max-abs 1e-3 * max(1, max |logit|)
//     of HF's (fp32 on both sides; the difference is summation order, ~1e-6 in practice);
//   - greedy decoding, one token per step through the paged KV cache, identical to HF's 32 tokens.
// Skips with a message when no fixture exists.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_sampling.h"
#include "model/model_writer.h"
#include "model_test_util.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using testing_util::run_step;
using testing_util::TestKv;
using testing_util::TestSeq;

std::vector<fs::path> fixtures() {
  std::vector<fs::path> out;
  fs::path dir = fs::path(TANDEM_SOURCE_DIR) / "tests" / "fixtures" / "golden";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".json") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Golden, MatchesTransformers) {
  auto files = fixtures();
  if (files.empty()) {
    GTEST_SKIP() << "no golden fixtures in tests/fixtures/golden (generate them with "
                    "python3 tools/make_golden_fixtures.py --tandem build/bin/tandem --out tests/fixtures/golden)";
  }
  auto backend = make_cpu_backend(0).value();
  for (const auto& file : files) {
    SCOPED_TRACE(file.string());
    std::ifstream in(file);
    std::stringstream ss;
    ss << in.rdbuf();
    auto fx = nlohmann::json::parse(ss.str());
    const auto& mm = fx["make_model"];
    ModelWriterOptions o;
    o.rope_scaling = mm["rope_scaling"].get<std::string>();
    o.rope_scaling_factor = mm["rope_factor"].get<float>();
    o.tie_word_embeddings = mm["tie_word_embeddings"].get<bool>();
    o.num_kv_heads = mm["num_kv_heads"].get<int>();
    o.num_layers = mm.value("num_layers", 0);
    o.dtype = parse_dtype(mm["dtype"].get<std::string>()).value();
    o.write_tokenizer = true;
    fs::path dir = fs::temp_directory_path() / fmt::format("tandem_golden_{}_{}", fx["variant"].get<std::string>(), ::getpid());
    ASSERT_TRUE(write_preset_model(mm["preset"].get<std::string>(), dir, mm["seed"].get<uint64_t>(), o).ok());
    auto config = ModelConfig::from_file(dir / "config.json").value();
    ModelLoadOptions lo;
    lo.max_num_batched_tokens = 256;
    lo.max_num_seqs = 4;
    lo.max_model_len = 512;
    auto model = LlamaModel::load(dir, config, lo, *backend);
    ASSERT_TRUE(model.ok()) << model.status().to_string();
    fs::remove_all(dir);

    float worst = 0.0f;
    for (const auto& p : fx["prompts"]) {
      auto ids = p["token_ids"].get<std::vector<int32_t>>();
      SCOPED_TRACE(fmt::format("prompt of {} tokens", ids.size()));
      TestKv kv(*backend, config, 64, 16);
      TestSeq seq;
      auto logits = run_step(**model, *backend, kv, {{&seq, ids, true}})[0];
      auto positions = p["logit_positions"].get<std::vector<int>>();
      auto want = p["logits"].get<std::vector<std::vector<float>>>();
      for (size_t k = 0; k < positions.size(); ++k) {
        const auto& got = logits[positions[k]];
        ASSERT_EQ(got.size(), want[k].size());
        float scale = 1.0f, diff = 0.0f;
        for (size_t i = 0; i < got.size(); ++i) {
          scale = std::max(scale, std::fabs(want[k][i]));
          diff = std::max(diff, std::fabs(got[i] - want[k][i]));
        }
        EXPECT_LE(diff, 1e-3f * scale) << "position " << positions[k];
        worst = std::max(worst, diff / scale);
      }
      auto greedy = p["greedy_tokens"].get<std::vector<int32_t>>();
      std::vector<int32_t> ours;
      int32_t next = argmax_token(logits.back());
      for (size_t step = 0; step < greedy.size(); ++step) {
        ours.push_back(next);
        if (step + 1 < greedy.size()) next = argmax_token(run_step(**model, *backend, kv, {{&seq, {next}, false}})[0][0]);
      }
      EXPECT_EQ(ours, greedy);
    }
    std::printf("golden %s: max |logit diff| / scale = %.3g\n", fx["variant"].get<std::string>().c_str(), worst);
  }
}

}  // namespace
}  // namespace tandem
