// Launchers of the CUDA backend's own kernels (defined in the *_kernels.cu files). Plain pointers and
// sizes only, so that the backend (.cpp, compiled by the host compiler) and the tests can call them.
// All tensors are bf16 unless stated; every launcher enqueues on `stream` and never synchronizes.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace tandem::cuda {

// ---- elementwise / row kernels (elementwise_kernels.cu) ----
void launch_embedding(const int32_t* ids, const void* table, void* out, int n, int hidden, int vocab, cudaStream_t stream);
void launch_rms_norm(const void* x, const void* w, void* out, int n, int hidden, float eps, cudaStream_t stream);
void launch_silu_mul(const void* gate_up, void* out, int n, int inter, cudaStream_t stream);
// Row gather of any element type: out row i = x row row_ids[i] (ids outside [0, num_rows) give zero rows).
void launch_gather_rows(const void* x, const int32_t* row_ids, void* out, int m, int64_t num_rows, size_t row_bytes,
                        cudaStream_t stream);

// Where one layer's K/V pages live in the block-major pool (backend/kv_cache_view.h), in elements.
struct KvPoolLayer {
  void* base = nullptr;             // bf16 pool base
  int64_t layer_offset = 0;         // layer * elems_per_layer_block
  int64_t elems_per_block = 0;      // page stride
  int64_t elems_per_page = 0;       // V page = K page + elems_per_page
  int block_size = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
};

// Rotates q [n, Hq*D] and k [n, Hk*D] in place (HF rotate_half; cos_sin fp32 [max_pos, D]) and writes
// k, v into the pool at slot_mapping (slots < 0 are skipped). Rows of q, k, v are *_stride elements
// apart (column slices of the fused qkv output).
void launch_rope_and_cache_write(void* q, int64_t q_stride, void* k, int64_t k_stride, const void* v,
                                 int64_t v_stride, const float* cos_sin, const int32_t* positions,
                                 const int32_t* slot_mapping, int n, int num_q_heads, const KvPoolLayer& kv,
                                 cudaStream_t stream);

// ---- attention (attention_kernels.cu) ----
struct PagedAttentionArgs {
  const void* q = nullptr;  // [num_tokens, Hq*D], rows q_stride elements apart (q_stride % 8 == 0 for decode)
  int64_t q_stride = 0;
  void* out = nullptr;      // [num_tokens, Hq*D]
  KvPoolLayer kv;
  const int32_t* query_start = nullptr;   // [num_seqs+1]
  const int32_t* context_lens = nullptr;  // [num_seqs]
  const int32_t* block_tables = nullptr;  // [num_seqs, max_blocks_per_seq]
  int max_blocks_per_seq = 0;
  int num_q_heads = 0;
  float scale = 1.0f;
};

// Decode: sequences [0, num_decode_seqs) have one query token each. The context of each is split into
// `num_splits` ranges (fixed by the launch shape, never by context lengths, so CUDA graphs stay valid);
// with num_splits > 1 each split block writes its partial to partial_o [num_decode_seqs*Hq*num_splits, D]
// fp32 and partial_ml [same, 2] fp32, and the last split block of each (seq, head group) to finish merges
// them in the same kernel (split_counters: decode_split_counters() ints, zero before the first launch;
// the kernel leaves them zero again).
// Splits > 1 only while the decode blocks stay under kDecodeSplitBlocksPerSm * SMs, and blocks x splits
// stays under the same bound (so the counters need at most that many ints, and the partials at most that
// many x 8 entries: the backend checks the product). For the CUDA-core kernel it is also the
// occupancy bound (blocks per SM); the tensor-core kernel (GQA 2..8) splits to about one block per SM
// (decode_num_splits()), well inside the bound.
constexpr int kDecodeSplitBlocksPerSm = 4;
constexpr int kMaxDecodeSplits = 128;
struct DecodeScratch {
  float* partial_o = nullptr;
  float* partial_ml = nullptr;
  int* split_counters = nullptr;
  int sm_count = 0;  // the device's SMs (picks the tensor-core kernel's pipeline depth); 0: asked per launch
};
int decode_num_splits(int num_decode_seqs, int num_kv_heads, int num_q_heads, int sm_count);
int decode_split_counters(int num_decode_seqs, int num_kv_heads, int num_q_heads);
void launch_paged_decode(const PagedAttentionArgs& a, int num_decode_seqs, int num_splits, const DecodeScratch& scratch,
                         cudaStream_t stream);

// Prefill: work items (seq, first query token of the tile) from the plan, int32 pairs; seq < 0 = no work.
// A tile covers prefill_tile_tokens(G) query tokens of all G = Hq/Hk heads of one kv head.
int prefill_tile_tokens(int num_q_heads, int num_kv_heads);
void launch_paged_prefill(const PagedAttentionArgs& a, const int32_t* work_items, int num_work_items,
                          cudaStream_t stream);

// Raises the dynamic shared-memory limit of the kernels that need more than 48 KB, on the current
// device. Called once when a backend is created (never during graph capture).
cudaError_t prepare_kernel_attributes();
// The decode kernels' part of it (decode_attention_kernels.cu).
cudaError_t prepare_decode_kernel_attributes();

// ---- sampling (sampling_kernels.cu) ----
struct SamplingRowDevice {
  float temperature;
  int32_t top_k;
  float top_p;
  float min_p;
  uint64_t seed;
  uint64_t step;
};
// One token per row of fp32 logits [m, vocab] into out_ids (device, int32 [m]).
void launch_sample(const float* logits, int m, int vocab, const SamplingRowDevice* rows, int32_t* out_ids,
                   cudaStream_t stream);
// dst[dst_index[i]] = src[src_index[i]], i in [0, m).
void launch_scatter_ids(const int32_t* src, const int32_t* src_index, const int32_t* dst_index, int32_t* dst, int m,
                        cudaStream_t stream);
// Test hook: out[i] = uniform_from_hash(seed, step, i) computed on the device, i in [0, n).
void launch_uniform_from_hash(uint64_t seed, uint64_t step, int n, float* out, cudaStream_t stream);

}  // namespace tandem::cuda
