// Reference sampling math shared by every backend (see SamplingRow in backend/backend.h), as free
// functions so the engine, the CPU backend and the CUDA backend's tests can use the same code.
//
// The random draw is counter-based, so a token's sample depends only on (logits, params, seed, step)
// and never on batch composition, thread count or device. The CUDA backend MUST reproduce this exactly:
//
//   splitmix64(z):                       // all arithmetic mod 2^64
//     z = z + 0x9E3779B97F4A7C15
//     z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
//     z = (z ^ (z >> 27)) * 0x94D049BB133111EB
//     return z ^ (z >> 31)
//
//   hash_draw(seed, step, token_id) =
//     splitmix64( splitmix64( splitmix64(seed) ^ step ) ^ (uint64_t)(uint32_t)token_id )
//
//   uniform_from_hash(seed, step, token_id) =
//     (float)((hash_draw >> 40) + 1) * 2^-24          // 24 random bits -> a float in (0, 1], exact
//
//   exponential E_i = -logf(u_i)  (fp32; u_i == 1 gives E_i == 0 and p_i / E_i == +inf, which wins)
//
// Selection (exponential race): among kept ids, the winner maximizes p_i / E_i, ties to the lowest id.
// This samples id i with probability p_i / sum(kept p).
//
// Keep sets (all from p = softmax(logits / temperature) over the FULL vocabulary, not renormalized; an
// id is kept when it passes all three filters):
//   top_k > 0:  the top_k ids with largest p (ties broken toward the lower id);
//   top_p < 1:  sort p descending (ties: lower id first), keep the shortest prefix whose running sum
//               (fp32, in that order) reaches >= top_p; the first id is always kept;
//   min_p > 0:  p_i >= min_p * max(p).
// Greedy (temperature <= 0 or top_k == 1): argmax of logits, ties to the lowest id.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "backend/backend.h"

namespace tandem {

uint64_t splitmix64(uint64_t z);
uint64_t sampling_hash(uint64_t seed, uint64_t step, int32_t token_id);
// Uniform in (0, 1]: ((hash >> 40) + 1) * 2^-24.
float uniform_from_hash(uint64_t seed, uint64_t step, int32_t token_id);

// Argmax over logits, ties to the lowest id. Returns -1 for an empty row.
int32_t argmax_token(std::span<const float> logits);

// The full reference algorithm for one row. `scratch` is reused between calls to avoid allocation.
int32_t sample_token(std::span<const float> logits, const SamplingRow& row, std::vector<float>* scratch = nullptr);

// Which ids pass the keep filters (step 3), as 0/1 flags; exposed for tests of other backends.
// probs must already be softmax(logits / temperature).
std::vector<uint8_t> sampling_keep_mask(std::span<const float> probs, const SamplingRow& row);

}  // namespace tandem
