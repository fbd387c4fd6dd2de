// ModelRunner: see model_runner.h.
#include "engine/model_runner.h"

#include <algorithm>

namespace tandem {

ModelRunner::ModelRunner(Backend& backend, LlamaModel& model, const KvCacheView& kv, const ModelRunnerOptions& options)
    : backend_(backend), model_(model), kv_(kv), opt_(options) {}

Result<std::unique_ptr<ModelRunner>> ModelRunner::create(Backend& backend, LlamaModel& model, const KvCacheView& kv,
                                                         const ModelRunnerOptions& options) {
  if (options.max_num_seqs <= 0 || options.max_num_batched_tokens <= 0 || options.max_model_len <= 0) {
    return InvalidArgumentError("model runner sizes must be positive (seqs {}, tokens {}, model len {})",
                                options.max_num_seqs, options.max_num_batched_tokens, options.max_model_len);
  }
  std::unique_ptr<ModelRunner> r(new ModelRunner(backend, model, kv, options));
  TANDEM_RETURN_IF_ERROR(r->init());
  return r;
}

Status ModelRunner::init() {
  vocab_ = model_.config().vocab_size;
  const int bs = kv_.layout.block_size;
  max_blocks_per_seq_ = (opt_.max_model_len + bs - 1) / bs;
  const size_t T = opt_.max_num_batched_tokens, S = opt_.max_num_seqs;
  size_t off = 0;
  off_tokens_ = off, off += T;
  off_positions_ = off, off += T;
  off_slots_ = off, off += T;
  off_qstart_ = off, off += S + 1;
  off_ctx_ = off, off += S;
  off_sample_ = off, off += S;
  off_tables_ = off, off += S * static_cast<size_t>(max_blocks_per_seq_);
  host_.assign(off, 0);
  TANDEM_ASSIGN_OR_RETURN(meta_dev_, backend_.allocate(off * sizeof(int32_t)));
  TANDEM_ASSIGN_OR_RETURN(logits_dev_, backend_.allocate(S * static_cast<size_t>(vocab_) * sizeof(float)));
  device_bytes_ = meta_dev_.size() + logits_dev_.size();
  return Status::Ok();
}

Result<TensorView> ModelRunner::execute(std::span<const RunnerSeq> seqs, int num_decodes) {
  const int S = static_cast<int>(seqs.size());
  if (S > opt_.max_num_seqs) return InvalidArgumentError("batch of {} sequences exceeds {}", S, opt_.max_num_seqs);
  const int bs = kv_.layout.block_size;
  int32_t* tokens = host_.data() + off_tokens_;
  int32_t* positions = host_.data() + off_positions_;
  int32_t* slots = host_.data() + off_slots_;
  int32_t* qstart = host_.data() + off_qstart_;
  int32_t* ctx = host_.data() + off_ctx_;
  int32_t* sample = host_.data() + off_sample_;
  int32_t* tables = host_.data() + off_tables_;

  // Row stride of the block tables: the longest table in this batch.
  int stride = 1;
  for (const RunnerSeq& s : seqs) {
    int need = static_cast<int>((s.num_computed + s.num_new + bs - 1) / bs);
    if (need > max_blocks_per_seq_ || static_cast<size_t>(need) > s.block_table.size()) {
      return InvalidArgumentError("sequence of {} tokens has {} blocks (limit {})", s.num_computed + s.num_new,
                                  s.block_table.size(), max_blocks_per_seq_);
    }
    stride = std::max(stride, need);
  }

  int n = 0, num_sample = 0, max_q = 0, max_ctx = 0;
  qstart[0] = 0;
  for (int i = 0; i < S; ++i) {
    const RunnerSeq& s = seqs[i];
    if (n + s.num_new > opt_.max_num_batched_tokens) {
      return InvalidArgumentError("batch exceeds {} tokens", opt_.max_num_batched_tokens);
    }
    for (int32_t j = 0; j < s.num_new; ++j) {
      const int64_t pos = s.num_computed + j;
      tokens[n] = s.tokens[pos];
      positions[n] = static_cast<int32_t>(pos);
      slots[n] = s.block_table[pos / bs] * bs + static_cast<int32_t>(pos % bs);
      ++n;
    }
    qstart[i + 1] = n;
    ctx[i] = static_cast<int32_t>(s.num_computed + s.num_new);
    const int nb = (ctx[i] + bs - 1) / bs;
    std::copy_n(s.block_table.data(), nb, tables + static_cast<size_t>(i) * stride);
    std::fill(tables + static_cast<size_t>(i) * stride + nb, tables + static_cast<size_t>(i + 1) * stride, 0);
    if (s.samples) sample[num_sample++] = n - 1;
    max_q = std::max(max_q, static_cast<int>(s.num_new));
    max_ctx = std::max(max_ctx, ctx[i]);
  }

  // One copy of the whole metadata region up to the end of the tables used by this batch.
  const size_t used = off_tables_ + static_cast<size_t>(S) * stride;
  backend_.copy_to_device(meta_dev_.data(), host_.data(), used * sizeof(int32_t));
  int32_t* dev = static_cast<int32_t*>(meta_dev_.data());
  const Device d = backend_.device();

  ForwardBatch b;
  b.token_ids = TensorView(dev + off_tokens_, DType::kI32, d, {n});
  AttentionMetadata& md = b.attn;
  md.num_seqs = S;
  md.num_tokens = n;
  md.num_decode_seqs = num_decodes;
  md.max_query_len = max_q;
  md.max_context_len = max_ctx;
  md.max_blocks_per_seq = stride;
  md.positions = TensorView(dev + off_positions_, DType::kI32, d, {n});
  md.slot_mapping = TensorView(dev + off_slots_, DType::kI32, d, {n});
  md.query_start = TensorView(dev + off_qstart_, DType::kI32, d, {S + 1});
  md.context_lens = TensorView(dev + off_ctx_, DType::kI32, d, {S});
  md.block_tables = TensorView(dev + off_tables_, DType::kI32, d, {S, stride});
  md.h_positions = positions;
  md.h_slot_mapping = slots;
  md.h_query_start = qstart;
  md.h_context_lens = ctx;
  md.h_block_tables = tables;
  b.sample_rows = TensorView(dev + off_sample_, DType::kI32, d, {num_sample});
  b.num_sample = num_sample;

  TensorView logits(logits_dev_.data(), DType::kF32, d, {std::max(num_sample, 1), vocab_});
  model_.forward(b, kv_, logits);
  return logits.rows(0, num_sample);
}

}  // namespace tandem
