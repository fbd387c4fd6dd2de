// Test helpers: a KV pool with a trivial block allocator and a function that runs one forward over a
// mixed batch (each entry: a sequence and its new tokens), returning logits of the requested rows.
#pragma once

#include <gtest/gtest.h>

#include <vector>

#include "backend/backend.h"
#include "model/llama_model.h"

namespace tandem::testing_util {

struct TestKv {
  Buffer buffer;
  KvCacheView view;
  int64_t next_block = 0;

  TestKv(Backend& backend, const ModelConfig& c, int64_t num_blocks, int block_size = 4) {
    view.layout = KvLayout{c.num_layers, c.num_kv_heads, c.head_dim, block_size, backend.compute_dtype()};
    view.num_blocks = num_blocks;
    view.device = backend.device();
    auto b = backend.allocate(view.layout.block_bytes() * num_blocks);
    TANDEM_CHECK(b.ok());
    buffer = std::move(b).value();
    view.base = buffer.data();
  }
};

struct TestSeq {
  std::vector<int32_t> blocks;
  int len = 0;  // tokens in the cache
};

struct StepEntry {
  TestSeq* seq;
  std::vector<int32_t> tokens;
  bool all_logits = false;  // logits for every new token, else only the last
};

// Runs one forward; returns, per entry, the logits rows (one per token when all_logits, else one).
inline std::vector<std::vector<std::vector<float>>> run_step(LlamaModel& model, Backend& backend, TestKv& kv,
                                                             std::vector<StepEntry> entries) {
  const int bs = kv.view.layout.block_size;
  std::vector<int32_t> ids, positions, slots, qstart = {0}, ctx, sample_rows;
  int max_blocks = 0, num_decode = 0;
  bool decode_prefix = true;
  for (auto& e : entries) {
    TestSeq& s = *e.seq;
    for (size_t i = 0; i < e.tokens.size(); ++i) {
      int p = s.len + static_cast<int>(i);
      while (static_cast<int>(s.blocks.size()) * bs <= p) {
        TANDEM_CHECK(kv.next_block < kv.view.num_blocks, "test KV pool exhausted");
        s.blocks.push_back(static_cast<int32_t>(kv.next_block++));
      }
      ids.push_back(e.tokens[i]);
      positions.push_back(p);
      slots.push_back(s.blocks[p / bs] * bs + p % bs);
      if (e.all_logits || i + 1 == e.tokens.size()) sample_rows.push_back(static_cast<int32_t>(ids.size() - 1));
    }
    s.len += static_cast<int>(e.tokens.size());
    qstart.push_back(static_cast<int32_t>(ids.size()));
    ctx.push_back(s.len);
    max_blocks = std::max(max_blocks, static_cast<int>(s.blocks.size()));
    if (decode_prefix && e.tokens.size() == 1) {
      ++num_decode;
    } else {
      decode_prefix = false;
    }
  }
  std::vector<int32_t> tables(entries.size() * max_blocks, 0);
  for (size_t s = 0; s < entries.size(); ++s) {
    std::copy(entries[s].seq->blocks.begin(), entries[s].seq->blocks.end(), tables.begin() + s * max_blocks);
  }
  const int n = static_cast<int>(ids.size()), ns = static_cast<int>(entries.size()), m = static_cast<int>(sample_rows.size());
  auto iv = [](std::vector<int32_t>& v, std::initializer_list<int64_t> shape) {
    return TensorView(v.data(), DType::kI32, Device::kCpu, shape);
  };
  TANDEM_CHECK(backend.device() == Device::kCpu, "test helper runs on the CPU backend");
  ForwardBatch batch;
  batch.token_ids = iv(ids, {n});
  AttentionMetadata& md = batch.attn;
  md.num_seqs = ns;
  md.num_tokens = n;
  md.num_decode_seqs = num_decode;
  md.max_blocks_per_seq = max_blocks;
  md.positions = iv(positions, {n});
  md.slot_mapping = iv(slots, {n});
  md.query_start = iv(qstart, {ns + 1});
  md.context_lens = iv(ctx, {ns});
  md.block_tables = iv(tables, {ns, max_blocks});
  md.h_positions = positions.data();
  md.h_slot_mapping = slots.data();
  md.h_query_start = qstart.data();
  md.h_context_lens = ctx.data();
  md.h_block_tables = tables.data();
  batch.sample_rows = iv(sample_rows, {m});
  batch.num_sample = m;
  const int v = model.config().vocab_size;
  std::vector<float> logits(static_cast<size_t>(m) * v);
  model.forward(batch, kv.view, TensorView(logits.data(), DType::kF32, Device::kCpu, {m, v}));
  std::vector<std::vector<std::vector<float>>> out(entries.size());
  int row = 0;
  for (size_t s = 0; s < entries.size(); ++s) {
    size_t rows = entries[s].all_logits ? entries[s].tokens.size() : 1;
    for (size_t r = 0; r < rows; ++r, ++row) out[s].emplace_back(logits.begin() + row * v, logits.begin() + (row + 1) * v);
  }
  return out;
}

}  // namespace tandem::testing_util
