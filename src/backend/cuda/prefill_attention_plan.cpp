// PrefillAttentionPlan (see prefill_attention_plan.h): FlashInfer prefill work lists at fixed addresses.
#include "backend/cuda/prefill_attention_plan.h"

#include <algorithm>
#include <functional>

#include "backend/cuda/cuda_check.h"

namespace tandem::cuda {
namespace {

constexpr int64_t kInitialRequests = 256;
constexpr int64_t kInitialPages = 32768;
constexpr int64_t kInitialCtas = 8192;

}  // namespace

Status check_prefill_sequence(const AttentionMetadata& md, int s, int block_size, const char* plan) {
  const int ctx = md.h_context_lens[s];
  const int q_len = md.h_query_start[s + 1] - md.h_query_start[s];
  if (q_len < 0 || ctx < q_len || (ctx + block_size - 1) / block_size > md.max_blocks_per_seq)
    return InvalidArgumentError("{}: sequence {} has {} query tokens, context {}, {} blocks per seq", plan, s, q_len,
                                ctx, md.max_blocks_per_seq);
  return Status::Ok();
}

Status PrefillAttentionPlan::init() {
  TANDEM_RETURN_IF_ERROR(buf_.init("prefill plan"));
  return ensure_capacity(Capacity{kInitialRequests, kInitialPages, kInitialCtas});
}

int64_t PrefillAttentionPlan::cta_bound(int64_t prefill_tokens, int64_t prefill_seqs, int group_size) {
  if (prefill_seqs <= 0) return 0;
  // Each request's last tile may be partial: sum ceil(a_i) <= ceil(sum a_i) + count.
  return (prefill_tokens * group_size + kFlashInferPrefillTileQ - 1) / kFlashInferPrefillTileQ + prefill_seqs;
}

PrefillAttentionPlan::Offsets PrefillAttentionPlan::offsets_for(const Capacity& c) {
  Offsets o{};
  int64_t at = 0;
  auto take = [&](int64_t n) {
    const int64_t here = at;
    at += StagedPlanBuffer::aligned_elems(n);
    return here;
  };
  o.q_indptr = take(c.requests + 1);
  o.kv_indptr = take(c.requests + 1);
  o.last_page_len = take(c.requests);
  o.kv_indices = take(c.pages);
  o.request = take(c.ctas);
  o.qo_tile = take(c.ctas);
  o.kv_tile = take(c.ctas);
  o.chunk = take(1);
  o.mask = take((c.ctas + 3) / 4);  // bools, 4 per int32
  o.total = at;
  return o;
}

Status PrefillAttentionPlan::ensure_capacity(const Capacity& need) {
  if (buf_.allocated() && need.requests <= cap_.requests && need.pages <= cap_.pages && need.ctas <= cap_.ctas)
    return Status::Ok();
  Capacity c;
  c.requests = StagedPlanBuffer::grown(need.requests, cap_.requests);
  c.pages = StagedPlanBuffer::grown(need.pages, cap_.pages);
  c.ctas = StagedPlanBuffer::grown(need.ctas, cap_.ctas);
  const Offsets o = offsets_for(c);
  TANDEM_RETURN_IF_ERROR(buf_.reallocate(o.total));
  int32_t* dev = buf_.dev();
  cap_ = c;
  off_ = o;
  work_.q_indptr = dev + o.q_indptr;
  work_.kv_indptr = dev + o.kv_indptr;
  work_.last_page_len = dev + o.last_page_len;
  work_.kv_indices = dev + o.kv_indices;
  work_.request_indices = dev + o.request;
  work_.qo_tile_indices = dev + o.qo_tile;
  work_.kv_tile_indices = dev + o.kv_tile;
  work_.kv_chunk_size = dev + o.chunk;
  work_.block_valid_mask = reinterpret_cast<bool*>(dev + o.mask);
  return Status::Ok();
}

Status PrefillAttentionPlan::build(const AttentionMetadata& md, int first_seq, int num_q_heads, int num_kv_heads,
                                   int block_size, cudaStream_t stream) {
  if (num_kv_heads <= 0 || num_q_heads % num_kv_heads != 0 || block_size <= 0)
    return InvalidArgumentError("prefill plan: {} q heads over {} kv heads, block size {}", num_q_heads, num_kv_heads,
                                block_size);
  const int group = num_q_heads / num_kv_heads;
  const int num_requests = std::max(0, md.num_seqs - first_seq);
  if (num_requests == 0) {
    // Nothing to plan or upload (decode-only step): a zero grid makes the launch a no-op.
    work_.num_requests = 0;
    work_.num_ctas = 0;
    return Status::Ok();
  }
  const int64_t prefill_tokens = md.h_query_start[md.num_seqs] - md.h_query_start[first_seq];
  const int64_t num_ctas = cta_bound(prefill_tokens, num_requests, group);
  int64_t num_pages = 0;
  int max_ctx = 0;
  for (int s = first_seq; s < md.num_seqs; ++s) {
    TANDEM_RETURN_IF_ERROR(check_prefill_sequence(md, s, block_size, "prefill plan"));
    const int ctx = md.h_context_lens[s];
    num_pages += (ctx + block_size - 1) / block_size;
    max_ctx = std::max(max_ctx, ctx);
  }
  TANDEM_RETURN_IF_ERROR(ensure_capacity(Capacity{num_requests, num_pages, num_ctas}));
  // The previous step's upload must have left the pinned staging before it is overwritten.
  TANDEM_RETURN_IF_ERROR(buf_.begin_write());

  int32_t* host = buf_.host();
  int32_t* q_indptr = host + off_.q_indptr;
  int32_t* kv_indptr = host + off_.kv_indptr;
  int32_t* last_page_len = host + off_.last_page_len;
  int32_t* kv_indices = host + off_.kv_indices;
  tile_order_.clear();
  kv_indptr[0] = 0;
  for (int r = 0; r < num_requests; ++r) {
    const int s = first_seq + r;
    const int ctx = md.h_context_lens[s];
    const int q_len = md.h_query_start[s + 1] - md.h_query_start[s];
    const int pages = (ctx + block_size - 1) / block_size;
    q_indptr[r] = md.h_query_start[s];
    std::copy_n(md.h_block_tables + static_cast<int64_t>(s) * md.max_blocks_per_seq, pages,
                kv_indices + kv_indptr[r]);
    kv_indptr[r + 1] = kv_indptr[r] + pages;
    last_page_len[r] = pages > 0 ? ctx - (pages - 1) * block_size : 0;
    const int tiles = static_cast<int>((static_cast<int64_t>(q_len) * group + kFlashInferPrefillTileQ - 1) /
                                       kFlashInferPrefillTileQ);
    for (int t = 0; t < tiles; ++t) {
      // Causal work of the tile ~ the context its last row sees.
      const int64_t last_tok =
          std::min<int64_t>(q_len, (static_cast<int64_t>(t + 1) * kFlashInferPrefillTileQ + group - 1) / group);
      const int64_t kv_end = ctx - q_len + last_tok;
      tile_order_.push_back((kv_end << 40) | (static_cast<int64_t>(r) << 20) | t);
    }
  }
  q_indptr[num_requests] = md.h_query_start[md.num_seqs];
  TANDEM_CHECK(static_cast<int64_t>(tile_order_.size()) <= num_ctas, "prefill plan: {} tiles over bound {}",
               tile_order_.size(), num_ctas);
  std::sort(tile_order_.begin(), tile_order_.end(), std::greater<int64_t>());
  int32_t* request = host + off_.request;
  int32_t* qo_tile = host + off_.qo_tile;
  int32_t* kv_tile = host + off_.kv_tile;
  bool* mask = reinterpret_cast<bool*>(host + off_.mask);
  for (int64_t i = 0; i < num_ctas; ++i) {
    const bool valid = i < static_cast<int64_t>(tile_order_.size());
    request[i] = valid ? static_cast<int32_t>((tile_order_[i] >> 20) & 0xFFFFF) : 0;
    qo_tile[i] = valid ? static_cast<int32_t>(tile_order_[i] & 0xFFFFF) : 0;
    kv_tile[i] = 0;
    mask[i] = valid;
  }
  host[off_.chunk] = std::max(max_ctx, 1);

  // Page lists: only the used prefix of each array goes up. The per-CTA arrays, chunk and mask go up
  // whole (one copy at capacity size; entries past num_ctas are never read).
  // q_indptr, kv_indptr and last_page_len are adjacent: one copy of the three regions.
  TANDEM_RETURN_IF_ERROR(buf_.upload(off_.q_indptr, off_.last_page_len + num_requests - off_.q_indptr, stream));
  TANDEM_RETURN_IF_ERROR(buf_.upload(off_.kv_indices, num_pages, stream));
  // request/qo_tile/kv_tile/chunk/mask: one copy from request up to the end of the mask.
  TANDEM_RETURN_IF_ERROR(buf_.upload(off_.request, off_.total - off_.request, stream));
  TANDEM_RETURN_IF_ERROR(buf_.end_upload(stream));
  work_.num_requests = num_requests;
  work_.num_ctas = static_cast<int>(num_ctas);
  return Status::Ok();
}

}  // namespace tandem::cuda
