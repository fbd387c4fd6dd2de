// SampleRequest: one prompt of a serving benchmark dataset (vLLM's SampleRequest).
#pragma once

#include <string>

namespace tandem::bench {

struct SampleRequest {
  std::string prompt;
  int prompt_len = 0;           // prompt tokens as the server will count them (special tokens included)
  int expected_output_len = 0;  // max_tokens sent with the request
  std::string request_id;       // sent as x-request-id
};

}  // namespace tandem::bench
