// Backend: the op-level interface the Llama forward is written against once (model/llama_model.h).
// Implementations: backend/cpu (plain fp32 reference, the oracle) and backend/cuda (bf16, fast path).
//
// Conventions:
// - Activations, weights and KV use compute_dtype() (fp32 on CPU, bf16 on CUDA) unless stated; logits
//   are fp32. All views are contiguous row-major on device().
// - Ops are asynchronous with respect to the host on CUDA (one stream per backend); synchronize() waits.
// - Linear weights keep the Hugging Face layout [out_features, in_features]; matmul computes x @ w^T.
// - RoPE is the Hugging Face "rotate_half" form: for i < D/2, (x[i], x[i+D/2]) rotate by
//   angle = position * inv_freq[i]. cos_sin_cache is fp32 [max_positions, D] holding cos in [0, D/2)
//   and sin in [D/2, D).
// - Exception to "contiguous": rope_and_cache_write's q, k, v and attention's q may be row-strided
//   column slices (TensorView::cols) of the fused qkv projection output [n, (Hq+2Hk)*D]; use
//   stride0() to step between rows.
// - Ops take a pre-allocated `out`; nothing allocates inside a step (CUDA graphs capture whole steps).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "backend/buffer.h"
#include "backend/kv_cache_view.h"
#include "common/status.h"
#include "tensor/tensor_view.h"

namespace tandem {

// Per-step attention metadata for a mixed batch. Sequences are laid out back to back: sequence s owns
// query tokens [query_start[s], query_start[s+1]); a decode contributes one token, a prefill chunk
// several. context_lens[s] counts the tokens in the cache after this step (cached prefix + new tokens);
// the new tokens are the last (query_start[s+1]-query_start[s]) of them. Attention is causal within the
// sequence: query token at position p sees cache positions [0, p].
// Device views (positions, ...) live on the backend's device; h_* are host mirrors of the same data,
// always valid, used by the CPU backend and for planning on CUDA.
struct AttentionMetadata {
  int num_seqs = 0;
  int num_tokens = 0;
  int num_decode_seqs = 0;  // sequences [0, num_decode_seqs) have exactly one query token (decodes first)
  int max_blocks_per_seq = 0;  // row stride of block_tables

  TensorView positions;     // i32 [num_tokens]
  TensorView slot_mapping;  // i32 [num_tokens], block_id * block_size + offset; where K/V of each token go
  TensorView query_start;   // i32 [num_seqs + 1]
  TensorView context_lens;  // i32 [num_seqs]
  TensorView block_tables;  // i32 [num_seqs, max_blocks_per_seq]

  const int32_t* h_positions = nullptr;
  const int32_t* h_slot_mapping = nullptr;
  const int32_t* h_query_start = nullptr;
  const int32_t* h_context_lens = nullptr;
  const int32_t* h_block_tables = nullptr;
};

// Sampling of one row of logits. The same algorithm on every backend:
//  1. temperature <= 0 (or top_k == 1): argmax, ties to the lowest id.
//  2. p = softmax(logits / temperature).
//  3. keep: the top_k largest (top_k <= 0: all); the smallest set of highest p whose sum reaches top_p
//     (top_p >= 1: all); p >= min_p * max(p) (min_p <= 0: all).
//  4. pick argmax over kept i of p_i / E_i, E_i = -log(u_i), u_i = uniform_from_hash(seed, step, i)
//     (the exponential-race form of sampling from p; see backend/cpu/cpu_sampling.h for the hash).
struct SamplingRow {
  float temperature = 1.0f;
  int32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  uint64_t seed = 0;
  uint64_t step = 0;  // number of tokens this request sampled before; makes every draw distinct
};

// A point in a backend's queue of device work (CUDA: an event on the backend's stream). record() places
// it after everything issued so far; wait() returns once the device has passed it, or an error after
// `timeout`. Backends whose ops finish before returning (CPU) have markers that are always passed.
class DeviceMarker {
 public:
  virtual ~DeviceMarker() = default;
  virtual void record() = 0;
  virtual Status wait(std::chrono::milliseconds timeout) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;
  virtual Device device() const = 0;
  virtual DType compute_dtype() const = 0;

