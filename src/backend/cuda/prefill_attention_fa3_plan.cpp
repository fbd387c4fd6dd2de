// Fa3PrefillPlan (see prefill_attention_fa3_plan.h): FA3 prefill work lists at fixed addresses.
#include "backend/cuda/prefill_attention_fa3_plan.h"

#include <algorithm>
#include <functional>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/prefill_attention_plan.h"

namespace tandem::cuda {
namespace {

constexpr int64_t kInitialWorks = 16384;
constexpr int64_t kInitialPages = 32768;
// Fixed per-item cost in KV tiles (Q load, epilogue, pipeline fill) for the load balance.
constexpr int kItemOverheadTiles = 2;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

Status Fa3PrefillPlan::init(int num_ctas) {
  if (num_ctas <= 0) return InvalidArgumentError("fa3 prefill plan: {} CTAs", num_ctas);
  num_ctas_ = num_ctas;
  TANDEM_RETURN_IF_ERROR(buf_.init("fa3 prefill plan"));
  return ensure_capacity(Capacity{kInitialWorks, kInitialPages});
}

Fa3PrefillPlan::Offsets Fa3PrefillPlan::offsets_for(const Capacity& c) const {
  Offsets o{};
  int64_t at = 0;
  auto take = [&](int64_t n) {
    const int64_t here = at;
    at += StagedPlanBuffer::aligned_elems(n);
    return here;
  };
  o.work_indptr = take(num_ctas_ + 1);
  o.qo_tile = take(c.works);
  o.head = take(c.works);
  o.qo_indptr = take(c.works);
  o.kv_indptr = take(c.works);
  o.qo_len = take(c.works);
  o.kv_len = take(c.works);
  o.batch = take(c.works);
  o.kv_indices = take(c.pages);
  o.total = at;
  return o;
}

Status Fa3PrefillPlan::ensure_capacity(const Capacity& need) {
  if (buf_.allocated() && need.works <= cap_.works && need.pages <= cap_.pages) return Status::Ok();
  Capacity c;
  c.works = StagedPlanBuffer::grown(need.works, cap_.works);
  c.pages = StagedPlanBuffer::grown(need.pages, cap_.pages);
  const Offsets o = offsets_for(c);
  TANDEM_RETURN_IF_ERROR(buf_.reallocate(o.total));
  int32_t* dev = buf_.dev();
  cap_ = c;
  off_ = o;
  work_.work_indptr = dev + o.work_indptr;
  work_.qo_tile_indices = dev + o.qo_tile;
  work_.head_indices = dev + o.head;
  work_.qo_indptr = dev + o.qo_indptr;
  work_.kv_indptr = dev + o.kv_indptr;
  work_.qo_lens = dev + o.qo_len;
  work_.kv_lens = dev + o.kv_len;
  work_.batch_indices = dev + o.batch;
  work_.kv_indices = dev + o.kv_indices;
  return Status::Ok();
}

Status Fa3PrefillPlan::build(const AttentionMetadata& md, int first_seq, int num_q_heads, int num_kv_heads,
                             int block_size, cudaStream_t stream) {
  if (num_ctas_ <= 0) return FailedPreconditionError("fa3 prefill plan used before init()");
  if (num_kv_heads <= 0 || num_q_heads % num_kv_heads != 0 || block_size <= 0)
    return InvalidArgumentError("fa3 prefill plan: {} q heads over {} kv heads, block size {}", num_q_heads,
                                num_kv_heads, block_size);
  const int num_requests = std::max(0, md.num_seqs - first_seq);
  work_.num_q_rows = md.num_tokens;
  if (num_requests == 0) {
    // Decode-only step: a zero grid makes the launch a no-op (nothing is uploaded).
    work_.num_ctas = 0;
    return Status::Ok();
  }

  // Items: (request, q head, q tile), cost = causal KV tiles the tile visits + a fixed overhead.
  items_.clear();
  request_kv_offset_.assign(num_requests, 0);
  int64_t num_pages = 0;
  for (int r = 0; r < num_requests; ++r) {
    const int s = first_seq + r;
    TANDEM_RETURN_IF_ERROR(check_prefill_sequence(md, s, block_size, "fa3 prefill plan"));
    const int ctx = md.h_context_lens[s];
    const int q_len = md.h_query_start[s + 1] - md.h_query_start[s];
    request_kv_offset_[r] = static_cast<int32_t>(num_pages);
    num_pages += ceil_div(ctx, block_size);
    const int tiles = static_cast<int>(ceil_div(q_len, kFa3PrefillTileQ));
    for (int t = 0; t < tiles; ++t) {
      const int64_t kv_end = std::min<int64_t>(ctx, static_cast<int64_t>(t + 1) * kFa3PrefillTileQ + ctx - q_len);
      const int cost = static_cast<int>(ceil_div(kv_end, kFa3PrefillTileKv)) + kItemOverheadTiles;
      for (int h = 0; h < num_q_heads; ++h) items_.push_back(Item{cost, r, h, t});
    }
  }
  const int64_t num_works = static_cast<int64_t>(items_.size());
  TANDEM_RETURN_IF_ERROR(ensure_capacity(Capacity{num_works, num_pages}));
  // The previous step's upload must have left the pinned staging before it is overwritten.
  TANDEM_RETURN_IF_ERROR(buf_.begin_write());

  // Longest processing time first. Ties keep (tile, request, head) order, so heads of one KV range run
  // side by side (their K/V stays in L2).
  std::stable_sort(items_.begin(), items_.end(), [](const Item& a, const Item& b) { return a.cost > b.cost; });
  cta_items_.resize(num_ctas_);
  for (auto& v : cta_items_) v.clear();
  heap_.clear();
  for (int c = 0; c < num_ctas_; ++c) heap_.emplace_back(0, c);
  // std heap is a max-heap: greater<> turns it into a min-heap on (load, cta).
  const auto cmp = std::greater<std::pair<int64_t, int32_t>>();
  std::make_heap(heap_.begin(), heap_.end(), cmp);
  for (int32_t i = 0; i < static_cast<int32_t>(num_works); ++i) {
    std::pop_heap(heap_.begin(), heap_.end(), cmp);
    auto& least = heap_.back();
    cta_items_[least.second].push_back(i);
    least.first += items_[i].cost;
    std::push_heap(heap_.begin(), heap_.end(), cmp);
  }

  int32_t* host = buf_.host();
  int32_t* work_indptr = host + off_.work_indptr;
  int32_t* qo_tile = host + off_.qo_tile;
  int32_t* head = host + off_.head;
  int32_t* qo_indptr = host + off_.qo_indptr;
  int32_t* kv_indptr = host + off_.kv_indptr;
  int32_t* qo_len = host + off_.qo_len;
  int32_t* kv_len = host + off_.kv_len;
  int32_t* batch = host + off_.batch;
  int32_t* kv_indices = host + off_.kv_indices;
  int32_t w = 0;
  work_indptr[0] = 0;
  for (int c = 0; c < num_ctas_; ++c) {
    for (int32_t i : cta_items_[c]) {
      const Item& it = items_[i];
      const int s = first_seq + it.request;
      qo_tile[w] = it.tile;
      head[w] = it.head;
      qo_indptr[w] = md.h_query_start[s];
      kv_indptr[w] = request_kv_offset_[it.request];
      qo_len[w] = md.h_query_start[s + 1] - md.h_query_start[s];
      kv_len[w] = md.h_context_lens[s];
      batch[w] = it.request;
      ++w;
    }
    work_indptr[c + 1] = w;
  }
  for (int r = 0; r < num_requests; ++r) {
    const int s = first_seq + r;
    const int64_t pages = ceil_div(md.h_context_lens[s], block_size);
    std::copy_n(md.h_block_tables + static_cast<int64_t>(s) * md.max_blocks_per_seq, pages,
                kv_indices + request_kv_offset_[r]);
  }

  // Only the used prefix of each array goes up (the arrays sit at capacity-sized offsets).
  TANDEM_RETURN_IF_ERROR(buf_.upload(off_.work_indptr, num_ctas_ + 1, stream));
  for (int64_t offset : {off_.qo_tile, off_.head, off_.qo_indptr, off_.kv_indptr, off_.qo_len, off_.kv_len, off_.batch})
    TANDEM_RETURN_IF_ERROR(buf_.upload(offset, num_works, stream));
  TANDEM_RETURN_IF_ERROR(buf_.upload(off_.kv_indices, num_pages, stream));
  TANDEM_RETURN_IF_ERROR(buf_.end_upload(stream));
  work_.num_ctas = num_ctas_;
  return Status::Ok();
}

}  // namespace tandem::cuda
