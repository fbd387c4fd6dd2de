// Sampler: see sampler.h.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "backend/cpu/cpu_sampling.h"

namespace tandem {

Sampler::Sampler(Backend& backend, int vocab_size, std::vector<int32_t> eos_token_ids)
    : backend_(backend), vocab_(vocab_size), eos_(std::move(eos_token_ids)) {
  host_row_.resize(vocab_size);
  host_row2_.resize(vocab_size);
  counts_.assign(vocab_size, 0);
}

SamplingRow Sampler::row_for(const Request& r) const {
  SamplingRow row;
  row.temperature = r.sampling.temperature;
  row.top_k = r.sampling.top_k;
  row.top_p = r.sampling.top_p;
  row.min_p = r.sampling.min_p;
  row.seed = r.seed;
  row.step = static_cast<uint64_t>(r.num_output_tokens());
  return row;
}

bool Sampler::can_sample_on_device(std::span<Request* const> reqs) const {
  for (const Request* r : reqs) {
    if (needs_host(*r)) return false;
    if (r->forced_first_token && r->num_output_tokens() == 0) return false;
  }
  return true;
}

void Sampler::sample_to_device(const TensorView& logits, std::span<Request* const> reqs, TensorView ids) {
  if (reqs.empty()) return;
  rows_.resize(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) rows_[i] = row_for(*reqs[i]);
  backend_.sample_to_device(logits.rows(0, static_cast<int64_t>(reqs.size())), rows_, ids);
}

bool Sampler::needs_host(const Request& r) const {
  const SamplingParams& p = r.sampling;
  if (p.needs_penalties() || p.logprobs.has_value()) return true;
  if (r.num_output_tokens() < p.min_tokens && (!p.stop_token_ids.empty() || (!p.ignore_eos && !eos_.empty()))) {
    return true;
  }
  return false;
}

void Sampler::apply_penalties(std::span<float> logits, const Request& req, std::vector<int32_t>* counts) {
  const SamplingParams& p = req.sampling;
  const int32_t V = static_cast<int32_t>(logits.size());
  auto valid = [&](int32_t t) { return t >= 0 && t < V; };
  if (p.repetition_penalty != 1.0f) {
    // Each distinct token once: mark with the counts array, then clear.
    for (int32_t t : req.tokens) {
      if (!valid(t) || (*counts)[t]) continue;
      (*counts)[t] = 1;
      float& l = logits[t];
      l = l > 0 ? l / p.repetition_penalty : l * p.repetition_penalty;
    }
    for (int32_t t : req.tokens)
      if (valid(t)) (*counts)[t] = 0;
  }
  if (p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f) {
    auto out = req.output();
    for (int32_t t : out)
      if (valid(t)) (*counts)[t]++;
    for (int32_t t : out) {
      if (!valid(t) || (*counts)[t] == 0) continue;
      logits[t] -= p.frequency_penalty * static_cast<float>((*counts)[t]) + p.presence_penalty;
      (*counts)[t] = 0;  // apply once per distinct token
    }
  }
}

TokenLogprob Sampler::compute_logprobs(std::span<const float> logits, int32_t chosen, int top_n) {
  const int32_t V = static_cast<int32_t>(logits.size());
  float mx = -std::numeric_limits<float>::infinity();
  for (float l : logits) mx = std::max(mx, l);
  double sum = 0.0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - mx);
  const float lse = mx + static_cast<float>(std::log(sum));
  TokenLogprob lp;
  lp.token_id = chosen;
  lp.logprob = (chosen >= 0 && chosen < V) ? logits[chosen] - lse : -std::numeric_limits<float>::infinity();
  top_n = std::min(top_n, static_cast<int>(V));
  if (top_n > 0) {
    std::vector<int32_t> idx(V);
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + top_n, idx.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (int i = 0; i < top_n; ++i) lp.top.emplace_back(idx[i], logits[idx[i]] - lse);
  }
  return lp;
}

void Sampler::sample(const TensorView& logits, std::span<Request* const> reqs, std::vector<int32_t>* tokens,
                     std::vector<std::optional<TokenLogprob>>* logprobs) {
  const size_t m = reqs.size();
  tokens->assign(m, 0);
  logprobs->assign(m, std::nullopt);
  if (m == 0) return;
  rows_.resize(m);
  for (size_t i = 0; i < m; ++i) rows_[i] = row_for(*reqs[i]);
  backend_.sample(logits.rows(0, static_cast<int64_t>(m)), rows_, *tokens);

  const float* base = logits.as<float>();
  for (size_t i = 0; i < m; ++i) {
    const Request& r = *reqs[i];
    if (!needs_host(r)) continue;
    backend_.copy_to_host(host_row_.data(), base + i * static_cast<size_t>(vocab_), sizeof(float) * vocab_);
    const SamplingParams& p = r.sampling;
    bool modified = false;
    std::span<float> row(host_row2_);
    std::copy(host_row_.begin(), host_row_.end(), host_row2_.begin());
    if (p.needs_penalties()) {
      apply_penalties(row, r, &counts_);
      modified = true;
    }
    if (r.num_output_tokens() < p.min_tokens) {
      const float ninf = -std::numeric_limits<float>::infinity();
      for (int32_t t : p.stop_token_ids)
        if (t >= 0 && t < vocab_) row[t] = ninf;
      if (!p.ignore_eos)
        for (int32_t t : eos_)
          if (t >= 0 && t < vocab_) row[t] = ninf;
      modified = true;
    }
    if (modified) (*tokens)[i] = sample_token(row, rows_[i], &scratch_);
    if (p.logprobs) (*logprobs)[i] = compute_logprobs(host_row_, (*tokens)[i], *p.logprobs);
  }
}

}  // namespace tandem
