// CpuBackend: plain fp32 implementations of every Backend op, parallel over rows (or heads, or output
// columns) with a ThreadPool owned by the instance. Readability first: this is the oracle the CUDA ops
// are tested against. Every tensor must be fp32 except ids/positions/slots (i32). Views are contiguous
// except q/k/v of rope_and_cache_write and q of attention, which may be row-strided (TensorView::cols).
#include "backend/cpu/cpu_backend.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

#include "backend/cpu/cpu_sampling.h"
#include "common/thread_pool.h"

namespace tandem {
namespace {

void check_f32(const TensorView& t, const char* what) {
  TANDEM_CHECK(t.dtype == DType::kF32, "{}: CPU backend computes in float32, got {}", what, dtype_name(t.dtype));
}
void check_i32(const TensorView& t, const char* what) {
  TANDEM_CHECK(t.dtype == DType::kI32, "{}: expected int32, got {}", what, dtype_name(t.dtype));
}

// Dot product with four partial sums (lets the compiler vectorize without -ffast-math).
inline float dot(const float* a, const float* b, int64_t n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

inline void rms_norm_row(const float* x, const float* w, float eps, int64_t h, float* out) {
  double ss = 0;
  for (int64_t i = 0; i < h; ++i) ss += static_cast<double>(x[i]) * x[i];
  float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(h)) + eps);
  for (int64_t i = 0; i < h; ++i) out[i] = x[i] * inv * w[i];
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int num_threads) : pool_(num_threads) {}

  std::string name() const override { return "cpu"; }
  Device device() const override { return Device::kCpu; }
  DType compute_dtype() const override { return DType::kF32; }

  // Device memory is host memory here (64-byte aligned, Backend::allocate_host); an empty request gets an
  // empty Buffer (allocate_host would hold one byte for it).
  Result<Buffer> allocate(size_t bytes) override {
    if (bytes == 0) return Buffer();
    return allocate_host(bytes);
  }

  void memory_info(size_t* free_bytes, size_t* total_bytes) const override {
    long page = sysconf(_SC_PAGESIZE);
    long total = sysconf(_SC_PHYS_PAGES);
    long avail = sysconf(_SC_AVPHYS_PAGES);
    if (total_bytes) *total_bytes = total > 0 ? static_cast<size_t>(total) * page : 0;
    if (free_bytes) *free_bytes = avail > 0 ? static_cast<size_t>(avail) * page : 0;
  }
  void copy_to_device(void* dst, const void* src, size_t bytes) override { if (bytes) std::memcpy(dst, src, bytes); }
  void copy_to_host(void* dst, const void* src, size_t bytes) override { if (bytes) std::memcpy(dst, src, bytes); }
  void copy_device(void* dst, const void* src, size_t bytes) override { if (bytes) std::memmove(dst, src, bytes); }
  void synchronize() override {}

