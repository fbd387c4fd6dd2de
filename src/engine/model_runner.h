// ModelRunner: builds a ForwardBatch from the scheduled sequences into persistent host and device
// buffers (sized once at creation, so a step allocates nothing) and runs the model's forward.
// Sequences come decodes first; each contributes tokens [num_computed, num_computed + num_new) and,
// when it samples, one logits row (its last token), in order.
//
// CUDA graphs (backend.supports_graphs() and use_graphs): a decode-only batch of S sequences is padded
// to a bucket B >= S (1, 2, 4, 8, 16, 24, 32, ... up to the graph limit) and runs as the replay of a
// graph captured once per bucket (lazily, on first use). The graph reads its inputs from the same
// device metadata buffer (fixed addresses, fixed block-table stride max_blocks_per_seq) that eager
// steps use. Padding rows are harmless: token 0 at position 0, slot -1 (no KV write), context 1 over
// block 0 (a read only), and their logits rows are never returned. prepare_attention() runs outside the
// capture (the backend's decode plan depends on the batch shape only, so replays stay valid as
// contexts grow).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "backend/buffer.h"
#include "common/status.h"
#include "model/llama_model.h"

namespace tandem {

struct RunnerSeq {
  std::span<const int32_t> tokens;  // all tokens of the sequence known on the host
  int64_t num_computed = 0;         // tokens already in the cache
  int32_t num_new = 0;              // tokens computed by this forward
  std::span<const int32_t> block_table;
  bool samples = false;
  // >= 0: the sequence's next token (position tokens.size(), a decode's input) is not on the host yet;
  // it is row `pending_input_row` of sampled_ids() as the previous step left it on the device.
  int32_t pending_input_row = -1;
};

struct ModelRunnerOptions {
  int max_num_seqs = 256;
  int max_num_batched_tokens = 8192;
  int max_model_len = 8192;
  bool use_graphs = true;     // CUDA graphs for decode-only batches where the backend supports them
  int max_graph_batch = 256;  // largest bucket captured (further capped by max_num_seqs)
};

class ModelRunner {
 public:
  static Result<std::unique_ptr<ModelRunner>> create(Backend& backend, LlamaModel& model, const KvCacheView& kv,
                                                     const ModelRunnerOptions& options);

  // Builds the batch (copies its metadata to the device) and runs the forward. Returns the logits of
  // the sampling sequences, fp32 [num_sample, vocab] on the device (valid until the next call).
  // Errors: the batch exceeds the sizes given at creation.
  Result<TensorView> execute(std::span<const RunnerSeq> seqs, int num_decodes);

  // Where the engine's overlapped loop samples a step's ids (i32 [rows] on the device); the next
  // execute() reads pending inputs from here before anything overwrites it.
  TensorView sampled_ids(int rows) const;

  // Runs a full-budget prefill once and captures the graph of every decode bucket, so the first requests
  // pay neither lazy kernel loading and library set-up nor graph capture (vLLM warms up likewise). Writes
  // garbage K/V into the pool's first blocks: call before any request owns blocks.
  Status warm_up(int64_t num_kv_blocks);
  // Number of graphs captured so far (0 when graphs are off).
  int num_graphs() const;
  // Benchmarks: runs the previous step's graph again on the same inputs (pure device time of a decode
  // step, no host work). Error when the previous step was not a graph replay.
  Status replay_last_graph();
  // Device bytes create() allocates for these options (the engine's memory plan charges them).
  static size_t device_bytes(const ModelRunnerOptions& options, int block_size, int vocab_size);

 private:
  ModelRunner(Backend& backend, LlamaModel& model, const KvCacheView& kv, const ModelRunnerOptions& options);
  Status init();
  // Fills the next host slot for `seqs` padded with harmless decode rows up to `padded_seqs` (== seqs.size() when
  // eager), using block-table row stride `stride`, copies it to the device and fills `b`. `graph`: every
  // row gets a logits row (fixed shape). num_sample: the real sampled rows.
  Status build_batch(std::span<const RunnerSeq> seqs, int num_decodes, bool graph, int padded_seqs, int stride,
                     ForwardBatch& b, int& num_sample);
  // Smallest graph bucket >= num_seqs, or 0 when none.
  int graph_bucket(int num_seqs) const;

  Backend& backend_;
  LlamaModel& model_;
  KvCacheView kv_;
  ModelRunnerOptions opt_;
  int vocab_ = 0;
  int max_blocks_per_seq_ = 0;

  // Host staging (pinned where the backend has it), one contiguous i32 array so the metadata goes to the
  // device in one copy. Two slots, used in turn: a step's copy may still be queued behind the previous
  // step when the next batch is built; a slot is rewritten only after its marker (recorded after its
  // copy) has been passed.
  Buffer host_slots_[2];
  std::unique_ptr<DeviceMarker> host_slot_copied_[2];
  int host_slot_ = 0;  // the slot the last batch was built in
  Buffer meta_dev_;   // same layout as a host slot
  Buffer sampled_dev_;  // i32 [max_num_seqs]
  Buffer logits_dev_;  // fp32 [max_num_seqs, vocab]
  // Offsets (in i32 elements) of each array inside a host slot / meta_dev_; total is the region's length.
  struct MetadataLayout {
    size_t tokens, positions, slots, qstart, ctx, sample, pending_src, pending_dst, tables, total;
  };
  static MetadataLayout metadata_layout(const ModelRunnerOptions& o, int max_blocks_per_seq);
  MetadataLayout off_{};

  // Graph buckets (ascending) and the graph id captured for each (-1: not yet).
  bool graphs_enabled_ = false;
  std::vector<int> buckets_;
  std::vector<int> bucket_graph_;
  int last_graph_ = -1;  // graph of the previous step, -1 when it ran eagerly
};

}  // namespace tandem
