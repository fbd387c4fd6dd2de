// Safetensors reader errors (truncated file, bad header, missing tensor, wrong shape) and sharding.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "backend/cpu/cpu_backend.h"
#include "model/llama_model.h"
#include "model/model_writer.h"
#include "model/safetensors_checkpoint.h"
#include "model/safetensors_file.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / fmt::format("tandem_st_{}_{}", name, ::getpid());
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

SafetensorsWriteEntry entry(const std::string& name, std::vector<int64_t> shape) {
  SafetensorsWriteEntry e{name, DType::kF32, shape, {}};
  int64_t n = 1;
  for (auto s : shape) n *= s;
  e.bytes.resize(n * 4);
  for (int64_t i = 0; i < n; ++i) {
    float f = static_cast<float>(i);
    std::memcpy(&e.bytes[i * 4], &f, 4);
  }
  return e;
}

TEST(Safetensors, RoundTrip) {
  auto dir = temp_dir("rt");
  ASSERT_TRUE(write_safetensors(dir / "a.safetensors", {entry("x", {2, 3}), entry("b", {5})}).ok());
  auto f = SafetensorsFile::open(dir / "a.safetensors");
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  const SafetensorsTensor* x = (*f)->find("x");
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(static_cast<const float*>(x->data)[5], 5.0f);
  EXPECT_EQ((*f)->find("nope"), nullptr);
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
  fs::remove_all(dir);
}

TEST(Safetensors, TruncatedFileNamesFileAndTensor) {
  auto dir = temp_dir("trunc");
  auto path = dir / "t.safetensors";
  ASSERT_TRUE(write_safetensors(path, {entry("alpha", {4}), entry("beta", {100})}).ok());
  fs::resize_file(path, fs::file_size(path) - 10);
  auto f = SafetensorsFile::open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find(path.string()), std::string::npos) << f.status().message();
  EXPECT_NE(f.status().message().find("beta"), std::string::npos) << f.status().message();
  fs::remove_all(dir);
}

TEST(Safetensors, BadHeaders) {
  auto dir = temp_dir("bad");
  auto write_raw = [&](const std::string& name, const std::string& header, size_t data_bytes, uint64_t len_override = 0) {
    std::ofstream out(dir / name, std::ios::binary);
    uint64_t len = len_override ? len_override : header.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>(len >> (8 * i)));
    out << header << std::string(data_bytes, '\0');
    return dir / name;
  };
  std::vector<fs::path> bad = {
      write_raw("short", "", 0, 0),
      write_raw("huge_len", "{}", 0, 1ull << 40),
      write_raw("not_json", "{oops", 16),
      write_raw("bad_dtype", R"({"w": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}})", 8),
      write_raw("size_mismatch", R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8),
      write_raw("decreasing", R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}})", 8),
      write_raw("neg_shape", R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8),
  };
  { std::ofstream(dir / "tiny") << "abc"; }
  bad.push_back(dir / "tiny");
  for (const auto& p : bad) {
    auto f = SafetensorsFile::open(p);
    EXPECT_FALSE(f.ok()) << p;
    if (!f.ok()) EXPECT_NE(f.status().message().find(p.string()), std::string::npos) << f.status().message();
  }
  EXPECT_EQ(SafetensorsFile::open(dir / "missing").status().code(), StatusCode::kNotFound);
  fs::remove_all(dir);
}

TEST(Safetensors, ShardedIndex) {
  auto dir = temp_dir("shard");
  ASSERT_TRUE(write_safetensors(dir / "s1.safetensors", {entry("a", {2})}).ok());
  ASSERT_TRUE(write_safetensors(dir / "s2.safetensors", {entry("b", {3})}).ok());
  std::ofstream(dir / "model.safetensors.index.json") << R"({"metadata": {}, "weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})";
  auto ck = SafetensorsCheckpoint::open_dir(dir);
  ASSERT_TRUE(ck.ok()) << ck.status().to_string();
  EXPECT_EQ((*ck)->files().size(), 2u);
  EXPECT_EQ((*ck)->get("b").value()->shape, (std::vector<int64_t>{3}));
  EXPECT_NE((*ck)->file_of("b").find("s2.safetensors"), std::string::npos);
  auto missing = (*ck)->get("c");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("'c'"), std::string::npos);
  // An index pointing at a tensor its shard lacks.
  std::ofstream(dir / "model.safetensors.index.json") << R"({"weight_map": {"a": "s2.safetensors"}})";
  EXPECT_FALSE(SafetensorsCheckpoint::open_dir(dir).ok());
  fs::remove_all(dir);
}

// Model loading errors: a missing tensor and a wrong shape name the file and the tensor.
TEST(Safetensors, ModelLoadMissingTensorAndWrongShape) {
  auto dir = temp_dir("model");
  ModelWriterOptions o;
  o.dtype = DType::kF32;
  o.write_tokenizer = false;
  ASSERT_TRUE(write_preset_model("tiny", dir, 1, o).ok());
  auto config = ModelConfig::from_file(dir / "config.json").value();
  auto backend = make_cpu_backend(1).value();
  ModelLoadOptions lo;
  lo.max_num_batched_tokens = 64;
  lo.max_num_seqs = 4;
  lo.max_model_len = 128;
  ASSERT_TRUE(LlamaModel::load(dir, config, lo, *backend).ok());

  // Rewrite the file without one tensor.
  auto file = SafetensorsFile::open(dir / "model.safetensors").value();
  std::vector<SafetensorsWriteEntry> entries;
  for (const auto& [name, t] : file->tensors()) {
    SafetensorsWriteEntry e{name, t.dtype, t.shape, {}};
    e.bytes.assign(static_cast<const uint8_t*>(t.data), static_cast<const uint8_t*>(t.data) + t.nbytes);
    entries.push_back(std::move(e));
  }
  file.reset();
  auto without = entries;
  std::erase_if(without, [](auto& e) { return e.name == "model.layers.1.mlp.up_proj.weight"; });
  ASSERT_TRUE(write_safetensors(dir / "model.safetensors", without).ok());
  auto r = LlamaModel::load(dir, config, lo, *backend);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("model.layers.1.mlp.up_proj.weight"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("model.safetensors"), std::string::npos) << r.status().message();

  for (auto& e : entries) {
    if (e.name == "model.layers.0.self_attn.k_proj.weight") e = entry(e.name, {e.shape[0] + 1, e.shape[1]});
  }
  ASSERT_TRUE(write_safetensors(dir / "model.safetensors", entries).ok());
  r = LlamaModel::load(dir, config, lo, *backend);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("model.layers.0.self_attn.k_proj.weight"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("shape"), std::string::npos) << r.status().message();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tandem
