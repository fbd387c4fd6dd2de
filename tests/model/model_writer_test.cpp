// write_preset_model: the directory is complete, deterministic, and its tokenizer is consistent with the
// model (vocab size >= tokenizer size, special ids in config.json).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "model/model_writer.h"
#include "model/tokenizer_writer.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ModelWriter, WritesCompleteDeterministicDirectory) {
  for (const char* preset : {"tiny", "small"}) {
    // Left in the build tree so tools can inspect it (e.g. HF tokenizers round trips).
    fs::path dir = fs::path(TANDEM_BINARY_DIR) / "test_models" / preset;
    fs::remove_all(dir);
    ASSERT_TRUE(write_preset_model(preset, dir, 42).ok());
    for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                          "generation_config.json"}) {
      EXPECT_TRUE(fs::exists(dir / f)) << preset << " " << f;
    }
    auto config = ModelConfig::from_file(dir / "config.json");
    ASSERT_TRUE(config.ok()) << config.status().to_string();
    auto tok = nlohmann::json::parse(read(dir / "tokenizer.json"));
    int32_t max_id = 0;
    for (auto& [k, v] : tok["model"]["vocab"].items()) max_id = std::max(max_id, v.get<int32_t>());
    for (auto& a : tok["added_tokens"]) max_id = std::max(max_id, a["id"].get<int32_t>());
    EXPECT_GE(config->vocab_size, max_id + 1) << preset;
    EXPECT_EQ(tok["added_tokens"][0]["content"], "<|begin_of_text|>");
    EXPECT_EQ(config->bos_token_id, tok["added_tokens"][0]["id"].get<int>());
    EXPECT_EQ(config->eos_token_ids.size(), 2u);
    auto tc = nlohmann::json::parse(read(dir / "tokenizer_config.json"));
    EXPECT_EQ(tc["eos_token"], "<|eot_id|>");
    EXPECT_TRUE(tc["chat_template"].get<std::string>().find("<|start_header_id|>") != std::string::npos);
    // Deterministic: the same seed writes the same bytes.
    fs::path again = dir.string() + "_again";
    ASSERT_TRUE(write_preset_model(preset, again, 42).ok());
    EXPECT_EQ(read(dir / "model.safetensors"), read(again / "model.safetensors"));
    EXPECT_EQ(read(dir / "tokenizer.json"), read(again / "tokenizer.json"));
    fs::remove_all(again);
  }
  EXPECT_FALSE(write_preset_model("huge", fs::temp_directory_path() / "tandem_nope", 1).ok());
  ModelWriterOptions bad;
  bad.num_kv_heads = 3;
  EXPECT_FALSE(preset_model_config("tiny", bad).ok());
}

TEST(ModelWriter, BpeTrainerMergesFrequentPairsFirst) {
  auto merges = train_byte_level_bpe("aaab aaab aaab xy", 3);
  ASSERT_EQ(merges.size(), 3u);
  EXPECT_EQ(merges[0], (std::pair<std::string, std::string>{"a", "a"}));
}

}  // namespace
}  // namespace tandem
