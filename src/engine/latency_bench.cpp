// run_latency_bench: see latency_bench.h.
#include "engine/latency_bench.h"

#include <algorithm>
#include <chrono>
#include <numeric>

#include "backend/backend_factory.h"
#include "engine/model_runner.h"
#include "kv/kv_pool.h"
#include "model/llama_model.h"

namespace tandem {

namespace {

struct Timing {
  double mean = 0, min = 0, max = 0;
};

}  // namespace

std::string LatencyReport::to_table() const {
  std::string s = header + "\n";
  s += fmt::format("{:<8} {:>6} {:>8} {:>10} {:>10} {:>10} {:>12} {:>10} {:>7}\n", "phase", "batch", "tokens",
                   "mean_ms", "min_ms", "max_ms", "tokens/s", "gpu_ms", "idle%");
  for (const LatencyRow& r : rows) {
    s += fmt::format("{:<8} {:>6} {:>8} {:>10.3f} {:>10.3f} {:>10.3f} {:>12.1f}", r.kind, r.batch, r.tokens,
                     r.mean_ms, r.min_ms, r.max_ms, r.tokens_per_s);
    if (r.gpu_ms > 0) {
      s += fmt::format(" {:>10.3f} {:>7.1f}\n", r.gpu_ms, r.idle_pct);
    } else {
      s += fmt::format(" {:>10} {:>7}\n", "-", "-");
    }
  }
  return s;
}

Result<LatencyReport> run_latency_bench(const LatencyBenchOptions& o) {
  const EngineConfig& ec = o.engine;
  if (o.iters <= 0 || o.warmup < 0) return InvalidArgumentError("--iters must be > 0 and --warmup >= 0");
  auto positive = [](const std::vector<int>& v) { return std::all_of(v.begin(), v.end(), [](int x) { return x > 0; }); };
  if (!positive(o.prefill_lens) || !positive(o.decode_batches) || !positive(o.decode_contexts))
    return InvalidArgumentError("lengths, batches and contexts must be positive");
  TANDEM_ASSIGN_OR_RETURN(ModelConfig mc, ModelConfig::from_file(ec.model_dir / "config.json"));
  TANDEM_ASSIGN_OR_RETURN(auto backend, create_backend({ec.device, ec.device_id, ec.num_threads}));

  const int bs = ec.block_size;
  const int max_prefill = o.prefill_lens.empty() ? 1 : *std::max_element(o.prefill_lens.begin(), o.prefill_lens.end());
  const int max_batch = o.decode_batches.empty() ? 1 : *std::max_element(o.decode_batches.begin(), o.decode_batches.end());
  const int max_ctx = o.decode_contexts.empty() ? 1 : *std::max_element(o.decode_contexts.begin(), o.decode_contexts.end());
  const int max_len = std::max(max_prefill, max_ctx + 1);
  if (max_len > mc.max_position_embeddings)
    return InvalidArgumentError("length {} exceeds the model's max_position_embeddings {}", max_len, mc.max_position_embeddings);
  const int blocks_per_ctx = (max_ctx + 1 + bs - 1) / bs;
  const int64_t num_blocks =
      std::max<int64_t>((max_prefill + bs - 1) / bs, static_cast<int64_t>(max_batch) * blocks_per_ctx);

  ModelLoadOptions lo;
  lo.load_format = ec.load_format;
  lo.seed = ec.seed;
  lo.max_num_batched_tokens = std::max(max_prefill, max_batch);
  lo.max_num_seqs = max_batch;
  lo.max_model_len = max_len;
  TANDEM_ASSIGN_OR_RETURN(auto model, LlamaModel::load(ec.model_dir, mc, lo, *backend));
  KvLayout layout{mc.num_layers, mc.num_kv_heads, mc.head_dim, bs, backend->compute_dtype()};
  TANDEM_ASSIGN_OR_RETURN(auto pool, KvPool::create(*backend, layout, num_blocks));
  TANDEM_ASSIGN_OR_RETURN(auto runner, ModelRunner::create(*backend, *model, pool->view(),
                                                           {max_batch, lo.max_num_batched_tokens, max_len, o.graphs}));

  std::vector<int32_t> tokens(max_len + 1);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 7919 + 13) % mc.vocab_size);
  std::vector<int32_t> table(num_blocks);
  std::iota(table.begin(), table.end(), 0);
  std::vector<SamplingRow> rows(max_batch);
  for (auto& r : rows) r.temperature = 0.0f;
  std::vector<int32_t> sampled(max_batch);

  auto time_batch = [&](const std::vector<RunnerSeq>& seqs, int num_decodes) -> Result<Timing> {
    std::vector<double> ms;
    for (int i = 0; i < o.warmup + o.iters; ++i) {
      backend->synchronize();
      auto t0 = std::chrono::steady_clock::now();
      TANDEM_ASSIGN_OR_RETURN(TensorView logits, runner->execute(seqs, num_decodes));
      backend->sample(logits, std::span<const SamplingRow>(rows.data(), seqs.size()),
                      std::span<int32_t>(sampled.data(), seqs.size()));
      backend->synchronize();
      double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (i >= o.warmup) ms.push_back(dt);
    }
    Timing t;
    t.mean = std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size();
    t.min = *std::min_element(ms.begin(), ms.end());
    t.max = *std::max_element(ms.begin(), ms.end());
    return t;
  };

  LatencyReport rep;
  rep.header = fmt::format("model {} ({} layers, hidden {}, vocab {}), backend {}, dtype {}, block_size {}, "
                           "iters {}, warmup {}",
                           ec.model_dir.string(), mc.num_layers, mc.hidden_size, mc.vocab_size, backend->name(),
                           dtype_name(backend->compute_dtype()), bs, o.iters, o.warmup);
  for (int len : o.prefill_lens) {
    std::vector<RunnerSeq> seqs{{tokens, 0, len, table, true}};
    TANDEM_ASSIGN_OR_RETURN(Timing t, time_batch(seqs, 0));
    rep.rows.push_back({"prefill", 1, len, t.mean, t.min, t.max, len / (t.mean / 1000.0)});
  }
  for (int ctx : o.decode_contexts) {
    for (int b : o.decode_batches) {
      std::vector<RunnerSeq> seqs;
      for (int s = 0; s < b; ++s) {
        std::span<const int32_t> tb(table.data() + static_cast<size_t>(s) * blocks_per_ctx, blocks_per_ctx);
        seqs.push_back({tokens, ctx, 1, tb, true});
      }
      TANDEM_ASSIGN_OR_RETURN(Timing t, time_batch(seqs, b));
      LatencyRow row{"decode", b, ctx, t.mean, t.min, t.max, b / (t.mean / 1000.0)};
      if (runner->replay_last_graph().ok()) {
        // Device time of the forward alone: the same graph replayed back to back.
        const int reps = std::max(o.iters, 20);
        backend->synchronize();
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < reps; ++i) TANDEM_RETURN_IF_ERROR(runner->replay_last_graph());
        backend->synchronize();
        row.gpu_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
        row.idle_pct = std::max(0.0, 100.0 * (1.0 - row.gpu_ms / t.mean));
      }
      rep.rows.push_back(row);
    }
  }
  return rep;
}

}  // namespace tandem
