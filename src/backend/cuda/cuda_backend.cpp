// CudaBackend: the Backend interface on one CUDA device and one stream per instance (no globals).
// bf16 activations/weights/KV with fp32 accumulation; GEMMs through cuBLASLt (cublaslt_gemm.h), the
// rest through the backend's own kernels (cuda_kernels.h). Attention is planned once per step in
// prepare_attention(): the prefill work list goes to a device buffer at a fixed address and the decode
// split count follows from the batch shape only, so CUDA graphs captured over attention() replay
// correctly after a later prepare_attention() for the same shape.
#include "backend/cuda/cuda_backend.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <cstdlib>
#include <thread>
#include <vector>

#include "backend/cuda/cublaslt_gemm.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/gemv_kernels.h"
#include "backend/cuda/prefill_attention_fa3_plan.h"
#include "backend/cuda/prefill_attention_plan.h"

namespace tandem {
namespace {

constexpr size_t kGemmWorkspaceBytes = 32u << 20;
constexpr int kMaxHeadDim = 256;
constexpr int kSampleRowsCapacity = 1024;
constexpr int64_t kInitialWorkItems = 16384;

// Device memory freed with the owning device current (a Buffer may be dropped from any thread).
void free_on_device(int device, void* p) {
  int prev = -1;
  cudaGetDevice(&prev);
  if (prev != device) cudaSetDevice(device);
  cudaFree(p);
  if (prev != device && prev >= 0) cudaSetDevice(prev);
}

// An event on the backend's stream. wait() polls (the engine thread has a core to itself; polling keeps
// the wake-up latency at a few microseconds) and gives up after the timeout.
class CudaMarker final : public DeviceMarker {
 public:
  CudaMarker(int device, cudaStream_t stream, cudaEvent_t event) : device_(device), stream_(stream), event_(event) {}
  ~CudaMarker() override {
    cudaSetDevice(device_);
    cudaEventDestroy(event_);
  }
  void record() override {
    cudaSetDevice(device_);
    TANDEM_CUDA_CHECK(cudaEventRecord(event_, stream_));
  }
  Status wait(std::chrono::milliseconds timeout) override {
    cudaSetDevice(device_);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      const cudaError_t err = cudaEventQuery(event_);
      if (err == cudaSuccess) return Status::Ok();
      if (err != cudaErrorNotReady) {
        cudaGetLastError();
        return InternalError("waiting for the device: {}", cudaGetErrorString(err));
      }
      if (std::chrono::steady_clock::now() >= deadline)
        return DeadlineExceededError("the device did not finish its work within {} ms", timeout.count());
      std::this_thread::yield();
    }
  }

 private:
  int device_;
  cudaStream_t stream_;
  cudaEvent_t event_;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device_id) : device_id_(device_id) {}

  ~CudaBackend() override {
    use_device();
    if (stream_) cudaStreamSynchronize(stream_);
    for (cudaGraphExec_t g : graphs_) cudaGraphExecDestroy(g);
    gemm_.reset();
    for (void* p : device_allocs_) cudaFree(p);
    for (void* p : host_allocs_) cudaFreeHost(p);
    if (plan_copy_done_) cudaEventDestroy(plan_copy_done_);
    for (cudaEvent_t e : async_rows_uploaded_)
      if (e) cudaEventDestroy(e);
    if (stream_) cudaStreamDestroy(stream_);
  }

