// BPE model (see bpe_model.h): loading, initial symbols (tokenizers' BPE::merge_word) and merging.
#include "tokenizer/bpe_model.h"

#include <xxhash.h>

#include <algorithm>
#include <climits>
#include <queue>

#include "tokenizer/utf8.h"

namespace tandem {

const std::array<uint32_t, 256>& BpeModel::byte_to_unicode() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[b] = printable ? b : next++;
    }
    return t;
  }();
  return table;
}

bool BpeModel::byte_level_to_bytes(std::string_view token, std::string* out) {
  static const std::array<int16_t, 512> unicode_to_byte = [] {
    std::array<int16_t, 512> t;
    t.fill(-1);
    const auto& b2u = byte_to_unicode();
    for (int b = 0; b < 256; ++b) t[b2u[b]] = static_cast<int16_t>(b);
    return t;
  }();
  out->clear();
  out->reserve(token.size());
  for (size_t i = 0; i < token.size();) {
    uint32_t cp;
    size_t len = utf8::decode_char(token, i, &cp);
    if (len == 0 || cp >= 512 || unicode_to_byte[cp] < 0) return false;
    out->push_back(static_cast<char>(unicode_to_byte[cp]));
    i += len;
  }
  return true;
}

Result<std::unique_ptr<BpeModel>> BpeModel::from_json(const nlohmann::json& j, bool byte_level) {
  if (!j.is_object()) return InvalidArgumentError("tokenizer.json: model must be an object");
  std::string type = j.value("type", std::string("BPE"));
  if (type != "BPE") {
    return InvalidArgumentError("tokenizer.json: model.type '{}' is not supported (only BPE)", type);
  }
  std::unique_ptr<BpeModel> m(new BpeModel());
  m->byte_level_ = byte_level;
  auto get_bool = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_boolean() && it->get<bool>();
  };
  m->ignore_merges_ = get_bool("ignore_merges");
  m->byte_fallback_ = get_bool("byte_fallback");
  m->fuse_unk_ = get_bool("fuse_unk");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto it = j.find(key);
    if (it != j.end() && !it->is_null() && !(it->is_string() && it->get<std::string>().empty())) {
      return InvalidArgumentError("tokenizer.json: model.{} is not supported (must be null)", key);
    }
  }
  auto dropout = j.find("dropout");
  if (dropout != j.end() && dropout->is_number() && dropout->get<double>() > 0.0) {
    return InvalidArgumentError("tokenizer.json: model.dropout must be null or 0 for inference");
  }

  auto vocab = j.find("vocab");
  if (vocab == j.end() || !vocab->is_object()) {
    return InvalidArgumentError("tokenizer.json: model.vocab must be an object of token -> id");
  }
  int64_t max_id = -1;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > INT32_MAX / 2) {
      return InvalidArgumentError("tokenizer.json: model.vocab['{}'] must be a non-negative integer id",
                                  it.key());
    }
    max_id = std::max(max_id, it.value().get<int64_t>());
  }
  m->id_to_token_.resize(static_cast<size_t>(max_id + 1));
  m->id_present_.assign(static_cast<size_t>(max_id + 1), false);
  const auto& b2u = byte_to_unicode();
  std::string raw;
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    int32_t id = static_cast<int32_t>(it.value().get<int64_t>());
    const std::string& tok = it.key();
    m->token_to_id_.insert(tok, id);
    m->id_to_token_[id] = tok;
    m->id_present_[id] = true;
    if (byte_level) {
      if (byte_level_to_bytes(tok, &raw)) m->word_to_id_.insert(raw, id);
    } else {
      m->word_to_id_.insert(tok, id);
    }
  }
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    utf8::append_char(ch, b2u[b]);
    m->byte_id_[b] = m->token_to_id_.find(ch);
    m->fallback_id_[b] = m->token_to_id_.find(fmt::format("<0x{:02X}>", b));
  }
  auto unk = j.find("unk_token");
  if (unk != j.end() && unk->is_string()) m->unk_id_ = m->token_to_id_.find(unk->get<std::string>());

  auto merges = j.find("merges");
  if (merges != j.end() && !merges->is_null()) {
    if (!merges->is_array()) return InvalidArgumentError("tokenizer.json: model.merges must be an array");
    std::string a, b;
    for (size_t i = 0; i < merges->size(); ++i) {
      const auto& mj = (*merges)[i];
      if (mj.is_string()) {
        const std::string& s = mj.get_ref<const std::string&>();
        size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
          return InvalidArgumentError("tokenizer.json: model.merges[{}] '{}' must be two tokens separated by one space",
                                      i, s);
        }
        a.assign(s, 0, sp);
        b.assign(s, sp + 1);
      } else if (mj.is_array() && mj.size() == 2 && mj[0].is_string() && mj[1].is_string()) {
        a = mj[0].get<std::string>();
        b = mj[1].get<std::string>();
      } else {
        return InvalidArgumentError("tokenizer.json: model.merges[{}] must be \"a b\" or [\"a\", \"b\"]", i);
      }
      int32_t ia = m->token_to_id_.find(a), ib = m->token_to_id_.find(b);
      int32_t im = m->token_to_id_.find(a + b);
      if (ia < 0 || ib < 0 || im < 0) {
        return InvalidArgumentError("tokenizer.json: model.merges[{}] ('{}' '{}'): token '{}' is not in model.vocab",
                                    i, a, b, ia < 0 ? a : ib < 0 ? b : a + b);
      }
      m->merges_.insert(ia, ib, static_cast<int32_t>(i), im);
    }
  }
  m->cache_.reset(new CacheShard[kCacheShards]);
  return m;
}

