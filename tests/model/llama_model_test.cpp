// LlamaModel on the CPU backend: dummy and file loading, finite logits, and mixed batches (prefill
// chunks + decodes) giving the same logits as running each sequence on its own.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "backend/cpu/cpu_backend.h"
#include "model/model_writer.h"
#include "model_test_util.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using testing_util::run_step;
using testing_util::StepEntry;
using testing_util::TestKv;
using testing_util::TestSeq;

ModelLoadOptions small_options() {
  ModelLoadOptions o;
  o.max_num_batched_tokens = 64;
  o.max_num_seqs = 8;
  o.max_model_len = 256;
  return o;
}

std::vector<int32_t> tokens(int n, int salt) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back((i * 37 + salt * 101 + 5) % 500);
  return t;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

TEST(LlamaModel, DummyLoadIsDeterministicAndFinite) {
  auto config = preset_model_config("tiny").value();
  auto backend = make_cpu_backend(2).value();
  ModelLoadOptions o = small_options();
  o.load_format = "dummy";
  o.seed = 5;
  auto m1 = LlamaModel::load("/nonexistent", config, o, *backend);
  ASSERT_TRUE(m1.ok()) << m1.status().to_string();
  auto m2 = LlamaModel::load("/nonexistent", config, o, *backend).value();
  o.seed = 6;
  auto m3 = LlamaModel::load("/nonexistent", config, o, *backend).value();
  EXPECT_GT((*m1)->weight_bytes(), static_cast<size_t>(config.num_params()) * 4 - 1);
  EXPECT_GT((*m1)->workspace_bytes(), 0u);

  std::vector<std::vector<float>> outs;
  for (LlamaModel* m : {m1->get(), m2.get(), m3.get()}) {
    TestKv kv(*backend, config, 16);
    TestSeq s;
    auto r = run_step(*m, *backend, kv, {{&s, tokens(10, 1), false}});
    for (float f : r[0][0]) ASSERT_TRUE(std::isfinite(f));
    outs.push_back(r[0][0]);
  }
  EXPECT_EQ(outs[0], outs[1]);
  EXPECT_GT(max_abs_diff(outs[0], outs[2]), 1e-6f);
  // Unknown load format is an error.
  o.load_format = "pickle";
  EXPECT_FALSE(LlamaModel::load("/nonexistent", config, o, *backend).ok());
}

TEST(LlamaModel, LoadsWrittenModelInEveryDtype) {
  auto backend = make_cpu_backend(2).value();
  std::vector<std::vector<float>> outs;
  for (DType dt : {DType::kF32, DType::kBF16, DType::kF16}) {
    fs::path dir = fs::temp_directory_path() / fmt::format("tandem_lm_{}_{}", dtype_name(dt), ::getpid());
    ModelWriterOptions w;
    w.dtype = dt;
    w.write_tokenizer = false;
    ASSERT_TRUE(write_preset_model("tiny", dir, 3, w).ok());
    auto config = ModelConfig::from_file(dir / "config.json").value();
    EXPECT_EQ(config.torch_dtype, dt);
    auto model = LlamaModel::load(dir, config, small_options(), *backend);
    ASSERT_TRUE(model.ok()) << model.status().to_string();
    TestKv kv(*backend, config, 16);
    TestSeq s;
    auto r = run_step(**model, *backend, kv, {{&s, tokens(12, 2), false}});
    for (float f : r[0][0]) ASSERT_TRUE(std::isfinite(f));
    outs.push_back(r[0][0]);
    fs::remove_all(dir);
  }
  // bf16/f16 weights are roundings of the same values: logits close to the fp32 ones.
  EXPECT_LT(max_abs_diff(outs[0], outs[1]), 0.15f);
  EXPECT_LT(max_abs_diff(outs[0], outs[2]), 0.02f);
}

class LlamaModelBatching : public ::testing::Test {
 protected:
  void SetUp() override {
    ModelWriterOptions w;
    w.tie_word_embeddings = true;
    config = preset_model_config("tiny", w).value();
    backend = make_cpu_backend(3).value();
    ModelLoadOptions o = small_options();
    o.load_format = "dummy";
    o.seed = 11;
    model = LlamaModel::load("", config, o, *backend).value();
  }
  ModelConfig config;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LlamaModel> model;
};

