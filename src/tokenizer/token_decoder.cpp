// Decoder chain (see token_decoder.h); mirrors tokenizers' decoders/*.rs decode_chain.
#include "tokenizer/token_decoder.h"
#include "tokenizer/json_component.h"
#include "tokenizer/replace_all.h"

#include "tokenizer/bpe_model.h"
#include "tokenizer/utf8.h"

namespace tandem {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "<0xXX>" -> byte, else -1.
int byte_token(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  int hi = hex_value(t[3]), lo = hex_value(t[4]);
  if (hi < 0 || lo < 0) return -1;
  return hi * 16 + lo;
}

}  // namespace

std::string TokenDecoder::byte_level_bytes(std::string_view token) {
  std::string out;
  if (!BpeModel::byte_level_to_bytes(token, &out)) return std::string(token);
  return out;
}

bool TokenDecoder::has_byte_fallback() const {
  for (const Step& s : steps_)
    if (s.kind == Kind::kByteFallback) return true;
  return false;
}

Status TokenDecoder::add_steps(const nlohmann::json& j, const std::string& where, std::vector<Step>& steps) {
  TANDEM_ASSIGN_OR_RETURN(const std::string type,
                          read_component(j, where, "decoders", [&](const nlohmann::json& c, const std::string& w) {
                            return add_steps(c, w, steps);
                          }));
  if (type == "Sequence") return Status::Ok();
  Step s;
  if (type == "ByteLevel") {
    s.kind = Kind::kByteLevel;
  } else if (type == "Replace") {
    s.kind = Kind::kReplace;
    auto p = j.find("pattern");
    if (p == j.end() || !p->is_object() || !p->contains("String") || !(*p)["String"].is_string()) {
      return InvalidArgumentError("tokenizer.json: {}.pattern must be {{\"String\": ...}}", where);
    }
    s.a = (*p)["String"].get<std::string>();
    auto c = j.find("content");
    if (c == j.end() || !c->is_string()) return InvalidArgumentError("tokenizer.json: {}.content must be a string", where);
    s.b = c->get<std::string>();
    if (s.a.empty()) return InvalidArgumentError("tokenizer.json: {}.pattern.String is empty", where);
  } else if (type == "ByteFallback") {
    s.kind = Kind::kByteFallback;
  } else if (type == "Fuse") {
    s.kind = Kind::kFuse;
  } else if (type == "Strip") {
    s.kind = Kind::kStrip;
    auto c = j.find("content");
    if (c == j.end() || !c->is_string()) return InvalidArgumentError("tokenizer.json: {}.content must be a string", where);
    s.a = c->get<std::string>();
    s.start = j.value("start", size_t{0});
    s.stop = j.value("stop", size_t{0});
  } else if (type == "Metaspace") {
    s.kind = Kind::kMetaspace;
    auto r = j.find("replacement");
    if (r == j.end() || !r->is_string()) {
      return InvalidArgumentError("tokenizer.json: {}.replacement must be a string", where);
    }
    s.a = r->get<std::string>();
    auto ps = j.find("prepend_scheme");
    if (ps != j.end() && ps->is_string()) s.prepend = ps->get<std::string>() != "never";
    else s.prepend = j.value("add_prefix_space", true);
  } else {
    return InvalidArgumentError(
        "tokenizer.json: {}.type '{}' is not supported (supported: Sequence, ByteLevel, Replace, ByteFallback, "
        "Fuse, Strip, Metaspace)",
        where, type);
  }
  steps.push_back(std::move(s));
  return Status::Ok();
}

Result<std::unique_ptr<TokenDecoder>> TokenDecoder::from_json(const nlohmann::json& json) {
  std::unique_ptr<TokenDecoder> d(new TokenDecoder());
  if (json.is_null()) {
    d->none_ = true;
    return d;
  }
  TANDEM_RETURN_IF_ERROR(add_steps(json, "decoder", d->steps_));
  return d;
}

std::string TokenDecoder::decode(const std::vector<std::string_view>& tokens) const {
  if (none_) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out.push_back(' ');
      out.append(tokens[i]);
    }
    return out;
  }
  std::vector<std::string> cur(tokens.begin(), tokens.end());
  std::vector<std::string> next;
  for (const Step& s : steps_) {
    next.clear();
    switch (s.kind) {
      case Kind::kByteLevel: {
        std::string bytes;
        for (const auto& t : cur) bytes.append(byte_level_bytes(t));
        next.push_back(utf8::to_valid_lossy(bytes));
        break;
      }
      case Kind::kReplace:
        for (auto& t : cur) {
          std::string r;
          replace_all(t, s.a, s.b, &r);
          next.push_back(std::move(r));
        }
        break;
      case Kind::kByteFallback: {
        std::string run;
        size_t run_len = 0;
        auto flush = [&] {
          if (run_len == 0) return;
          if (utf8::is_valid(run)) {
            next.push_back(run);
          } else {
            for (size_t k = 0; k < run_len; ++k) next.emplace_back(utf8::kReplacementChar);
          }
          run.clear();
          run_len = 0;
        };
        for (auto& t : cur) {
          int b = byte_token(t);
          if (b >= 0) {
            run.push_back(static_cast<char>(b));
            ++run_len;
          } else {
            flush();
            next.push_back(std::move(t));
          }
        }
        flush();
        break;
      }
      case Kind::kFuse: {
        std::string all;
        for (const auto& t : cur) all.append(t);
        next.push_back(std::move(all));
        break;
      }
      case Kind::kStrip:
        for (auto& t : cur) {
          // Strip up to `start` leading and `stop` trailing occurrences of the content character.
          std::string_view v = t;
          for (size_t k = 0; k < s.start && !s.a.empty() && v.substr(0, s.a.size()) == s.a; ++k)
            v.remove_prefix(s.a.size());
          for (size_t k = 0; k < s.stop && !s.a.empty() && v.size() >= s.a.size() &&
                             v.substr(v.size() - s.a.size()) == s.a;
               ++k)
            v.remove_suffix(s.a.size());
          next.emplace_back(v);
        }
        break;
      case Kind::kMetaspace:
        for (size_t i = 0; i < cur.size(); ++i) {
          const std::string& t = cur[i];
          std::string r;
          size_t pos = 0;
          for (size_t hit; (hit = t.find(s.a, pos)) != std::string::npos; pos = hit + s.a.size()) {
            r.append(t, pos, hit - pos);
            if (!(i == 0 && s.prepend)) r.push_back(' ');
          }
          r.append(t, pos, std::string::npos);
          next.push_back(std::move(r));
        }
        break;
    }
    cur.swap(next);
  }
  std::string out;
  for (const auto& t : cur) out.append(t);
  return out;
}

}  // namespace tandem