  // ---- memory ----
  virtual Result<Buffer> allocate(size_t bytes) = 0;
  // Bytes of device memory free and total (CPU: physical memory).
  virtual void memory_info(size_t* free_bytes, size_t* total_bytes) const = 0;
  virtual void copy_to_device(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, size_t bytes) = 0;  // synchronous
  virtual void copy_device(void* dst, const void* src, size_t bytes) = 0;
  virtual void synchronize() = 0;
  // Host memory for copy_to_host_async (pinned on CUDA). Default: plain host memory.
  virtual Result<Buffer> allocate_host(size_t bytes);
  // Enqueues a device -> host copy into memory from allocate_host(); the data is there once a marker
  // recorded after this call has been passed. Default: the synchronous copy_to_host().
  virtual void copy_to_host_async(void* host_dst, const void* src, size_t bytes) { copy_to_host(host_dst, src, bytes); }
  virtual Result<std::unique_ptr<DeviceMarker>> create_marker();

  // ---- ops ----
  // out[n, H] = table[ids[n], :]. ids i32 [n]; ids outside [0, V) give zero rows.
  virtual void embedding(const TensorView& ids, const TensorView& table, TensorView out) = 0;
  // out = x / rms(x) * w, per row. out may alias x.
  virtual void rms_norm(const TensorView& x, const TensorView& w, float eps, TensorView out) = 0;
  // out[n, N] = x[n, K] @ w[N, K]^T. out may be fp32 even when x and w are not (logits).
  virtual void matmul(const TensorView& x, const TensorView& w, TensorView out) = 0;
  // out[n, N] += x[n, K] @ w[N, K]^T, out in x's dtype: the residual add folded into the projection
  // (one pass over the hidden state instead of writing the product and adding it in the next norm).
  virtual void matmul_add(const TensorView& x, const TensorView& w, TensorView out) = 0;
  // Rotates q [n, Hq*D] and k [n, Hk*D] in place at md.positions, then writes k and v [n, Hk*D] into the
  // cache of `layer` at md.slot_mapping.
  virtual void rope_and_cache_write(TensorView q, TensorView k, const TensorView& v, const TensorView& cos_sin_cache,
                                    const AttentionMetadata& md, const KvCacheView& kv, int layer) = 0;
  // Called once per step before the layers' attention calls (plans work on CUDA). Default: nothing.
  virtual Status prepare_attention(const AttentionMetadata& md, const KvCacheView& kv, int num_q_heads) {
    return Status::Ok();
  }
  // out [n, Hq*D] = causal paged attention of q [n, Hq*D] over the cache of `layer` (GQA: q head h uses
  // kv head h / (Hq/Hk)), softmax scale `scale`.
  virtual void attention(const TensorView& q, const KvCacheView& kv, int layer, const AttentionMetadata& md,
                         float scale, TensorView out) = 0;
  // out [n, I] = silu(gate_up[:, :I]) * gate_up[:, I:] for gate_up [n, 2I].
  virtual void silu_mul(const TensorView& gate_up, TensorView out) = 0;
  // out[i, :] = x[row_ids[i], :]. row_ids i32 [m] on device.
  virtual void gather_rows(const TensorView& x, const TensorView& row_ids, TensorView out) = 0;
  // Samples one token per row of fp32 logits [m, V]; writes m ids to out_host (synchronous).
  virtual void sample(const TensorView& logits, std::span<const SamplingRow> rows, std::span<int32_t> out_host) = 0;
  // The same sampling, leaving the ids on the device: ids i32 [m]. On CUDA it only enqueues work (the
  // rows are consumed before it returns). Default: sample() to the host, then copy_to_device().
  virtual void sample_to_device(const TensorView& logits, std::span<const SamplingRow> rows, TensorView ids);
  // dst[dst_index[i]] = src[src_index[i]] for i < src_index.numel(); all i32 on the device. Used to feed
  // the previous step's sampled ids (still on the device) into the next step's input tokens.
  virtual void scatter_ids(const TensorView& src, const TensorView& src_index, const TensorView& dst_index,
                           TensorView dst) = 0;

  // ---- graphs (optional; CUDA graphs on the CUDA backend) ----
  // Ops issued between begin_capture() and end_capture() are recorded, not run; replay_graph() runs
  // them again reading and writing the same addresses (so inputs go into persistent buffers first).
  // prepare_attention() must not be called inside a capture; a backend that supports graphs keeps its
  // attention plan in fixed buffers so a replay after a new prepare_attention() sees the new plan.
  virtual bool supports_graphs() const { return false; }
  virtual Status begin_capture() { return UnimplementedError("{} backend has no graphs", name()); }
  virtual Result<int> end_capture() { return UnimplementedError("{} backend has no graphs", name()); }
  virtual Status replay_graph(int graph_id) { return UnimplementedError("{} backend has no graphs", name()); }
};

}  // namespace tandem
