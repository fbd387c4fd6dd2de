// ModelConfig parsing errors, defaults, round trip and RoPE frequencies.
#include <gtest/gtest.h>

#include <cmath>

#include "model/model_config.h"

namespace tandem {
namespace {

const char* kBase = R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 1000, "hidden_size": 64,
  "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "torch_dtype": "bfloat16", "eos_token_id": [7, 9],
  "bos_token_id": 3, "tie_word_embeddings": true})";

TEST(ModelConfig, ParsesFields) {
  auto c = ModelConfig::from_json(kBase, "cfg.json");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->num_kv_heads, 2);
  EXPECT_EQ(c->torch_dtype, DType::kBF16);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int>{7, 9}));
  EXPECT_EQ(c->bos_token_id, 3);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kNone);
  // num_params: embed (tied) + layers + final norm.
  int64_t per_layer = 64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 128 + 2 * 64;
  EXPECT_EQ(c->num_params(), 1000 * 64 + 2 * per_layer + 64);
  // Round trip through to_json.
  auto c2 = ModelConfig::from_json(c->to_json(), "round trip");
  ASSERT_TRUE(c2.ok()) << c2.status().to_string();
  EXPECT_EQ(c2->fingerprint(), c->fingerprint());
}

TEST(ModelConfig, ErrorsNameFileAndField) {
  auto missing = ModelConfig::from_json(R"({"architectures": ["LlamaForCausalLM"], "vocab_size": 10})", "/m/config.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/m/config.json"), std::string::npos);
  EXPECT_NE(missing.status().message().find("hidden_size"), std::string::npos);

  std::string arch = kBase;
  arch.replace(arch.find("LlamaForCausalLM"), 16, "MistralForCausalLM");
  auto bad_arch = ModelConfig::from_json(arch, "c.json");
  ASSERT_FALSE(bad_arch.ok());
  EXPECT_NE(bad_arch.status().message().find("MistralForCausalLM"), std::string::npos);

  std::string rope = std::string(kBase);
  rope.insert(rope.size() - 1, R"(, "rope_scaling": {"rope_type": "yarn", "factor": 4.0})");
  auto bad_rope = ModelConfig::from_json(rope, "c.json");
  ASSERT_FALSE(bad_rope.ok());
  EXPECT_NE(bad_rope.status().message().find("yarn"), std::string::npos);

  std::string rope2 = std::string(kBase);
  rope2.insert(rope2.size() - 1, R"(, "rope_scaling": {"rope_type": "llama3", "factor": 8.0})");
  auto incomplete = ModelConfig::from_json(rope2, "c.json");
  ASSERT_FALSE(incomplete.ok());
  EXPECT_NE(incomplete.status().message().find("low_freq_factor"), std::string::npos);

  EXPECT_FALSE(ModelConfig::from_json("{not json", "c.json").ok());
  EXPECT_FALSE(ModelConfig::from_json(R"([1, 2])", "c.json").ok());
  std::string gqa = kBase;
  gqa.replace(gqa.find("\"num_key_value_heads\": 2"), 24, "\"num_key_value_heads\": 3");
  EXPECT_FALSE(ModelConfig::from_json(gqa, "c.json").ok());
  EXPECT_FALSE(ModelConfig::from_file("/nonexistent/config.json").ok());
}

TEST(ModelConfig, RopeInvFreqMatchesHfFormulas) {
  auto c = ModelConfig::from_json(kBase, "c.json").value();
  c.rope_theta = 10000.0f;
  auto def = c.rope_inv_freq();
  ASSERT_EQ(def.size(), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(def[i], 1.0 / std::pow(10000.0, 2.0 * i / 16.0), 1e-7);
  c.rope_scaling.type = RopeScalingType::kLinear;
  c.rope_scaling.factor = 4.0f;
  auto lin = c.rope_inv_freq();
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(lin[i], def[i] / 4.0f);
  c.rope_scaling = RopeScaling{RopeScalingType::kLlama3, 8.0f, 1.0f, 4.0f, 256};
  auto l3 = c.rope_inv_freq();
  for (int i = 0; i < 8; ++i) {
    double wavelen = 2 * M_PI / def[i];
    double expect;
    if (wavelen < 256 / 4.0) {
      expect = def[i];
    } else if (wavelen > 256 / 1.0) {
      expect = def[i] / 8.0;
    } else {
      double smooth = (256 / wavelen - 1.0) / (4.0 - 1.0);
      expect = (1 - smooth) * def[i] / 8.0 + smooth * def[i];
    }
    EXPECT_NEAR(l3[i], expect, 1e-6 * def[i]) << i;
  }
  // The Llama 3.1 config parses with llama3 scaling.
  std::string l31 = kBase;
  l31.insert(l31.size() - 1,
             R"(, "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                "original_max_position_embeddings": 8192, "rope_type": "llama3"})");
  auto p = ModelConfig::from_json(l31, "c.json");
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(p->rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_EQ(p->rope_scaling.original_max_position_embeddings, 8192);
}

TEST(ModelConfig, SharedLlama31ConfigWhenPresent) {
  std::filesystem::path p = std::filesystem::path(TANDEM_SOURCE_DIR) / "../shared/models/llama-3.1-8b/config.json";
  if (!std::filesystem::exists(p)) GTEST_SKIP() << "no " << p << " (shared models absent)";
  auto c = ModelConfig::from_file(p);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->hidden_size, 4096);
  EXPECT_EQ(c->num_kv_heads, 8);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->eos_token_ids.size(), 3u);
  EXPECT_NEAR(static_cast<double>(c->num_params()), 8.03e9, 0.01e9);
}

}  // namespace
}  // namespace tandem
