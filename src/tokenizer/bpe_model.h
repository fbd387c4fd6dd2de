// BpeModel: the tokenizer.json "model" of type BPE. Merges are applied by rank on a linked list of
// symbols (lowest rank first, leftmost on ties: the order tokenizers' Word::merge_all produces), with
// ignore_merges, byte_fallback ("<0xXX>" tokens), unk_token and fuse_unk. In byte-level mode the
// vocabulary is re-keyed by raw bytes (each GPT-2 alphabet character mapped back to its byte), so words
// are never converted to the alphabet on the encode path. A bounded, sharded cache memoizes words.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "tokenizer/string_id_map.h"

namespace tandem {

class BpeModel {
 public:
  // `json` is the "model" object; byte_level: words arrive as raw bytes (pre-tokenizer ends with
  // ByteLevel).
  static Result<std::unique_ptr<BpeModel>> from_json(const nlohmann::json& json, bool byte_level);

  // Appends the ids of one word.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  int32_t vocab_size() const { return static_cast<int32_t>(id_to_token_.size()); }  // max id + 1
  // Token string as written in tokenizer.json ("" and false for holes in the id space).
  bool id_to_token(int32_t id, std::string_view* token) const;
  int32_t token_to_id(std::string_view token) const { return token_to_id_.find(token); }
  const PairRankMap& merges() const { return merges_; }

  // GPT-2 byte <-> alphabet mapping.
  static const std::array<uint32_t, 256>& byte_to_unicode();
  // Maps a byte-level token (GPT-2 alphabet) back to its raw bytes into *out (cleared first); false when
  // the token holds invalid UTF-8 or a character outside the alphabet (*out is then unspecified).
  static bool byte_level_to_bytes(std::string_view token, std::string* out);

 private:
  struct CacheShard {
    std::mutex mu;
    std::unordered_map<uint64_t, std::pair<std::string, std::vector<int32_t>>> map;
  };
  static constexpr size_t kCacheShards = 16;
  static constexpr size_t kCacheEntriesPerShard = 4096;

  void bpe(std::string_view word, std::vector<int32_t>& out) const;
  void initial_symbols(std::string_view word, std::vector<int32_t>& ids) const;

  bool byte_level_ = false;
  bool ignore_merges_ = false;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  int32_t unk_id_ = -1;
  StringIdMap token_to_id_;  // tokenizer.json spelling
  StringIdMap word_to_id_;   // raw bytes in byte-level mode, else the same as token_to_id_
  std::vector<std::string> id_to_token_;
  std::vector<bool> id_present_;
  std::array<int32_t, 256> byte_id_{};      // byte-level: id of each byte's alphabet character
  std::array<int32_t, 256> fallback_id_{};  // "<0xXX>" ids, -1 when absent
  PairRankMap merges_;
  mutable std::unique_ptr<CacheShard[]> cache_;
};

}  // namespace tandem
