// Shared helpers for tokenizer tests: fixture locations and vector loading.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tandem::testing {

inline std::filesystem::path tokenizer_fixtures() {
  return std::filesystem::path(TANDEM_SOURCE_DIR) / "tests" / "fixtures" / "tokenizer";
}

// The Llama 3 tokenizer is read from the shared model directory (never copied into the repo).
inline std::filesystem::path llama3_dir() {
  return std::filesystem::path(TANDEM_SOURCE_DIR) / ".." / "shared" / "models" / "llama-3.1-8b";
}

inline std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

inline const std::vector<std::string>& built_tokenizers() {
  static const std::vector<std::string> names = {"bytelevel_bpe", "sp_bpe", "sp_bpe_legacy", "sp_metaspace_split",
                                                "bytelevel_nfc", "bytelevel_nfd", "sp_nfkc", "sp_nfkd"};
  return names;
}

}  // namespace tandem::testing
