// ModelRunner: see model_runner.h.
#include "engine/model_runner.h"

#include <algorithm>

#include "common/logging.h"

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

ModelRunner::MetadataLayout ModelRunner::metadata_layout(const ModelRunnerOptions& o, int max_blocks_per_seq) {
  const size_t T = o.max_num_batched_tokens, S = o.max_num_seqs;
  MetadataLayout m{};
  size_t off = 0;
  m.tokens = off, off += T;
  m.positions = off, off += T;
  m.slots = off, off += T;
  m.qstart = off, off += S + 1;
  m.ctx = off, off += S;
  m.sample = off, off += S;
  m.pending_src = off, off += S;
  m.pending_dst = off, off += S;
  m.tables = off, off += S * static_cast<size_t>(max_blocks_per_seq);
  m.total = off;
  return m;
}

size_t ModelRunner::device_bytes(const ModelRunnerOptions& o, int block_size, int vocab_size) {
  const size_t S = o.max_num_seqs;
  const int max_blocks = (o.max_model_len + block_size - 1) / block_size;
  return sizeof(int32_t) * metadata_layout(o, max_blocks).total + S * static_cast<size_t>(vocab_size) * sizeof(float) +
         S * sizeof(int32_t);
}

Status ModelRunner::init() {
  vocab_ = model_.config().vocab_size;
  const int bs = kv_.layout.block_size;
  max_blocks_per_seq_ = (opt_.max_model_len + bs - 1) / bs;
  const size_t S = opt_.max_num_seqs;
  off_ = metadata_layout(opt_, max_blocks_per_seq_);
  const size_t off = off_.total;
  for (int i = 0; i < 2; ++i) {
    TANDEM_ASSIGN_OR_RETURN(host_slots_[i], backend_.allocate_host(off * sizeof(int32_t)));
    std::fill_n(static_cast<int32_t*>(host_slots_[i].data()), off, 0);
    TANDEM_ASSIGN_OR_RETURN(host_slot_copied_[i], backend_.create_marker());
  }
  TANDEM_ASSIGN_OR_RETURN(meta_dev_, backend_.allocate(off * sizeof(int32_t)));
  TANDEM_ASSIGN_OR_RETURN(logits_dev_, backend_.allocate(S * static_cast<size_t>(vocab_) * sizeof(float)));
  TANDEM_ASSIGN_OR_RETURN(sampled_dev_, backend_.allocate(S * sizeof(int32_t)));

  // Graph buckets: 1, 2, 4, 8, then every 8, up to min(max_num_seqs, max_num_batched_tokens, limit).
  graphs_enabled_ = opt_.use_graphs && backend_.supports_graphs();
  if (graphs_enabled_) {
    const int limit = std::min({opt_.max_num_seqs, opt_.max_num_batched_tokens, opt_.max_graph_batch});
    for (int b = 1; b <= limit; b = b < 8 ? 2 * b : b + 8) buckets_.push_back(b);
    if (!buckets_.empty() && buckets_.back() < limit) buckets_.push_back(limit);
    bucket_graph_.assign(buckets_.size(), -1);
    graphs_enabled_ = !buckets_.empty();
  }
  return Status::Ok();
}

TensorView ModelRunner::sampled_ids(int rows) const {
  TANDEM_CHECK(rows >= 0 && rows <= opt_.max_num_seqs, "sampled_ids: {} rows of {}", rows, opt_.max_num_seqs);
  return TensorView(sampled_dev_.data(), DType::kI32, backend_.device(), {rows});
}

Status ModelRunner::warm_up(int64_t num_kv_blocks) {
  const int bs = kv_.layout.block_size;
  const int64_t tokens = std::min<int64_t>({opt_.max_num_batched_tokens, opt_.max_model_len,
                                             num_kv_blocks * bs, static_cast<int64_t>(max_blocks_per_seq_) * bs});
  if (tokens <= 0) return Status::Ok();
  std::vector<int32_t> ids(static_cast<size_t>(tokens), 0);
  std::vector<int32_t> table(static_cast<size_t>((tokens + bs - 1) / bs));
  for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<int32_t>(i);
  const RunnerSeq prefill{ids, 0, static_cast<int32_t>(tokens), table, true};
  TANDEM_ASSIGN_OR_RETURN(TensorView logits, execute({&prefill, 1}, 0));
  std::vector<SamplingRow> rows(1);
  rows[0].temperature = 0.0f;
  int32_t token = 0;
  backend_.sample(logits, rows, {&token, 1});
  // One decode batch per graph bucket: one-token sequences over block 0.
  const std::vector<int32_t> one(1, 0), block0(1, 0);
  for (int bucket : buckets_) {
    if (!graphs_enabled_) break;
    std::vector<RunnerSeq> seqs(static_cast<size_t>(bucket), RunnerSeq{one, 0, 1, block0, true});
    TANDEM_ASSIGN_OR_RETURN(TensorView l, execute(seqs, bucket));
    (void)l;
  }
  backend_.synchronize();
  return Status::Ok();
}

