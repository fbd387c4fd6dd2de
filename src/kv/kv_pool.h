// KvPool: the engine's KV cache, one backend allocation of num_blocks * layout.block_bytes() in the
// block-major layout of backend/kv_cache_view.h. Owns the memory; hands out a KvCacheView.
#pragma once

#include <cstdint>
#include <memory>

#include "backend/backend.h"
#include "backend/buffer.h"
#include "backend/kv_cache_view.h"
#include "common/status.h"

namespace tandem {

class KvPool {
 public:
  // Allocates and zero-fills the pool (so never-written slots hold zeros, not garbage).
  static Result<std::unique_ptr<KvPool>> create(Backend& backend, const KvLayout& layout, int64_t num_blocks);

  const KvCacheView& view() const { return view_; }
  int64_t num_blocks() const { return view_.num_blocks; }
  size_t bytes() const { return buffer_.size(); }

 private:
  KvPool() = default;
  Buffer buffer_;
  KvCacheView view_;
};

}  // namespace tandem
