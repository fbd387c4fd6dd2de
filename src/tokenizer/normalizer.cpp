// Normalizer chain (see normalizer.h); semantics follow tokenizers' normalizers/*.rs.
#include "tokenizer/normalizer.h"
#include "tokenizer/json_component.h"

#include "tokenizer/utf8.h"

namespace tandem {
namespace {

Result<std::string> get_string(const nlohmann::json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) {
    return InvalidArgumentError("tokenizer.json: {}.{} must be a string", where, key);
  }
  return it->get<std::string>();
}

}  // namespace

Status Normalizer::add_steps(const nlohmann::json& j, const std::string& where, std::vector<Step>& steps) {
  TANDEM_ASSIGN_OR_RETURN(const std::string type,
                          read_component(j, where, "normalizers", [&](const nlohmann::json& c, const std::string& w) {
                            return add_steps(c, w, steps);
                          }));
  if (type == "Sequence") return Status::Ok();
  Step step;
  if (type == "Prepend") {
    step.kind = Kind::kPrepend;
    TANDEM_ASSIGN_OR_RETURN(step.a, get_string(j, "prepend", where));
  } else if (type == "Replace") {
    TANDEM_ASSIGN_OR_RETURN(step.b, get_string(j, "content", where));
    auto p = j.find("pattern");
    if (p == j.end() || !p->is_object()) {
      return InvalidArgumentError("tokenizer.json: {}.pattern must be an object", where);
    }
    if (p->contains("String") && (*p)["String"].is_string()) {
      step.kind = Kind::kReplaceString;
      step.a = (*p)["String"].get<std::string>();
      if (step.a.empty()) return InvalidArgumentError("tokenizer.json: {}.pattern.String is empty", where);
    } else if (p->contains("Regex") && (*p)["Regex"].is_string()) {
      step.kind = Kind::kReplaceRegex;
      step.a = (*p)["Regex"].get<std::string>();
      auto re = Regex::compile(step.a);
      if (!re.ok()) return re.status().with_context(fmt::format("tokenizer.json: {}.pattern.Regex", where));
      step.regex = std::move(re).value();
    } else {
      return InvalidArgumentError("tokenizer.json: {}.pattern must hold a String or Regex", where);
    }
  } else if (type == "Strip") {
    step.kind = Kind::kStrip;
    step.left = j.value("strip_left", false);
    step.right = j.value("strip_right", false);
  } else if (type == "NFC" || type == "NFKC" || type == "NFD" || type == "NFKD") {
    step.kind = Kind::kUnicodeForm;
    step.a = type;
  } else {
    return InvalidArgumentError(
        "tokenizer.json: {}.type '{}' is not supported (supported: Sequence, Prepend, Replace, Strip, "
        "NFC, NFKC, NFD, NFKD)",
        where, type);
  }
  steps.push_back(std::move(step));
  return Status::Ok();
}

Result<std::unique_ptr<Normalizer>> Normalizer::from_json(const nlohmann::json& json) {
  std::unique_ptr<Normalizer> n(new Normalizer());
  TANDEM_RETURN_IF_ERROR(add_steps(json, "normalizer", n->steps_));
  return n;
}

void Normalizer::normalize(std::string_view in, std::string& out) const {
  out.assign(in);
  std::string tmp;
  std::vector<std::pair<size_t, size_t>> matches;
  for (const Step& s : steps_) {
    switch (s.kind) {
      case Kind::kPrepend:
        if (!out.empty()) out.insert(0, s.a);
        break;
      case Kind::kReplaceString: {
        if (out.find(s.a) == std::string::npos) break;
        tmp.clear();
        size_t pos = 0;
        for (size_t hit; (hit = out.find(s.a, pos)) != std::string::npos; pos = hit + s.a.size()) {
          tmp.append(out, pos, hit - pos);
          tmp.append(s.b);
        }
        tmp.append(out, pos, std::string::npos);
        out.swap(tmp);
        break;
      }
      case Kind::kReplaceRegex: {
        matches.clear();
        s.regex->find_all(out, matches);
        if (matches.empty()) break;
        tmp.clear();
        size_t pos = 0;
        for (auto [a, b] : matches) {
          tmp.append(out, pos, a - pos);
          tmp.append(s.b);
          pos = b;
        }
        tmp.append(out, pos, std::string::npos);
        out.swap(tmp);
        break;
      }
      case Kind::kStrip: {
        size_t a = 0, b = out.size();
        uint32_t cp = 0;
        if (s.left) {
          while (a < b) {
            size_t len = utf8::decode_char(out, a, &cp);
            if (len == 0 || !utf8::is_whitespace(cp)) break;
            a += len;
          }
        }
        if (s.right) {
          while (b > a) {
            size_t i = b - 1;
            while (i > a && (static_cast<unsigned char>(out[i]) & 0xC0) == 0x80) --i;
            size_t len = utf8::decode_char(out, i, &cp);
            if (len == 0 || !utf8::is_whitespace(cp)) break;
            b = i;
          }
        }
        out = out.substr(a, b - a);
        break;
      }
      case Kind::kUnicodeForm:
        // ASCII is invariant under every normalization form; see docs/tokenizer.md for non-ASCII.
        break;
    }
  }
}

}  // namespace tandem
