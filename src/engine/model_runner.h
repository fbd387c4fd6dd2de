// ModelRunner: builds a ForwardBatch from the scheduled sequences into persistent host and device
// buffers (sized once at creation, so a step allocates nothing) and runs the model's forward.
// Sequences come decodes first; each contributes tokens [num_computed, num_computed + num_new) and,
// when it samples, one logits row (its last token), in order.
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
  std::span<const int32_t> tokens;  // all known tokens of the sequence
  int64_t num_computed = 0;         // tokens already in the cache
  int32_t num_new = 0;              // tokens computed by this forward
  std::span<const int32_t> block_table;
  bool samples = false;
};

struct ModelRunnerOptions {
  int max_num_seqs = 256;
  int max_num_batched_tokens = 8192;
  int max_model_len = 8192;
};

class ModelRunner {
 public:
  static Result<std::unique_ptr<ModelRunner>> create(Backend& backend, LlamaModel& model, const KvCacheView& kv,
                                                     const ModelRunnerOptions& options);

  // Builds the batch (copies its metadata to the device) and runs the forward. Returns the logits of
  // the sampling sequences, fp32 [num_sample, vocab] on the device (valid until the next call).
  // Errors: the batch exceeds the sizes given at creation.
  Result<TensorView> execute(std::span<const RunnerSeq> seqs, int num_decodes);

  int vocab_size() const { return vocab_; }
  size_t buffer_bytes() const { return device_bytes_; }

 private:
  ModelRunner(Backend& backend, LlamaModel& model, const KvCacheView& kv, const ModelRunnerOptions& options);
  Status init();

  Backend& backend_;
  LlamaModel& model_;
  KvCacheView kv_;
  ModelRunnerOptions opt_;
  int vocab_ = 0;
  int max_blocks_per_seq_ = 0;
  size_t device_bytes_ = 0;

  // Host staging, one contiguous i32 array so the metadata goes to the device in one copy.
  std::vector<int32_t> host_;
  Buffer meta_dev_;   // same layout as host_
  Buffer logits_dev_;  // fp32 [max_num_seqs, vocab]
  // Offsets (in i32 elements) of each array inside host_ / meta_dev_.
  size_t off_tokens_ = 0, off_positions_ = 0, off_slots_ = 0, off_qstart_ = 0, off_ctx_ = 0, off_sample_ = 0,
         off_tables_ = 0;
};

}  // namespace tandem
