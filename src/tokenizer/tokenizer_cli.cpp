// tokenize / detokenize stream handling (see tokenizer_cli.h).
#include "tokenizer/tokenizer_cli.h"

#include <nlohmann/json.hpp>

namespace tandem {
namespace {

int hex4(std::string_view s, size_t pos) {
  if (pos + 4 > s.size()) return -1;
  int v = 0;
  for (size_t i = pos; i < pos + 4; ++i) {
    char c = s[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

std::string dump_ids(const std::vector<int32_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(ids[i]);
  }
  out += "]";
  return out;
}

// Parses a JSON array of integer ids.
bool parse_ids(std::string_view text, std::vector<int32_t>& ids, std::string& error) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_array()) {
    error = "expected a JSON array of token ids";
    return false;
  }
  ids.clear();
  for (size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_number_integer() || j[i].get<int64_t>() < INT32_MIN || j[i].get<int64_t>() > INT32_MAX) {
      error = "element " + std::to_string(i) + " is not a 32-bit integer token id";
      return false;
    }
    ids.push_back(static_cast<int32_t>(j[i].get<int64_t>()));
  }
  return true;
}

bool blank(std::string_view line) { return line.find_first_not_of(" \t\r") == std::string_view::npos; }

}  // namespace

std::string replace_lone_surrogate_escapes(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 >= s.size()) {
      out.push_back(s[i]);
      continue;
    }
    if (s[i + 1] != 'u') {  // any other escape: copy both characters
      out.push_back(s[i]);
      out.push_back(s[i + 1]);
      ++i;
      continue;
    }
    int v = hex4(s, i + 2);
    if (v >= 0xD800 && v <= 0xDBFF && i + 11 < s.size() && s[i + 6] == '\\' && s[i + 7] == 'u') {
      int lo = hex4(s, i + 8);
      if (lo >= 0xDC00 && lo <= 0xDFFF) {
        out.append(s.substr(i, 12));
        i += 11;
        continue;
      }
    }
    if (v >= 0xD800 && v <= 0xDFFF) {
      out += "\\uFFFD";
      i += 5;
      continue;
    }
    out.push_back(s[i]);
  }
  return out;
}

TokenizerCliOutput tokenize_stream(const Tokenizer& tok, std::string_view input, bool jsonl,
                                   bool add_special_tokens) {
  TokenizerCliOutput out;
  if (!jsonl) {
    out.text = dump_ids(tok.encode(input, add_special_tokens)) + "\n";
    return out;
  }
  size_t line_no = 0;
  for (size_t pos = 0; pos < input.size();) {
    size_t nl = input.find('\n', pos);
    std::string_view line = input.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? input.size() : nl + 1;
    ++line_no;
    if (blank(line)) continue;
    nlohmann::json j = nlohmann::json::parse(replace_lone_surrogate_escapes(line), nullptr, false);
    if (j.is_discarded() || !j.is_string()) {
      out.error = "line " + std::to_string(line_no) + ": expected a JSON string";
      return out;
    }
    out.text += dump_ids(tok.encode(j.get_ref<const std::string&>(), add_special_tokens));
    out.text += "\n";
  }
  return out;
}

TokenizerCliOutput detokenize_stream(const Tokenizer& tok, std::string_view input, bool jsonl,
                                     bool skip_special_tokens) {
  TokenizerCliOutput out;
  std::vector<int32_t> ids;
  std::string error;
  if (!jsonl) {
    if (!parse_ids(input, ids, error)) {
      out.error = error + " on stdin (use --jsonl for one array per line)";
      return out;
    }
    out.text = tok.decode(ids, skip_special_tokens);
    return out;
  }
  size_t line_no = 0;
  for (size_t pos = 0; pos < input.size();) {
    size_t nl = input.find('\n', pos);
    std::string_view line = input.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? input.size() : nl + 1;
    ++line_no;
    if (blank(line)) continue;
    if (!parse_ids(line, ids, error)) {
      out.error = "line " + std::to_string(line_no) + ": " + error;
      return out;
    }
    out.text += nlohmann::json(tok.decode(ids, skip_special_tokens)).dump(-1, ' ', false,
                                                                          nlohmann::json::error_handler_t::replace);
    out.text += "\n";
  }
  return out;
}

}  // namespace tandem
