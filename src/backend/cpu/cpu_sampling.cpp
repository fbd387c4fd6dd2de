// Reference sampling (see cpu_sampling.h for the exact algorithm and hash).
#include "backend/cpu/cpu_sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace tandem {

uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t sampling_hash(uint64_t seed, uint64_t step, int32_t token_id) {
  return splitmix64(splitmix64(splitmix64(seed) ^ step) ^ static_cast<uint64_t>(static_cast<uint32_t>(token_id)));
}

float uniform_from_hash(uint64_t seed, uint64_t step, int32_t token_id) {
  uint64_t bits = (sampling_hash(seed, step, token_id) >> 40) + 1;  // 1 .. 2^24
  return static_cast<float>(bits) * (1.0f / 16777216.0f);
}

int32_t argmax_token(std::span<const float> logits) {
  if (logits.empty()) return -1;
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

namespace {

// Softmax of logits / temperature into probs (fp32, max-subtracted).
void softmax_with_temperature(std::span<const float> logits, float temperature, std::vector<float>& probs) {
  probs.resize(logits.size());
  float inv_t = 1.0f / temperature;
  float mx = -std::numeric_limits<float>::infinity();
  for (float l : logits) mx = std::max(mx, l * inv_t);
  float sum = 0.0f;
  for (size_t i = 0; i < logits.size(); ++i) {
    probs[i] = std::exp(logits[i] * inv_t - mx);
    sum += probs[i];
  }
  float inv = 1.0f / sum;
  for (float& p : probs) p *= inv;
}

}  // namespace

std::vector<uint8_t> sampling_keep_mask(std::span<const float> probs, const SamplingRow& row) {
  const int64_t v = static_cast<int64_t>(probs.size());
  std::vector<uint8_t> keep(v, 1);
  bool need_order = (row.top_k > 0 && row.top_k < v) || row.top_p < 1.0f;
  if (need_order) {
    std::vector<int32_t> order(v);
    std::iota(order.begin(), order.end(), 0);
    // Descending p, ties to the lower id: a strict total order, so the result is deterministic.
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      return probs[a] > probs[b] || (probs[a] == probs[b] && a < b);
    });
    if (row.top_k > 0 && row.top_k < v) {
      for (int64_t r = row.top_k; r < v; ++r) keep[order[r]] = 0;
    }
    if (row.top_p < 1.0f) {
      float cum = 0.0f;
      int64_t r = 0;
      for (; r < v; ++r) {
        cum += probs[order[r]];
        if (cum >= row.top_p) break;
      }
      for (int64_t q = r + 1; q < v; ++q) keep[order[q]] = 0;
    }
  }
  if (row.min_p > 0.0f) {
    float mx = *std::max_element(probs.begin(), probs.end());
    float threshold = row.min_p * mx;
    for (int64_t i = 0; i < v; ++i) {
      if (probs[i] < threshold) keep[i] = 0;
    }
  }
  return keep;
}

int32_t sample_token(std::span<const float> logits, const SamplingRow& row, std::vector<float>* scratch) {
  if (logits.empty()) return -1;
  if (row.temperature <= 0.0f || row.top_k == 1) return argmax_token(logits);
  std::vector<float> local;
  std::vector<float>& probs = scratch ? *scratch : local;
  softmax_with_temperature(logits, row.temperature, probs);
  std::vector<uint8_t> keep = sampling_keep_mask(probs, row);
  int32_t best = -1;
  float best_score = -1.0f;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (!keep[i]) continue;
    float e = -std::log(uniform_from_hash(row.seed, row.step, static_cast<int32_t>(i)));
    float score = probs[i] / e;  // e == 0 -> +inf (or NaN when p == 0, which never wins)
    if (std::isnan(score)) continue;
    if (best < 0 || score > best_score) {
      best = static_cast<int32_t>(i);
      best_score = score;
    }
  }
  return best < 0 ? argmax_token(logits) : best;
}

}  // namespace tandem