bool BpeModel::id_to_token(int32_t id, std::string_view* token) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size() || !id_present_[id]) return false;
  *token = id_to_token_[id];
  return true;
}

void BpeModel::initial_symbols(std::string_view word, std::vector<int32_t>& ids) const {
  // (unk id, pending) as in tokenizers' merge_word; lengths are irrelevant for ids.
  bool unk_pending = false;
  auto flush_unk = [&] {
    if (unk_pending) ids.push_back(unk_id_);
    unk_pending = false;
  };
  const auto& b2u = byte_to_unicode();
  size_t i = 0;
  while (i < word.size()) {
    int32_t id;
    std::string_view ch_bytes;  // what byte_fallback spells
    std::string mapped;
    if (byte_level_) {
      unsigned char b = static_cast<unsigned char>(word[i]);
      id = byte_id_[b];
      if (id < 0) {
        utf8::append_char(mapped, b2u[b]);
        ch_bytes = mapped;
      }
      ++i;
    } else {
      size_t len = utf8::sequence_length(static_cast<unsigned char>(word[i]));
      len = std::min(len, word.size() - i);
      ch_bytes = word.substr(i, len);
      id = token_to_id_.find(ch_bytes);
      i += len;
    }
    if (id >= 0) {
      flush_unk();
      ids.push_back(id);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char c : ch_bytes) all = all && fallback_id_[c] >= 0;
      if (all) {
        for (unsigned char c : ch_bytes) ids.push_back(fallback_id_[c]);
        continue;
      }
    }
    if (unk_id_ >= 0) {
      if (unk_pending && !fuse_unk_) ids.push_back(unk_id_);
      unk_pending = true;
    }
  }
  flush_unk();
}

void BpeModel::bpe(std::string_view word, std::vector<int32_t>& out) const {
  std::vector<int32_t> sym;
  sym.reserve(word.size());
  initial_symbols(word, sym);
  const size_t n = sym.size();
  if (n <= 1) {
    out.insert(out.end(), sym.begin(), sym.end());
    return;
  }
  if (n <= 48) {
    // Small words: rank array, repeated leftmost-minimum scan.
    int32_t ranks[48];
    const PairRankMap::Entry* ents[48];
    size_t len = n;
    auto set = [&](size_t k) {
      const PairRankMap::Entry* e = merges_.find(sym[k], sym[k + 1]);
      ents[k] = e;
      ranks[k] = e ? e->rank : INT_MAX;
    };
    for (size_t k = 0; k + 1 < len; ++k) set(k);
    while (len > 1) {
      size_t best = 0;
      int32_t best_rank = INT_MAX;
      for (size_t k = 0; k + 1 < len; ++k) {
        if (ranks[k] < best_rank) {
          best_rank = ranks[k];
          best = k;
        }
      }
      if (best_rank == INT_MAX) break;
      sym[best] = ents[best]->merged_id;
      for (size_t k = best + 1; k + 1 < len; ++k) {
        sym[k] = sym[k + 1];
        ranks[k] = ranks[k + 1];
        ents[k] = ents[k + 1];
      }
      --len;
      if (best + 1 < len) set(best);
      if (best > 0) set(best - 1);
    }
    out.insert(out.end(), sym.begin(), sym.begin() + static_cast<ptrdiff_t>(len));
    return;
  }
  // Long words: linked list + min-heap of (rank, position), stale entries skipped.
  std::vector<int32_t> prev(n), next(n);
  for (size_t k = 0; k < n; ++k) {
    prev[k] = static_cast<int32_t>(k) - 1;
    next[k] = k + 1 < n ? static_cast<int32_t>(k + 1) : -1;
  }
  struct Cand {
    int32_t rank, pos, left, right;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int32_t p) {
    if (p < 0 || next[p] < 0) return;
    const PairRankMap::Entry* e = merges_.find(sym[p], sym[next[p]]);
    if (e) heap.push({e->rank, p, sym[p], sym[next[p]]});
  };
  for (size_t k = 0; k + 1 < n; ++k) push(static_cast<int32_t>(k));
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    int32_t p = c.pos;
    if (sym[p] < 0 || next[p] < 0 || sym[p] != c.left || sym[next[p]] != c.right) continue;
    int32_t q = next[p];
    sym[p] = merges_.find(c.left, c.right)->merged_id;
    sym[q] = -1;
    next[p] = next[q];
    if (next[q] >= 0) prev[next[q]] = p;
    push(prev[p]);
    push(p);
  }
  for (size_t k = 0; k < n; ++k)
    if (sym[k] >= 0) out.push_back(sym[k]);
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    int32_t id = word_to_id_.find(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  if (word.size() < 4) {  // cheaper to merge than to hash and lock
    bpe(word, out);
    return;
  }
  uint64_t h = XXH3_64bits(word.data(), word.size());
  CacheShard& shard = cache_[h % kCacheShards];
  {
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.map.find(h);
    if (it != shard.map.end() && it->second.first == word) {
      out.insert(out.end(), it->second.second.begin(), it->second.second.end());
      return;
    }
  }
  size_t before = out.size();
  bpe(word, out);
  if (word.size() > 256) return;  // do not let huge words fill the cache
  std::lock_guard<std::mutex> lock(shard.mu);
  if (shard.map.size() < kCacheEntriesPerShard) {
    shard.map.emplace(h, std::make_pair(std::string(word),
                                        std::vector<int32_t>(out.begin() + static_cast<ptrdiff_t>(before), out.end())));
  }
}

}  // namespace tandem