  void embedding(const TensorView& ids, const TensorView& table, TensorView out) override {
    check_i32(ids, "embedding ids");
    check_f32(table, "embedding table");
    check_f32(out, "embedding out");
    const int64_t n = ids.numel(), v = table.dim(0), h = table.dim(1);
    TANDEM_CHECK(out.dim(0) == n && out.row_elems() == h, "embedding out {} for {} ids x {}", out.shape_string(), n, h);
    const int32_t* id = ids.as<int32_t>();
    pool_.parallel_for(n, 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        float* dst = out.as<float>() + i * h;
        if (id[i] < 0 || id[i] >= v) {
          std::fill(dst, dst + h, 0.0f);
        } else {
          std::memcpy(dst, table.as<float>() + static_cast<int64_t>(id[i]) * h, h * sizeof(float));
        }
      }
    });
  }

  void rms_norm(const TensorView& x, const TensorView& w, float eps, TensorView out) override {
    check_f32(x, "rms_norm x");
    check_f32(w, "rms_norm w");
    check_f32(out, "rms_norm out");
    const int64_t n = x.dim(0), h = x.row_elems();
    TANDEM_CHECK(w.numel() == h && out.numel() == x.numel());
    pool_.parallel_for(n, 4, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) rms_norm_row(x.as<float>() + i * h, w.as<float>(), eps, h, out.as<float>() + i * h);
    });
  }

  void matmul(const TensorView& x, const TensorView& w, TensorView out) override {
    matmul_into(x, w, out, /*accumulate=*/false);
  }

  void matmul_add(const TensorView& x, const TensorView& w, TensorView out) override {
    matmul_into(x, w, out, /*accumulate=*/true);
  }

  void rope_and_cache_write(TensorView q, TensorView k, const TensorView& v, const TensorView& cos_sin_cache,
                            const AttentionMetadata& md, const KvCacheView& kv, int layer) override {
    check_f32(q, "rope q");
    check_f32(k, "rope k");
    check_f32(v, "rope v");
    check_f32(cos_sin_cache, "cos_sin_cache");
    const KvLayout& L = kv.layout;
    TANDEM_CHECK(L.dtype == DType::kF32, "CPU KV cache must be float32");
    const int64_t n = md.num_tokens, d = L.head_dim, half = d / 2;
    const int64_t hq = q.row_elems() / d, hk = L.num_kv_heads;
    TANDEM_CHECK(k.row_elems() == hk * d && v.row_elems() == hk * d && q.dim(0) >= n);
    const int64_t max_pos = cos_sin_cache.dim(0);
    float* kv_base = static_cast<float*>(kv.base);
    pool_.parallel_for(n, 4, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        int32_t pos = md.h_positions[t];
        TANDEM_CHECK(pos >= 0 && pos < max_pos, "position {} outside the RoPE table of {}", pos, max_pos);
        const float* cs = cos_sin_cache.as<float>() + static_cast<int64_t>(pos) * d;
        auto rotate = [&](float* x) {
          for (int64_t i = 0; i < half; ++i) {
            float x1 = x[i], x2 = x[i + half];
            x[i] = x1 * cs[i] - x2 * cs[half + i];
            x[i + half] = x2 * cs[i] + x1 * cs[half + i];
          }
        };
        for (int64_t h = 0; h < hq; ++h) rotate(q.as<float>() + t * q.stride0() + h * d);
        for (int64_t h = 0; h < hk; ++h) rotate(k.as<float>() + t * k.stride0() + h * d);
        int64_t slot = md.h_slot_mapping[t];
        if (slot < 0) continue;  // padding token: nothing cached
        TANDEM_CHECK(slot / L.block_size < kv.num_blocks, "slot {} outside the pool", slot);
        for (int64_t h = 0; h < hk; ++h) {
          int64_t off = L.k_slot_offset(slot, layer, static_cast<int>(h));
          std::memcpy(kv_base + off, k.as<float>() + t * k.stride0() + h * d, d * sizeof(float));
          std::memcpy(kv_base + off + L.elems_per_page(), v.as<float>() + t * v.stride0() + h * d, d * sizeof(float));
        }
      }
    });
  }

  void attention(const TensorView& q, const KvCacheView& kv, int layer, const AttentionMetadata& md, float scale,
                 TensorView out) override {
    check_f32(q, "attention q");
    check_f32(out, "attention out");
    const KvLayout& L = kv.layout;
    TANDEM_CHECK(L.dtype == DType::kF32, "CPU KV cache must be float32");
    const int64_t d = L.head_dim, hk = L.num_kv_heads, hq = q.row_elems() / d;
    TANDEM_CHECK(hq % hk == 0, "{} q heads not a multiple of {} kv heads", hq, hk);
    const int64_t group = hq / hk;
    const float* kv_base = static_cast<const float*>(kv.base);
    // Map each token to its sequence once.
    std::vector<int32_t> seq_of(md.num_tokens);
    for (int s = 0; s < md.num_seqs; ++s) {
      for (int t = md.h_query_start[s]; t < md.h_query_start[s + 1]; ++t) seq_of[t] = s;
    }
    // One work item per (token, q head).
    pool_.parallel_for(static_cast<int64_t>(md.num_tokens) * hq, 4, [&](int64_t b, int64_t e) {
      std::vector<float> scores;
      std::vector<float> acc(d);
      for (int64_t item = b; item < e; ++item) {
        const int64_t t = item / hq, h = item % hq, kvh = h / group;
        const int s = seq_of[t];
        const int64_t q_len = md.h_query_start[s + 1] - md.h_query_start[s];
        const int64_t ctx = md.h_context_lens[s];
        // The new tokens are the last q_len of ctx; this one sees cache positions [0, p].
        const int64_t p = ctx - q_len + (t - md.h_query_start[s]);
        const int32_t* table = md.h_block_tables + static_cast<int64_t>(s) * md.max_blocks_per_seq;
        const float* qv = q.as<float>() + t * q.stride0() + h * d;
        scores.resize(p + 1);
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j <= p; ++j) {
          int64_t slot = static_cast<int64_t>(table[j / L.block_size]) * L.block_size + j % L.block_size;
          scores[j] = dot(qv, kv_base + L.k_slot_offset(slot, layer, static_cast<int>(kvh)), d) * scale;
          mx = std::max(mx, scores[j]);
        }
        float sum = 0.0f;
        for (int64_t j = 0; j <= p; ++j) {
          scores[j] = std::exp(scores[j] - mx);
          sum += scores[j];
        }
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t j = 0; j <= p; ++j) {
          int64_t slot = static_cast<int64_t>(table[j / L.block_size]) * L.block_size + j % L.block_size;
          const float* vv = kv_base + L.k_slot_offset(slot, layer, static_cast<int>(kvh)) + L.elems_per_page();
          for (int64_t i = 0; i < d; ++i) acc[i] += scores[j] * vv[i];
        }
        float* o = out.as<float>() + t * hq * d + h * d;
        for (int64_t i = 0; i < d; ++i) o[i] = acc[i] / sum;
      }
    });
  }

  void silu_mul(const TensorView& gate_up, TensorView out) override {
    check_f32(gate_up, "silu_mul gate_up");
    check_f32(out, "silu_mul out");
    const int64_t n = gate_up.dim(0), inter = gate_up.row_elems() / 2;
    TANDEM_CHECK(out.numel() == n * inter);
    pool_.parallel_for(n, 4, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const float* g = gate_up.as<float>() + r * 2 * inter;
        const float* u = g + inter;
        float* o = out.as<float>() + r * inter;
        for (int64_t i = 0; i < inter; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
      }
    });
  }

  void gather_rows(const TensorView& x, const TensorView& row_ids, TensorView out) override {
    check_i32(row_ids, "gather_rows ids");
    const int64_t m = row_ids.numel();
    const size_t row_bytes = static_cast<size_t>(x.row_elems()) * dtype_size(x.dtype);
    TANDEM_CHECK(out.dtype == x.dtype && out.dim(0) >= m && out.row_elems() == x.row_elems());
    for (int64_t i = 0; i < m; ++i) {
      int32_t r = row_ids.as<int32_t>()[i];
      TANDEM_CHECK(r >= 0 && r < x.dim(0), "gather_rows: row {} of {}", r, x.dim(0));
      std::memcpy(static_cast<char*>(out.data) + i * row_bytes, static_cast<const char*>(x.data) + r * row_bytes, row_bytes);
    }
  }

  void scatter_ids(const TensorView& src, const TensorView& src_index, const TensorView& dst_index,
                   TensorView dst) override {
    check_i32(src, "scatter_ids src");
    check_i32(src_index, "scatter_ids src_index");
    check_i32(dst_index, "scatter_ids dst_index");
    check_i32(dst, "scatter_ids dst");
    const int64_t m = src_index.numel();
    TANDEM_CHECK(dst_index.numel() >= m, "scatter_ids: {} destinations for {} ids", dst_index.numel(), m);
    for (int64_t i = 0; i < m; ++i) {
      const int32_t s = src_index.as<int32_t>()[i], d = dst_index.as<int32_t>()[i];
      TANDEM_CHECK(s >= 0 && s < src.numel() && d >= 0 && d < dst.numel(), "scatter_ids: {} -> {} out of range", s, d);
      dst.as<int32_t>()[d] = src.as<int32_t>()[s];
    }
  }

  void sample(const TensorView& logits, std::span<const SamplingRow> rows, std::span<int32_t> out_host) override {
    check_f32(logits, "sample logits");
    const int64_t m = static_cast<int64_t>(rows.size()), v = logits.row_elems();
    TANDEM_CHECK(logits.dim(0) >= m && static_cast<int64_t>(out_host.size()) >= m);
    pool_.parallel_for(m, 1, [&](int64_t b, int64_t e) {
      std::vector<float> scratch;
      for (int64_t i = b; i < e; ++i) {
        out_host[i] = sample_token(std::span<const float>(logits.as<float>() + i * v, v), rows[i], &scratch);
      }
    });
  }

 private:
  void matmul_into(const TensorView& x, const TensorView& w, TensorView out, bool accumulate) {
    check_f32(x, "matmul x");
    check_f32(w, "matmul w");
    check_f32(out, "matmul out");
    const int64_t n = x.dim(0), k = x.row_elems(), nout = w.dim(0);
    TANDEM_CHECK(w.row_elems() == k, "matmul: x {} vs w {}", x.shape_string(), w.shape_string());
    TANDEM_CHECK(out.dim(0) == n && out.row_elems() == nout, "matmul out {}", out.shape_string());
    const float* xp = x.as<float>();
    const float* wp = w.as<float>();
    float* op = out.as<float>();
    // Parallel over output columns (weight rows): each weight row is read once per block of 8 x rows.
    pool_.parallel_for(nout, 8, [&](int64_t b, int64_t e) {
      for (int64_t i0 = 0; i0 < n; i0 += 8) {
        int64_t i1 = std::min(n, i0 + 8);
        for (int64_t j = b; j < e; ++j) {
          const float* wr = wp + j * k;
          for (int64_t i = i0; i < i1; ++i) {
            const float d = dot(xp + i * k, wr, k);
            op[i * nout + j] = accumulate ? op[i * nout + j] + d : d;
          }
        }
      }
    });
  }

  ThreadPool pool_;
};

}  // namespace

Result<std::unique_ptr<Backend>> make_cpu_backend(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (num_threads > 1024) return InvalidArgumentError("num_threads {} is too large", num_threads);
  return std::unique_ptr<Backend>(std::make_unique<CpuBackend>(num_threads));
}

}  // namespace tandem