int ModelRunner::num_graphs() const {
  return static_cast<int>(std::count_if(bucket_graph_.begin(), bucket_graph_.end(), [](int g) { return g >= 0; }));
}

Status ModelRunner::replay_last_graph() {
  if (last_graph_ < 0) return FailedPreconditionError("the previous step did not run as a CUDA graph");
  return backend_.replay_graph(last_graph_);
}

int ModelRunner::graph_bucket(int num_seqs) const {
  auto it = std::lower_bound(buckets_.begin(), buckets_.end(), num_seqs);
  return it == buckets_.end() ? 0 : *it;
}

Status ModelRunner::build_batch(std::span<const RunnerSeq> seqs, int num_decodes, bool graph, int padded_seqs,
                                int stride, ForwardBatch& b, int& num_sample_out) {
  const int S = static_cast<int>(seqs.size());
  const int bs = kv_.layout.block_size;
  // The slot filled two steps ago: its copy to the device must have run before it is rewritten.
  host_slot_ ^= 1;
  TANDEM_RETURN_IF_ERROR(host_slot_copied_[host_slot_]->wait(std::chrono::seconds(120)));
  int32_t* const host = static_cast<int32_t*>(host_slots_[host_slot_].data());
  int32_t* tokens = host + off_.tokens;
  int32_t* positions = host + off_.positions;
  int32_t* slots = host + off_.slots;
  int32_t* qstart = host + off_.qstart;
  int32_t* ctx = host + off_.ctx;
  int32_t* sample = host + off_.sample;
  int32_t* pending_src = host + off_.pending_src;
  int32_t* pending_dst = host + off_.pending_dst;
  int32_t* tables = host + off_.tables;

  int n = 0, num_sample = 0, num_pending = 0;
  qstart[0] = 0;
  for (int i = 0; i < S; ++i) {
    const RunnerSeq& s = seqs[i];
    if (n + s.num_new > opt_.max_num_batched_tokens) {
      return InvalidArgumentError("batch exceeds {} tokens", opt_.max_num_batched_tokens);
    }
    for (int32_t j = 0; j < s.num_new; ++j) {
      const int64_t pos = s.num_computed + j;
      if (pos < static_cast<int64_t>(s.tokens.size())) {
        tokens[n] = s.tokens[pos];
      } else {
        // The one token not yet on the host: filled on the device from the previous step's samples.
        if (pos != static_cast<int64_t>(s.tokens.size()) || s.pending_input_row < 0 ||
            s.pending_input_row >= opt_.max_num_seqs) {
          return InvalidArgumentError("sequence {}: token {} is neither known ({} known) nor pending (row {})", i, pos,
                                      s.tokens.size(), s.pending_input_row);
        }
        tokens[n] = 0;
        pending_src[num_pending] = s.pending_input_row;
        pending_dst[num_pending] = n;
        ++num_pending;
      }
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
  }
  // Graph padding: one-token decodes at position 0 that write no KV (slot -1) and read block 0 only.
  const int real_sample = num_sample;
  for (int i = S; i < padded_seqs; ++i) {
    tokens[n] = 0;
    positions[n] = 0;
    slots[n] = -1;
    ++n;
    qstart[i + 1] = n;
    ctx[i] = 1;
    std::fill(tables + static_cast<size_t>(i) * stride, tables + static_cast<size_t>(i + 1) * stride, 0);
  }
  // A graph always computes logits for every row (its shape is fixed): rows past the real samples
  // point at row i and are never returned.
  if (graph) {
    for (int i = num_sample; i < padded_seqs; ++i) sample[i] = i;
  }
  const int total_seqs = padded_seqs;
  const int graph_sample = graph ? padded_seqs : num_sample;

  // One copy of the whole metadata region up to the end of the tables used by this batch.
  const size_t used = off_.tables + static_cast<size_t>(total_seqs) * stride;
  backend_.copy_to_device(meta_dev_.data(), host, used * sizeof(int32_t));
  host_slot_copied_[host_slot_]->record();
  int32_t* dev = static_cast<int32_t*>(meta_dev_.data());
  const Device d = backend_.device();
  if (num_pending > 0) {
    backend_.scatter_ids(sampled_ids(opt_.max_num_seqs), TensorView(dev + off_.pending_src, DType::kI32, d, {num_pending}),
                         TensorView(dev + off_.pending_dst, DType::kI32, d, {num_pending}),
                         TensorView(dev + off_.tokens, DType::kI32, d, {n}));
  }

  b.token_ids = TensorView(dev + off_.tokens, DType::kI32, d, {n});
  AttentionMetadata& md = b.attn;
  md.num_seqs = total_seqs;
  md.num_tokens = n;
  md.num_decode_seqs = num_decodes + (padded_seqs - S);
  md.max_blocks_per_seq = stride;
  md.positions = TensorView(dev + off_.positions, DType::kI32, d, {n});
  md.slot_mapping = TensorView(dev + off_.slots, DType::kI32, d, {n});
  md.query_start = TensorView(dev + off_.qstart, DType::kI32, d, {total_seqs + 1});
  md.context_lens = TensorView(dev + off_.ctx, DType::kI32, d, {total_seqs});
  md.block_tables = TensorView(dev + off_.tables, DType::kI32, d, {total_seqs, stride});
  md.h_positions = positions;
  md.h_slot_mapping = slots;
  md.h_query_start = qstart;
  md.h_context_lens = ctx;
  md.h_block_tables = tables;
  b.sample_rows = TensorView(dev + off_.sample, DType::kI32, d, {graph_sample});
  b.num_sample = graph_sample;
  num_sample_out = real_sample;
  return Status::Ok();
}

Result<TensorView> ModelRunner::execute(std::span<const RunnerSeq> seqs, int num_decodes) {
  const int S = static_cast<int>(seqs.size());
  if (S > opt_.max_num_seqs) return InvalidArgumentError("batch of {} sequences exceeds {}", S, opt_.max_num_seqs);
  if (num_decodes < 0 || num_decodes > S) return InvalidArgumentError("{} decodes in a batch of {}", num_decodes, S);
  const int bs = kv_.layout.block_size;

  // Row stride of the block tables: the longest table in this batch (graphs: the fixed maximum).
  int stride = 1;
  bool one_token_each = true;
  for (const RunnerSeq& s : seqs) {
    int need = static_cast<int>((s.num_computed + s.num_new + bs - 1) / bs);
    if (need > max_blocks_per_seq_ || static_cast<size_t>(need) > s.block_table.size()) {
      return InvalidArgumentError("sequence of {} tokens has {} blocks (limit {})", s.num_computed + s.num_new,
                                  s.block_table.size(), max_blocks_per_seq_);
    }
    stride = std::max(stride, need);
    one_token_each = one_token_each && s.num_new == 1;
  }

  last_graph_ = -1;
  const int bucket = graphs_enabled_ && S > 0 && num_decodes == S && one_token_each ? graph_bucket(S) : 0;
  const Device d = backend_.device();
  ForwardBatch b;
  int num_sample = 0;
  if (bucket > 0) {
    TANDEM_RETURN_IF_ERROR(build_batch(seqs, num_decodes, true, bucket, max_blocks_per_seq_, b, num_sample));
    TensorView logits(logits_dev_.data(), DType::kF32, d, {bucket, vocab_});
    // Planning stays outside the graph; the graph itself only reads the fixed buffers.
    TANDEM_RETURN_IF_ERROR(backend_.prepare_attention(b.attn, kv_, model_.config().num_heads));
    const size_t idx = static_cast<size_t>(std::lower_bound(buckets_.begin(), buckets_.end(), bucket) - buckets_.begin());
    if (bucket_graph_[idx] < 0) {
      // One eager run first, so lazy module loading and library set-up happen outside the capture. It
      // writes the same K/V the replay below writes again (same tokens and positions).
      model_.forward(b, kv_, logits);
      TANDEM_RETURN_IF_ERROR(backend_.prepare_attention(b.attn, kv_, model_.config().num_heads));
      TANDEM_RETURN_IF_ERROR(backend_.begin_capture());
      model_.forward(b, kv_, logits);
      Result<int> id = backend_.end_capture();
      if (!id.ok()) {
        // Nothing ran during the failed capture: fall back to eager for good, and run this step eagerly.
        TLOG_WARN("CUDA graph capture for decode batch {} failed ({}); running eagerly from now on", bucket,
                  id.status().to_string());
        graphs_enabled_ = false;
        TANDEM_RETURN_IF_ERROR(backend_.prepare_attention(b.attn, kv_, model_.config().num_heads));
        model_.forward(b, kv_, logits);
        return logits.rows(0, num_sample);
      }
      bucket_graph_[idx] = *id;
      TLOG_DEBUG("captured CUDA graph {} for decode batch {}", *id, bucket);
    }
    TANDEM_RETURN_IF_ERROR(backend_.replay_graph(bucket_graph_[idx]));
    last_graph_ = bucket_graph_[idx];
    return logits.rows(0, num_sample);
  }

  TANDEM_RETURN_IF_ERROR(build_batch(seqs, num_decodes, false, S, stride, b, num_sample));
  TensorView logits(logits_dev_.data(), DType::kF32, d, {std::max(num_sample, 1), vocab_});
  model_.forward(b, kv_, logits);
  return logits.rows(0, num_sample);
}

}  // namespace tandem
