// Merging the two legs of a non-streaming disaggregated request into the one answer the client sees:
// text = first token text (prefill) + decode text, logprobs concatenated, finish_reason and usage from
// the decode leg (usage adjusted so completion_tokens counts every token once), one id.
#pragma once

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "proxy/request_rewriter.h"

namespace tandem::proxy {

// The prefill answer alone, as the final answer (the first token ended the request).
json finalize_prefill_only(const json& prefill_response);

// Prefill answer + decode answer -> the client's answer. Errors: either has no choices.
Result<json> merge_responses(ApiKind kind, const json& prefill_response, const json& decode_response,
                             bool decode_usage_counts_first_token);

// Removes the proxy-internal fields (kv_transfer_params) from an answer relayed as is.
void strip_internal_fields(json& response);

}  // namespace tandem::proxy
