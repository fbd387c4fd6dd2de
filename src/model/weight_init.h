// Deterministic pseudo-random weights (dummy loading and the test-model writer) and a small helper to
// run chunked host work on a few short-lived threads (weights are loaded once, so no pool is kept).
//
// Element i of the stream (seed, stream_id) is  mean + stddev * z_i  where z_i is an Irwin-Hall(4)
// variable (sum of four 16-bit uniforms from splitmix64, centred and scaled to unit variance): roughly
// normal, bounded by +-3.46, and independent of chunking and thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include "tensor/dtype.h"

namespace tandem {

// FNV-1a 64 of a tensor name: the stream id of that tensor's values.
uint64_t weight_stream_id(std::string_view name);

// Writes elements [begin, begin+count) of the stream into dst (f32/f16/bf16), dst[0] being element `begin`.
void fill_random_weights(uint64_t seed, uint64_t stream_id, float mean, float stddev, DType dtype, void* dst,
                         int64_t begin, int64_t count);

// Calls fn(begin, end) over [0, n) in chunks on up to num_threads threads (0: hardware concurrency).
void parallel_chunks(int64_t n, int64_t min_chunk, int num_threads, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace tandem
