// The KV pool's memory layout, shared by the backends (which read and write it), the kv module (which
// allocates it) and disaggregation (which moves blocks of it).
//
// Block-major: one allocation of num_blocks blocks; a block holds K and V of `block_size` tokens for all
// layers contiguously:  [block][layer][K|V][token_in_block][kv_head][head_dim].
// So a block is one contiguous transfer descriptor, and a layer's K (or V) pages are addressed with a
// fixed page stride (elems_per_block()) from k_layer_base(layer), as paged-attention kernels expect.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensor/dtype.h"

namespace tandem {

struct KvLayout {
  int num_layers = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int block_size = 16;
  DType dtype = DType::kF32;

  int64_t elems_per_token() const { return static_cast<int64_t>(num_kv_heads) * head_dim; }          // one of K/V, one layer
  int64_t elems_per_page() const { return static_cast<int64_t>(block_size) * elems_per_token(); }     // K (or V) of one layer of one block
  int64_t elems_per_layer_block() const { return 2 * elems_per_page(); }                             // K and V of one layer of one block
  int64_t elems_per_block() const { return num_layers * elems_per_layer_block(); }
  size_t block_bytes() const { return static_cast<size_t>(elems_per_block()) * dtype_size(dtype); }

  // Element offsets from the pool base.
  int64_t k_offset(int64_t block, int layer) const { return block * elems_per_block() + layer * elems_per_layer_block(); }
  int64_t v_offset(int64_t block, int layer) const { return k_offset(block, layer) + elems_per_page(); }
  // Offset of token `slot % block_size` of block `slot / block_size`, head `h`, in K (add elems_per_page() for V).
  int64_t k_slot_offset(int64_t slot, int layer, int head) const {
    return k_offset(slot / block_size, layer) + (slot % block_size) * elems_per_token() + static_cast<int64_t>(head) * head_dim;
  }

  bool operator==(const KvLayout&) const = default;
};

// A pool of KV blocks in one backend allocation.
struct KvCacheView {
  void* base = nullptr;
  int64_t num_blocks = 0;
  KvLayout layout;
  Device device = Device::kCpu;
};

}  // namespace tandem