  Status init() {
    TANDEM_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_id_));
    TANDEM_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device_id_));
    TANDEM_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    TANDEM_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&plan_copy_done_, cudaEventDisableTiming));
    // Small-M matmuls use the GEMV kernel (gemv_kernels.h) up to this many rows; TANDEM_CUDA_GEMV_MAX_M
    // overrides it (0: always cuBLASLt) for measurements.
    if (const char* e = std::getenv("TANDEM_CUDA_GEMV_MAX_M")) gemv_max_m_ = std::clamp(std::atoi(e), 0, cuda::kGemvMaxM);
    TANDEM_RETURN_IF_ERROR(choose_prefill_path());
    gemm_ = std::make_unique<cuda::CublasLtGemm>();
    TANDEM_RETURN_IF_ERROR(gemm_->init(kGemmWorkspaceBytes));
    TANDEM_CUDA_RETURN_IF_ERROR(cuda::prepare_kernel_attributes());
    // Decode split scratch, one fixed allocation for every batch shape (bounds: decode_partial_entries()
    // and decode_split_counter_entries()).
    const int64_t max_entries = decode_partial_entries();
    TANDEM_ASSIGN_OR_RETURN(void* po, device_alloc(sizeof(float) * max_entries * kMaxHeadDim));
    TANDEM_ASSIGN_OR_RETURN(void* pml, device_alloc(sizeof(float) * max_entries * 2));
    // Zeroed once; the decode kernel leaves them zero after every launch.
    const int64_t max_counters = decode_split_counter_entries();
    TANDEM_ASSIGN_OR_RETURN(void* counters, device_alloc(sizeof(int) * max_counters));
    TANDEM_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(counters, 0, sizeof(int) * max_counters, stream_));
    decode_scratch_.partial_o = static_cast<float*>(po);
    decode_scratch_.partial_ml = static_cast<float*>(pml);
    decode_scratch_.split_counters = static_cast<int*>(counters);
    decode_scratch_.sm_count = sm_count_;
    TANDEM_RETURN_IF_ERROR(ensure_work_capacity(kInitialWorkItems));
    // Only the path in use gets its plan buffers.
    if (fa3_allowed_) TANDEM_RETURN_IF_ERROR(fa3_prefill_.init(sm_count_));
    else TANDEM_RETURN_IF_ERROR(fi_prefill_.init());
    TANDEM_ASSIGN_OR_RETURN(sample_rows_dev_, device_alloc(sizeof(cuda::SamplingRowDevice) * kSampleRowsCapacity));
    TANDEM_ASSIGN_OR_RETURN(sample_ids_dev_, device_alloc(sizeof(int32_t) * kSampleRowsCapacity));
    for (int i = 0; i < 2; ++i) {
      TANDEM_ASSIGN_OR_RETURN(async_rows_host_[i], host_alloc(sizeof(cuda::SamplingRowDevice) * kSampleRowsCapacity));
      TANDEM_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&async_rows_uploaded_[i], cudaEventDisableTiming));
    }
    return Status::Ok();
  }

  std::string name() const override { return fmt::format("cuda:{}", device_id_); }
  Device device() const override { return Device::kCuda; }
  DType compute_dtype() const override { return DType::kBF16; }

  // ---- memory ----
  Result<Buffer> allocate(size_t bytes) override {
    use_device();
    void* p = nullptr;
    if (bytes > 0) {
      cudaError_t err = cudaMalloc(&p, bytes);
      if (err != cudaSuccess) {
        cudaGetLastError();
        return ResourceExhaustedError("cudaMalloc of {} bytes on cuda:{} failed: {}", bytes, device_id_,
                                      cudaGetErrorString(err));
      }
    }
    const int dev = device_id_;
    return Buffer(p, bytes, Device::kCuda, [dev](void* q) { free_on_device(dev, q); });
  }
  void memory_info(size_t* free_bytes, size_t* total_bytes) const override {
    use_device();
    TANDEM_CUDA_CHECK(cudaMemGetInfo(free_bytes, total_bytes));
  }
  // A pageable host source is staged before the call returns; a pinned one must stay valid until the
  // stream reaches the copy.
  void copy_to_device(void* dst, const void* host_src, size_t bytes) override {
    if (bytes == 0) return;
    use_device();
    TANDEM_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
  }
  void copy_to_host(void* host_dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    use_device();
    TANDEM_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    TANDEM_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  Result<Buffer> allocate_host(size_t bytes) override {
    use_device();
    void* p = nullptr;
    TANDEM_CUDA_RETURN_IF_ERROR(cudaMallocHost(&p, std::max<size_t>(bytes, 1)));
    return Buffer(p, bytes, Device::kCpu, [](void* q) { cudaFreeHost(q); });
  }
  void copy_to_host_async(void* host_dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    use_device();
    TANDEM_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  }
  Result<std::unique_ptr<DeviceMarker>> create_marker() override {
    use_device();
    cudaEvent_t e = nullptr;
    TANDEM_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    return std::unique_ptr<DeviceMarker>(new CudaMarker(device_id_, stream_, e));
  }
  void copy_device(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    use_device();
    TANDEM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
  }
  void synchronize() override {
    use_device();
    TANDEM_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  // ---- ops ----
  void embedding(const TensorView& ids, const TensorView& table, TensorView out) override {
    check_on_device(ids, DType::kI32, "embedding ids");
    check_on_device(table, DType::kBF16, "embedding table");
    check_on_device(out, DType::kBF16, "embedding out");
    const int n = static_cast<int>(ids.numel());
    const int hidden = static_cast<int>(table.dim(1));
    TANDEM_CHECK(out.numel() == static_cast<int64_t>(n) * hidden, "embedding out {} for {} x {}", out.shape_string(), n, hidden);
    use_device();
    cuda::launch_embedding(ids.as<int32_t>(), table.data, out.data, n, hidden, static_cast<int>(table.dim(0)), stream_);
    check_launch("embedding");
  }

  void rms_norm(const TensorView& x, const TensorView& w, float eps, TensorView out) override {
    check_on_device(x, DType::kBF16, "rms_norm x");
    check_on_device(w, DType::kBF16, "rms_norm w");
    check_on_device(out, DType::kBF16, "rms_norm out");
    const int64_t hidden = w.numel();
    TANDEM_CHECK(hidden > 0 && x.numel() % hidden == 0 && out.numel() == x.numel(), "rms_norm shapes {} {} {}",
                 x.shape_string(), w.shape_string(), out.shape_string());
    use_device();
    cuda::launch_rms_norm(x.data, w.data, out.data, static_cast<int>(x.numel() / hidden), static_cast<int>(hidden), eps,
                          stream_);
    check_launch("rms_norm");
  }

  void matmul(const TensorView& x, const TensorView& w, TensorView out) override {
    matmul_into(x, w, out, /*accumulate=*/false);
  }

  void matmul_add(const TensorView& x, const TensorView& w, TensorView out) override {
    TANDEM_CHECK(out.dtype == DType::kBF16, "matmul_add out must be bf16 on cuda, got {}", dtype_name(out.dtype));
    matmul_into(x, w, out, /*accumulate=*/true);
  }

  void rope_and_cache_write(TensorView q, TensorView k, const TensorView& v, const TensorView& cos_sin_cache,
                            const AttentionMetadata& md, const KvCacheView& kv, int layer) override {
    check_on_device(q, DType::kBF16, "rope q");
    check_on_device(k, DType::kBF16, "rope k");
    check_on_device(v, DType::kBF16, "rope v");
    check_on_device(cos_sin_cache, DType::kF32, "cos_sin_cache");
    check_kv(kv, layer);
    const KvLayout& L = kv.layout;
    const int n = md.num_tokens;
    TANDEM_CHECK(cos_sin_cache.row_elems() == L.head_dim, "cos_sin_cache rows {} vs head_dim {}",
                 cos_sin_cache.row_elems(), L.head_dim);
    TANDEM_CHECK(k.dim(0) >= n && k.row_elems() == L.elems_per_token() && v.dim(0) >= n &&
                     v.row_elems() == L.elems_per_token(),
                 "rope k {} v {} for {} tokens", k.shape_string(), v.shape_string(), n);
    TANDEM_CHECK(q.ndim >= 1 && q.dim(0) >= n && q.row_elems() % L.head_dim == 0, "rope q {} for {} tokens",
                 q.shape_string(), n);
    const int hq = static_cast<int>(q.row_elems() / L.head_dim);
    use_device();
    cuda::launch_rope_and_cache_write(q.data, q.stride0(), k.data, k.stride0(), v.data, v.stride0(),
                                      cos_sin_cache.as<float>(), md.positions.as<int32_t>(),
                                      md.slot_mapping.as<int32_t>(), n, hq, pool_layer(kv, layer), stream_);
    check_launch("rope_and_cache_write");
  }

  Status prepare_attention(const AttentionMetadata& md, const KvCacheView& kv, int num_q_heads) override {
    const KvLayout& L = kv.layout;
    if (kv.device != Device::kCuda || L.dtype != DType::kBF16)
      return InvalidArgumentError("cuda attention needs a bf16 KV pool on cuda, got {} on {}", dtype_name(L.dtype),
                                  device_name(kv.device));
    if (L.head_dim <= 0 || L.head_dim > kMaxHeadDim)
      return InvalidArgumentError("cuda attention supports head_dim 1..{}, got {}", kMaxHeadDim, L.head_dim);
    if (L.num_kv_heads <= 0 || num_q_heads % L.num_kv_heads != 0 || num_q_heads / L.num_kv_heads > 64)
      return InvalidArgumentError("cuda attention: {} q heads over {} kv heads (need a multiple, ratio <= 64)",
                                  num_q_heads, L.num_kv_heads);
    if (md.num_decode_seqs < 0 || md.num_decode_seqs > md.num_seqs)
      return InvalidArgumentError("num_decode_seqs {} of {} sequences", md.num_decode_seqs, md.num_seqs);
    if (capturing_) {
      // Inside a graph capture (LlamaModel::forward plans every step): the caller planned this batch
      // before begin_capture(); touching the stream or the staging here is not capturable.
      if (!plan_.valid || plan_.num_seqs != md.num_seqs || plan_.num_tokens != md.num_tokens ||
          plan_.num_q_heads != num_q_heads)
        return FailedPreconditionError("prepare_attention inside a graph capture needs the same batch planned first");
      return Status::Ok();
    }
    use_device();
    plan_.num_q_heads = num_q_heads;
    plan_.num_seqs = md.num_seqs;
    plan_.num_tokens = md.num_tokens;
    // The split-K decode kernel reads 16-byte vectors: head_dim % 8 == 0. Otherwise decodes go through
    // the prefill kernel as one-token chunks.
    plan_.num_decode = L.head_dim % 8 == 0 ? md.num_decode_seqs : 0;
    plan_.num_splits = cuda::decode_num_splits(plan_.num_decode, L.num_kv_heads, num_q_heads, sm_count_);
    TANDEM_CHECK(plan_.num_splits == 1 ||
                 (static_cast<int64_t>(plan_.num_decode) * num_q_heads * plan_.num_splits <= decode_partial_entries() &&
                  cuda::decode_split_counters(plan_.num_decode, L.num_kv_heads, num_q_heads) <=
                      decode_split_counter_entries()));
    // Prefill at head_dim 128 goes through FlashInfer: the sm90 FA3 kernel (prefill_attention_fa3.h) where
    // compiled in and chosen (choose_prefill_path()), else FA2 (prefill_attention_fi.h); other head dims
    // (and decodes the split-K kernel cannot take) through the WMMA kernel's work list.
    // Both FlashInfer kernels take the same shapes (head_dim 128, GQA); FA3 when choose_prefill_path()
    // allowed it, else FA2.
    const bool flashinfer = cuda::flashinfer_prefill_supported(L.head_dim, num_q_heads, L.num_kv_heads) &&
                            plan_.num_decode == md.num_decode_seqs;
    plan_.fa3_prefill = flashinfer && fa3_allowed_;
    plan_.flashinfer_prefill = flashinfer && !fa3_allowed_;
    if (plan_.fa3_prefill)
      TANDEM_RETURN_IF_ERROR(
          fa3_prefill_.build(md, plan_.num_decode, num_q_heads, L.num_kv_heads, L.block_size, stream_));
    if (plan_.flashinfer_prefill)
      TANDEM_RETURN_IF_ERROR(fi_prefill_.build(md, plan_.num_decode, num_q_heads, L.num_kv_heads, L.block_size, stream_));
    const int tpt = cuda::prefill_tile_tokens(num_q_heads, L.num_kv_heads);
    plan_.num_work_items = plan_.flashinfer_prefill || plan_.fa3_prefill
                               ? 0
                               : work_item_bound(md.num_tokens, md.num_seqs, plan_.num_decode, tpt);
    TANDEM_RETURN_IF_ERROR(ensure_work_capacity(plan_.num_work_items));
    // The WMMA work list; empty on FlashInfer and decode-only steps, which then skip the staging and its
    // event entirely (plan_copy_done_ keeps marking the last real upload).
    if (plan_.num_work_items > 0) {
      // The previous plan upload must have left the pinned staging before it is overwritten.
      TANDEM_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(plan_copy_done_));
      int64_t w = 0;
      for (int s = plan_.num_decode; s < md.num_seqs; ++s) {
        const int q_len = md.h_query_start[s + 1] - md.h_query_start[s];
        for (int qt = 0; qt < q_len; qt += tpt) {
          TANDEM_CHECK(w < plan_.num_work_items);
          work_host_[2 * w] = s;
          work_host_[2 * w + 1] = qt;
          ++w;
        }
      }
      for (; w < plan_.num_work_items; ++w) work_host_[2 * w] = work_host_[2 * w + 1] = -1;
      TANDEM_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(work_dev_, work_host_, sizeof(int32_t) * 2 * plan_.num_work_items,
                                                  cudaMemcpyHostToDevice, stream_));
      TANDEM_CUDA_RETURN_IF_ERROR(cudaEventRecord(plan_copy_done_, stream_));
    }
    plan_.valid = true;
    return Status::Ok();
  }

  void attention(const TensorView& q, const KvCacheView& kv, int layer, const AttentionMetadata& md, float scale,
                 TensorView out) override {
    check_on_device(q, DType::kBF16, "attention q");
    check_on_device(out, DType::kBF16, "attention out");
    check_kv(kv, layer);
    TANDEM_CHECK(plan_.valid && plan_.num_seqs == md.num_seqs && plan_.num_tokens == md.num_tokens,
                 "attention() without a matching prepare_attention() ({} seqs / {} tokens planned, {} / {} given)",
                 plan_.num_seqs, plan_.num_tokens, md.num_seqs, md.num_tokens);
    const KvLayout& L = kv.layout;
    TANDEM_CHECK(q.ndim >= 1 && q.dim(0) >= md.num_tokens && q.row_elems() == int64_t{plan_.num_q_heads} * L.head_dim &&
                     out.dim(0) >= md.num_tokens && out.row_elems() == q.row_elems(),
                 "attention q {} out {} for {} tokens of {} heads", q.shape_string(), out.shape_string(),
                 md.num_tokens, plan_.num_q_heads);
    cuda::PagedAttentionArgs a;
    a.q = q.data;
    a.q_stride = q.stride0();
    TANDEM_CHECK(plan_.num_decode == 0 || (a.q_stride % 8 == 0 && (reinterpret_cast<uintptr_t>(q.data) & 15u) == 0),
                 "attention q rows must be 16-byte aligned for the decode kernel (stride {})", a.q_stride);    a.out = out.data;
    a.kv = pool_layer(kv, layer);
    a.query_start = md.query_start.as<int32_t>();
    a.context_lens = md.context_lens.as<int32_t>();
    a.block_tables = md.block_tables.as<int32_t>();
    a.max_blocks_per_seq = md.max_blocks_per_seq;
    a.num_q_heads = plan_.num_q_heads;
    a.scale = scale;
    use_device();
    cuda::launch_paged_decode(a, plan_.num_decode, plan_.num_splits, decode_scratch_, stream_);
    if (plan_.fa3_prefill) {
      const cudaError_t err = cuda::launch_fa3_prefill(a, fa3_prefill_.work(), stream_);
      TANDEM_CHECK(err == cudaSuccess, "fa3 prefill launch failed: {}", cudaGetErrorString(err));
    } else if (plan_.flashinfer_prefill) {
      const cudaError_t err = cuda::launch_flashinfer_prefill(a, fi_prefill_.work(), stream_);
      TANDEM_CHECK(err == cudaSuccess, "flashinfer prefill launch failed: {}", cudaGetErrorString(err));
    } else {
      cuda::launch_paged_prefill(a, work_dev_, static_cast<int>(plan_.num_work_items), stream_);
    }
    check_launch("attention");
  }

  void silu_mul(const TensorView& gate_up, TensorView out) override {
    check_on_device(gate_up, DType::kBF16, "silu_mul gate_up");
    check_on_device(out, DType::kBF16, "silu_mul out");
    const int64_t inter = gate_up.dim(-1) / 2;
    const int64_t n = gate_up.numel() / std::max<int64_t>(1, 2 * inter);
    TANDEM_CHECK(out.numel() == n * inter, "silu_mul out {} for gate_up {}", out.shape_string(), gate_up.shape_string());
    use_device();
    cuda::launch_silu_mul(gate_up.data, out.data, static_cast<int>(n), static_cast<int>(inter), stream_);
    check_launch("silu_mul");
  }

  void gather_rows(const TensorView& x, const TensorView& row_ids, TensorView out) override {
    TANDEM_CHECK(x.device == Device::kCuda && out.device == Device::kCuda && x.dtype == out.dtype,
                 "gather_rows x/out must be cuda tensors of one dtype");
    check_on_device(row_ids, DType::kI32, "gather_rows row_ids");
    const int m = static_cast<int>(row_ids.numel());
    TANDEM_CHECK(out.ndim >= 1 && out.dim(0) >= m && out.row_elems() == x.row_elems(),
                 "gather_rows out {} for {} rows of {}", out.shape_string(), m, x.shape_string());
    use_device();
    cuda::launch_gather_rows(x.data, row_ids.as<int32_t>(), out.data, m, x.dim(0),
                             static_cast<size_t>(x.row_elems()) * dtype_size(x.dtype), stream_);
    check_launch("gather_rows");
  }

  // Synchronous sampling: sample_to_device() into the backend's id buffer, then one copy per chunk straight
  // into the caller's (pageable) buffer.
  void sample(const TensorView& logits, std::span<const SamplingRow> rows, std::span<int32_t> out_host) override {
    const int64_t m = static_cast<int64_t>(rows.size());
    TANDEM_CHECK(static_cast<int64_t>(out_host.size()) >= m && logits.ndim == 2 && logits.dim(0) >= m,
                 "sample: {} rows, logits {}, {} outputs", m, logits.shape_string(), out_host.size());
    const TensorView ids(sample_ids_dev_, DType::kI32, Device::kCuda, {kSampleRowsCapacity});
    for (int64_t r0 = 0; r0 < m; r0 += kSampleRowsCapacity) {
      const int64_t chunk = std::min<int64_t>(kSampleRowsCapacity, m - r0);
      sample_to_device(logits.rows(r0, chunk), rows.subspan(r0, chunk), ids);
      copy_to_host(out_host.data() + r0, sample_ids_dev_, sizeof(int32_t) * chunk);  // synchronizes
    }
  }

  // Asynchronous sampling: the rows go through one of two pinned slots (a slot is rewritten only after
  // the device has read its previous contents), the ids stay on the device.
  void sample_to_device(const TensorView& logits, std::span<const SamplingRow> rows, TensorView ids) override {
    check_on_device(logits, DType::kF32, "sample logits");
    check_on_device(ids, DType::kI32, "sample ids");
    const int64_t m = static_cast<int64_t>(rows.size());
    TANDEM_CHECK(ids.numel() >= m && logits.ndim == 2 && logits.dim(0) >= m, "sample_to_device: {} rows, logits {}, ids {}",
                 m, logits.shape_string(), ids.shape_string());
    const int vocab = static_cast<int>(logits.dim(1));
    use_device();
    for (int64_t r0 = 0; r0 < m; r0 += kSampleRowsCapacity) {
      const int chunk = static_cast<int>(std::min<int64_t>(kSampleRowsCapacity, m - r0));
      const int slot = async_rows_slot_;
      async_rows_slot_ ^= 1;
      TANDEM_CUDA_CHECK(cudaEventSynchronize(async_rows_uploaded_[slot]));
      auto* rows_host = static_cast<cuda::SamplingRowDevice*>(async_rows_host_[slot]);
      for (int i = 0; i < chunk; ++i) {
        const SamplingRow& r = rows[r0 + i];
        rows_host[i] = cuda::SamplingRowDevice{r.temperature, r.top_k, r.top_p, r.min_p, r.seed, r.step};
      }
      TANDEM_CUDA_CHECK(cudaMemcpyAsync(sample_rows_dev_, rows_host, sizeof(cuda::SamplingRowDevice) * chunk,
                                        cudaMemcpyHostToDevice, stream_));
      TANDEM_CUDA_CHECK(cudaEventRecord(async_rows_uploaded_[slot], stream_));
      cuda::launch_sample(logits.as<float>() + r0 * vocab, chunk, vocab,
                          static_cast<const cuda::SamplingRowDevice*>(sample_rows_dev_), ids.as<int32_t>() + r0,
                          stream_);
      check_launch("sample");
    }
  }

  void scatter_ids(const TensorView& src, const TensorView& src_index, const TensorView& dst_index,
                   TensorView dst) override {
    check_on_device(src, DType::kI32, "scatter_ids src");
    check_on_device(src_index, DType::kI32, "scatter_ids src_index");
    check_on_device(dst_index, DType::kI32, "scatter_ids dst_index");
    check_on_device(dst, DType::kI32, "scatter_ids dst");
    const int m = static_cast<int>(src_index.numel());
    TANDEM_CHECK(dst_index.numel() >= m, "scatter_ids: {} destinations for {} ids", dst_index.numel(), m);
    if (m == 0) return;
    use_device();
    cuda::launch_scatter_ids(src.as<int32_t>(), src_index.as<int32_t>(), dst_index.as<int32_t>(), dst.as<int32_t>(), m,
                             stream_);
    check_launch("scatter_ids");
  }

  // ---- graphs ----
  bool supports_graphs() const override { return true; }
  Status begin_capture() override {
    use_device();
    TANDEM_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    capturing_ = true;
    return Status::Ok();
  }
  Result<int> end_capture() override {
    use_device();
    cudaGraph_t graph = nullptr;
    cudaError_t err = cudaStreamEndCapture(stream_, &graph);
    capturing_ = false;
    if (err != cudaSuccess) {
      cudaGetLastError();
      if (graph) cudaGraphDestroy(graph);
      return InternalError("cudaStreamEndCapture failed (an op did something not capturable?): {}",
                           cudaGetErrorString(err));
    }
    cudaGraphExec_t exec = nullptr;
    err = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (err != cudaSuccess) {
      cudaGetLastError();
      return InternalError("cudaGraphInstantiate failed: {}", cudaGetErrorString(err));
    }
    graphs_.push_back(exec);
    return static_cast<int>(graphs_.size()) - 1;
  }
  Status replay_graph(int graph_id) override {
    if (graph_id < 0 || graph_id >= static_cast<int>(graphs_.size()))
      return InvalidArgumentError("no CUDA graph {} (have {})", graph_id, graphs_.size());
    use_device();
    TANDEM_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(graphs_[graph_id], stream_));
    return Status::Ok();
  }

 private:
  void matmul_into(const TensorView& x, const TensorView& w, TensorView out, bool accumulate) {
    check_on_device(x, DType::kBF16, "matmul x");
    check_on_device(w, DType::kBF16, "matmul w");
    TANDEM_CHECK(out.device == Device::kCuda && (out.dtype == DType::kBF16 || out.dtype == DType::kF32),
                 "matmul out must be bf16 or f32 on cuda, got {}", dtype_name(out.dtype));
    TANDEM_CHECK(w.ndim == 2, "matmul w must be 2-D, got {}", w.shape_string());
    const int64_t n = w.dim(0), k = w.dim(1);
    TANDEM_CHECK(k > 0 && x.numel() % k == 0, "matmul x {} vs w {}", x.shape_string(), w.shape_string());
    const int64_t m = x.numel() / k;
    TANDEM_CHECK(out.numel() == m * n, "matmul out {} for [{}, {}]", out.shape_string(), m, n);
    use_device();
    if (m <= gemv_max_m_ && cuda::gemv_supported(x.data, w.data, m, k) && n <= (int64_t{1} << 30)) {
      cuda::launch_gemv(x.data, w.data, out.data, out.dtype == DType::kF32, accumulate, static_cast<int>(m),
                        static_cast<int>(n), static_cast<int>(k), stream_);
      check_launch("gemv");
      return;
    }
    gemm_->run(x.data, w.data, out.data, m, n, k, out.dtype == DType::kF32 ? CUDA_R_32F : CUDA_R_16BF, accumulate,
               stream_);
  }

  struct AttentionPlan {
    bool valid = false;
    int num_q_heads = 0;
    int num_seqs = 0;
    int num_tokens = 0;
    int num_decode = 0;
    int num_splits = 1;
    int64_t num_work_items = 0;
    bool flashinfer_prefill = false;  // prefill sequences run on FlashInfer FA2 (fi_prefill_), not the work list
    bool fa3_prefill = false;         // prefill sequences run on FlashInfer's sm90 kernel (fa3_prefill_)
  };

  // FA3 (sm90) or FA2 for head_dim 128 prefill. TANDEM_CUDA_PREFILL_ATTENTION=fa2|fa3 forces one (A/B
  // measurements); unset, FA3 is used when compiled in and the device is sm_90.
  Status choose_prefill_path() {
    const char* e = std::getenv("TANDEM_CUDA_PREFILL_ATTENTION");
    const std::string choice = e ? e : "";
    // Compiled in, sm_90, and the kernel loads (this also sets its shared-memory attribute once).
    const cudaError_t fa3_err = cuda::fa3_prefill_available(device_id_);
    if (fa3_err != cudaSuccess) cudaGetLastError();  // not sticky: clear it for the next launch check
    const bool fa3_here = fa3_err == cudaSuccess;
    if (choice.empty()) {
      fa3_allowed_ = fa3_here;
    } else if (choice == "fa2") {
      fa3_allowed_ = false;
    } else if (choice == "fa3") {
      if (!fa3_here)
        return FailedPreconditionError("TANDEM_CUDA_PREFILL_ATTENTION=fa3 but FA3 is unavailable ({})",
                                       !cuda::fa3_prefill_compiled()     ? "built without the CUTLASS headers"
                                       : fa3_err == cudaErrorNotSupported ? "the device is not sm_90"
                                                                          : cudaGetErrorString(fa3_err));
      fa3_allowed_ = true;
    } else {
      return InvalidArgumentError("TANDEM_CUDA_PREFILL_ATTENTION must be fa2 or fa3, got '{}'", choice);
    }
    return Status::Ok();
  }

  // Upper bound on prefill tiles from the batch shape alone (so a captured grid fits every batch of
  // that shape): each sequence's last tile may be partial.
  static int64_t work_item_bound(int num_tokens, int num_seqs, int num_decode, int tpt) {
    const int64_t prefill_tokens = num_tokens - num_decode;  // decodes have one token each
    const int64_t prefill_seqs = num_seqs - num_decode;
    if (prefill_seqs <= 0) return 0;
    return (prefill_tokens + tpt - 1) / tpt + prefill_seqs;
  }

  // Decode split scratch bounds (allocated in init(), checked in prepare_attention()). Splits > 1 only
  // while the decode blocks (seq x head group, one split counter each) stay under
  // kDecodeSplitBlocksPerSm * SMs, and decode_num_splits() keeps blocks x splits under the same bound.
  // A CUDA-core block covers decode_head_group() <= 4 q heads and a tensor-core block one kv head's G <= 8
  // (with at most one block per SM, far fewer blocks), so 8 partial entries per (block, split) bound
  // both; prepare_attention() checks the product.
  int64_t decode_split_counter_entries() const { return int64_t{cuda::kDecodeSplitBlocksPerSm} * sm_count_; }
  int64_t decode_partial_entries() const { return decode_split_counter_entries() * 8; }

  void use_device() const {
    int cur = -1;
    cudaGetDevice(&cur);
    if (cur != device_id_) TANDEM_CUDA_CHECK(cudaSetDevice(device_id_));
  }
  void check_launch(const char* op) const {
    cudaError_t err = cudaGetLastError();
    TANDEM_CHECK(err == cudaSuccess, "cuda {} launch failed: {}", op, cudaGetErrorString(err));
  }
  static void check_on_device(const TensorView& t, DType dtype, const char* what) {
    TANDEM_CHECK(t.device == Device::kCuda && t.dtype == dtype, "{} must be {} on cuda, got {} on {}", what,
                 dtype_name(dtype), dtype_name(t.dtype), device_name(t.device));
  }
  static void check_kv(const KvCacheView& kv, int layer) {
    TANDEM_CHECK(kv.device == Device::kCuda && kv.layout.dtype == DType::kBF16 && layer >= 0 &&
                     layer < kv.layout.num_layers,
                 "KV pool must be bf16 on cuda (layer {} of {})", layer, kv.layout.num_layers);
  }
  static cuda::KvPoolLayer pool_layer(const KvCacheView& kv, int layer) {
    cuda::KvPoolLayer p;
    p.base = kv.base;
    p.layer_offset = static_cast<int64_t>(layer) * kv.layout.elems_per_layer_block();
    p.elems_per_block = kv.layout.elems_per_block();
    p.elems_per_page = kv.layout.elems_per_page();
    p.block_size = kv.layout.block_size;
    p.num_kv_heads = kv.layout.num_kv_heads;
    p.head_dim = kv.layout.head_dim;
    return p;
  }

  Result<void*> device_alloc(size_t bytes) {
    void* p = nullptr;
    TANDEM_CUDA_RETURN_IF_ERROR(cudaMalloc(&p, bytes));
    device_allocs_.push_back(p);
    return p;
  }
  Result<void*> host_alloc(size_t bytes) {
    void* p = nullptr;
    TANDEM_CUDA_RETURN_IF_ERROR(cudaMallocHost(&p, bytes));
    host_allocs_.push_back(p);
    return p;
  }
  // Grows the prefill work list. Old buffers stay alive (a captured graph may still point at them).
  Status ensure_work_capacity(int64_t items) {
    if (items <= work_capacity_) return Status::Ok();
    const int64_t cap = std::max<int64_t>(items, 2 * work_capacity_);
    if (work_host_) TANDEM_CUDA_RETURN_IF_ERROR(cudaEventSynchronize(plan_copy_done_));
    TANDEM_ASSIGN_OR_RETURN(void* d, device_alloc(sizeof(int32_t) * 2 * cap));
    TANDEM_ASSIGN_OR_RETURN(void* h, host_alloc(sizeof(int32_t) * 2 * cap));
    work_dev_ = static_cast<int32_t*>(d);
    work_host_ = static_cast<int32_t*>(h);
    work_capacity_ = cap;
    return Status::Ok();
  }

  int device_id_;
  int sm_count_ = 0;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t plan_copy_done_ = nullptr;
  std::unique_ptr<cuda::CublasLtGemm> gemm_;
  std::vector<cudaGraphExec_t> graphs_;
  std::vector<void*> device_allocs_;
  std::vector<void*> host_allocs_;

  AttentionPlan plan_;
  bool capturing_ = false;  // between begin_capture() and end_capture()
  // Measured on H100 (PERF_NOTES.md): the GEMV beats cuBLASLt at M <= 2 on every Llama-8B shape (2.3-3.1
  // vs 2.0-2.8 TB/s) but loses at M >= 4 on o_proj and down_proj.
  int gemv_max_m_ = 2;
  cuda::DecodeScratch decode_scratch_;  // split partials and counters (device)
  int32_t* work_dev_ = nullptr;
  int32_t* work_host_ = nullptr;
  int64_t work_capacity_ = 0;
  cuda::PrefillAttentionPlan fi_prefill_;
  cuda::Fa3PrefillPlan fa3_prefill_;
  bool fa3_allowed_ = false;  // choose_prefill_path()

  void* sample_rows_dev_ = nullptr;
  void* sample_ids_dev_ = nullptr;
  void* async_rows_host_[2] = {nullptr, nullptr};
  cudaEvent_t async_rows_uploaded_[2] = {nullptr, nullptr};
  int async_rows_slot_ = 0;
};

}  // namespace

Result<std::unique_ptr<Backend>> make_cuda_backend(int device_id) {
  const int count = cuda_device_count();
  if (device_id < 0 || device_id >= count)
    return UnavailableError("CUDA device {} requested but {} device(s) are visible", device_id, count);
  auto backend = std::make_unique<CudaBackend>(device_id);
  Status st = backend->init();
  if (!st.ok()) return st.with_context(fmt::format("creating the CUDA backend on device {}", device_id));
  return std::unique_ptr<Backend>(std::move(backend));
}

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

}  // namespace tandem
