// Normalizer chain (see normalizer.h); semantics follow tokenizers' normalizers/*.rs.
#include "tokenizer/normalizer.h"
#include "tokenizer/json_component.h"
#include "tokenizer/replace_all.h"

#include "tokenizer/utf8.h"

#include <unicode/unorm2.h>
#include <unicode/uset.h>
#include <unicode/ustring.h>

namespace tandem {
namespace {

Result<std::string> get_string(const nlohmann::json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) {
    return InvalidArgumentError("tokenizer.json: {}.{} must be a string", where, key);
  }
  return it->get<std::string>();
}

// HF `tokenizers` normalizes with the crate unicode-normalization-alignments, whose tables are
// Unicode 11.0 (measured over all code points against tokenizers 0.23.3: characters assigned later,
// e.g. U+1F16C (12.0), U+32FF (12.1), U+107xx (14.0), are left as they are). ICU 72 is Unicode 15.0,
// so its normalizer is filtered to the characters assigned by 11.0: the others pass through unchanged, and
// since decompositions of assigned characters never change (Unicode stability policy), this is
// exactly Unicode 11.0 normalization.
constexpr char16_t kHfNormalizationCharacters[] = u"[:age=11.0:]";

Result<std::shared_ptr<const UNormalizer2>> open_hf_form(const std::string& type) {
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* base = nullptr;
  if (type == "NFC") base = unorm2_getNFCInstance(&err);
  else if (type == "NFD") base = unorm2_getNFDInstance(&err);
  else if (type == "NFKC") base = unorm2_getNFKCInstance(&err);
  else base = unorm2_getNFKDInstance(&err);
  if (U_FAILURE(err) || base == nullptr) return InternalError("ICU has no {} normalizer: {}", type, u_errorName(err));
  USet* set = uset_openPattern(kHfNormalizationCharacters, -1, &err);
  if (U_FAILURE(err) || set == nullptr) return InternalError("ICU: bad character set: {}", u_errorName(err));
  uset_freeze(set);
  UNormalizer2* filtered = unorm2_openFiltered(base, set, &err);
  if (U_FAILURE(err) || filtered == nullptr) {
    uset_close(set);
    return InternalError("ICU: cannot filter the {} normalizer: {}", type, u_errorName(err));
  }
  // The filtered normalizer refers to `set`, so both are released together.
  return std::shared_ptr<const UNormalizer2>(filtered, [set](const UNormalizer2* n) {
    unorm2_close(const_cast<UNormalizer2*>(n));
    uset_close(set);
  });
}

// Applies an ICU normalization form to valid UTF-8 `text` in place. ASCII is invariant under every
// form, so all-ASCII text skips ICU. An ICU failure (only allocation failure is possible on valid
// input) leaves the text unchanged.
void apply_unicode_form(const UNormalizer2* form, std::string& text) {
  bool ascii = true;
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii || text.size() > static_cast<size_t>(INT32_MAX / 4)) return;
  UErrorCode err = U_ZERO_ERROR;
  std::u16string src(text.size(), u'\0');  // UTF-16 never has more units than UTF-8 has bytes
  int32_t src_len = 0;
  u_strFromUTF8(reinterpret_cast<UChar*>(src.data()), static_cast<int32_t>(src.size()), &src_len, text.data(),
                static_cast<int32_t>(text.size()), &err);
  if (U_FAILURE(err)) return;
  // Quick check: most text is already in the requested form.
  const int32_t span = unorm2_spanQuickCheckYes(form, reinterpret_cast<const UChar*>(src.data()), src_len, &err);
  if (U_FAILURE(err) || span == src_len) return;
  std::u16string dst(static_cast<size_t>(src_len) * 2 + 16, u'\0');
  for (int attempt = 0; attempt < 2; ++attempt) {
    err = U_ZERO_ERROR;
    const int32_t n = unorm2_normalize(form, reinterpret_cast<const UChar*>(src.data()), src_len,
                                       reinterpret_cast<UChar*>(dst.data()), static_cast<int32_t>(dst.size()), &err);
    if (err == U_BUFFER_OVERFLOW_ERROR) {
      dst.assign(static_cast<size_t>(n) + 1, u'\0');
      continue;
    }
    if (U_FAILURE(err)) return;
    std::string out(static_cast<size_t>(n) * 3, '\0');  // <= 3 UTF-8 bytes per UTF-16 unit
    int32_t out_len = 0;
    err = U_ZERO_ERROR;
    u_strToUTF8(out.data(), static_cast<int32_t>(out.size()), &out_len, reinterpret_cast<const UChar*>(dst.data()),
                n, &err);
    if (U_FAILURE(err)) return;
    out.resize(static_cast<size_t>(out_len));
    text.swap(out);
    return;
  }
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
    auto form = open_hf_form(type);
    if (!form.ok()) return form.status().with_context(fmt::format("tokenizer.json: {}", where));
    step.unicode_form = std::move(form).value();
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
        replace_all(out, s.a, s.b, &tmp);
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
      case Kind::kStrip:
        out = std::string(utf8::trim_whitespace(out, s.left, s.right));
        break;
      case Kind::kUnicodeForm:
        apply_unicode_form(s.unicode_form.get(), out);
        break;
    }
  }
}

}  // namespace tandem
