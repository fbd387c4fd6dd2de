// Shared reading of tokenizer.json pipeline components (normalizer, pre_tokenizer, decoder): each is an
// object with a string "type", and type "Sequence" nests a list of components under a per-kind key.
#pragma once

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <string>

#include "common/status.h"

namespace tandem {

// Returns the component's type. For "Sequence", first calls add(child, child_where) for every element
// of j[list_key] (stopping at the first error), so callers only handle leaf types.
template <typename AddFn>
Result<std::string> read_component(const nlohmann::json& j, const std::string& where, const char* list_key,
                                   AddFn&& add) {
  if (!j.is_object()) return InvalidArgumentError("tokenizer.json: {} must be an object", where);
  auto type_it = j.find("type");
  if (type_it == j.end() || !type_it->is_string()) {
    return InvalidArgumentError("tokenizer.json: {}.type must be a string", where);
  }
  std::string type = type_it->get<std::string>();
  if (type == "Sequence") {
    auto it = j.find(list_key);
    if (it == j.end() || !it->is_array()) {
      return InvalidArgumentError("tokenizer.json: {}.{} must be an array", where, list_key);
    }
    for (size_t i = 0; i < it->size(); ++i) {
      TANDEM_RETURN_IF_ERROR(add((*it)[i], fmt::format("{}.{}[{}]", where, list_key, i)));
    }
  }
  return type;
}

}  // namespace tandem