TEST_F(LlamaModelBatching, PrefillMatchesTokenByTokenDecode) {
  TestKv kv(*backend, config, 32);
  TestSeq a, b;
  auto t = tokens(11, 3);
  auto all = run_step(*model, *backend, kv, {{&a, t, true}})[0];
  ASSERT_EQ(all.size(), t.size());
  for (size_t i = 0; i < t.size(); ++i) {
    auto one = run_step(*model, *backend, kv, {{&b, {t[i]}, false}})[0][0];
    EXPECT_LT(max_abs_diff(all[i], one), 1e-4f) << "position " << i;
  }
}

TEST_F(LlamaModelBatching, MixedBatchMatchesSeparateRuns) {
  auto ta = tokens(9, 4), tb = tokens(7, 5), tc = tokens(4, 6);
  const std::vector<int32_t> da = {17, 3}, db = {250, 8}, dc = {99, 1, 2};
  // Separately: each sequence alone, whole prompt then decodes.
  auto alone = [&](const std::vector<int32_t>& prompt, const std::vector<int32_t>& decodes) {
    TestKv kv(*backend, config, 16);
    TestSeq s;
    std::vector<std::vector<float>> out = run_step(*model, *backend, kv, {{&s, prompt, true}})[0];
    for (int32_t d : decodes) out.push_back(run_step(*model, *backend, kv, {{&s, {d}, false}})[0][0]);
    return out;
  };
  auto ref_a = alone(ta, da), ref_b = alone(tb, db), ref_c = alone(tc, dc);

  TestKv kv(*backend, config, 32);
  TestSeq a, b, c;
  // Step 1: C whole prompt.
  auto s1 = run_step(*model, *backend, kv, {{&c, tc, true}});
  // Step 2: C decodes, A and B prefill their first chunks.
  auto s2 = run_step(*model, *backend, kv,
                     {{&c, {dc[0]}, false},
                      {&a, std::vector<int32_t>(ta.begin(), ta.begin() + 5), true},
                      {&b, std::vector<int32_t>(tb.begin(), tb.begin() + 3), true}});
  // Step 3: C decodes, A and B finish their prompts.
  auto s3 = run_step(*model, *backend, kv,
                     {{&c, {dc[1]}, false},
                      {&a, std::vector<int32_t>(ta.begin() + 5, ta.end()), true},
                      {&b, std::vector<int32_t>(tb.begin() + 3, tb.end()), true}});
  // Step 4: all three decode.
  auto s4 = run_step(*model, *backend, kv, {{&a, {da[0]}, false}, {&b, {db[0]}, false}, {&c, {dc[2]}, false}});
  // Step 5: two decodes.
  auto s5 = run_step(*model, *backend, kv, {{&b, {db[1]}, false}, {&a, {da[1]}, false}});

  const float tol = 1e-5f;
  for (size_t i = 0; i < tc.size(); ++i) EXPECT_LT(max_abs_diff(s1[0][i], ref_c[i]), tol);
  EXPECT_LT(max_abs_diff(s2[0][0], ref_c[tc.size()]), tol);
  EXPECT_LT(max_abs_diff(s3[0][0], ref_c[tc.size() + 1]), tol);
  EXPECT_LT(max_abs_diff(s4[2][0], ref_c[tc.size() + 2]), tol);
  for (int i = 0; i < 5; ++i) EXPECT_LT(max_abs_diff(s2[1][i], ref_a[i]), tol) << "A " << i;
  for (int i = 0; i < 4; ++i) EXPECT_LT(max_abs_diff(s3[1][i], ref_a[5 + i]), tol) << "A " << 5 + i;
  for (int i = 0; i < 3; ++i) EXPECT_LT(max_abs_diff(s2[2][i], ref_b[i]), tol) << "B " << i;
  for (int i = 0; i < 4; ++i) EXPECT_LT(max_abs_diff(s3[2][i], ref_b[3 + i]), tol) << "B " << 3 + i;
  EXPECT_LT(max_abs_diff(s4[0][0], ref_a[ta.size()]), tol);
  EXPECT_LT(max_abs_diff(s4[1][0], ref_b[tb.size()]), tol);
  EXPECT_LT(max_abs_diff(s5[0][0], ref_b[tb.size() + 1]), tol);
  EXPECT_LT(max_abs_diff(s5[1][0], ref_a[ta.size() + 1]), tol);
}

}  // namespace
}  // namespace tandem
