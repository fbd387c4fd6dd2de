// Pre-tokenizer chain (see pre_tokenizer.h); semantics follow tokenizers' pre_tokenizers/*.rs and
// NormalizedString::split.
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/json_component.h"

#include "common/check.h"

namespace tandem {

Status PreTokenizer::add_steps(const nlohmann::json& j, const std::string& where, std::vector<Step>& steps) {
  TANDEM_ASSIGN_OR_RETURN(const std::string type,
                          read_component(j, where, "pretokenizers", [&](const nlohmann::json& c, const std::string& w) {
                            return add_steps(c, w, steps);
                          }));
  if (type == "Sequence") return Status::Ok();
  Step step;
  if (type == "Split") {
    step.kind = Kind::kSplit;
    auto p = j.find("pattern");
    if (p == j.end() || !p->is_object()) {
      return InvalidArgumentError("tokenizer.json: {}.pattern must be an object", where);
    }
    if (p->contains("Regex") && (*p)["Regex"].is_string()) {
      const std::string pattern = (*p)["Regex"].get<std::string>();
      step.scanner = SplitScanner::for_pattern(pattern);
      if (!step.scanner) {
        auto re = Regex::compile(pattern);
        if (!re.ok()) return re.status().with_context(fmt::format("tokenizer.json: {}.pattern.Regex", where));
        step.regex = std::move(re).value();
      }
    } else if (p->contains("String") && (*p)["String"].is_string()) {
      step.literal = (*p)["String"].get<std::string>();
      if (step.literal.empty()) return InvalidArgumentError("tokenizer.json: {}.pattern.String is empty", where);
    } else {
      return InvalidArgumentError("tokenizer.json: {}.pattern must hold a Regex or String", where);
    }
    std::string behavior = j.value("behavior", std::string("Isolated"));
    if (behavior == "Removed") step.behavior = Behavior::kRemoved;
    else if (behavior == "Isolated") step.behavior = Behavior::kIsolated;
    else if (behavior == "MergedWithPrevious") step.behavior = Behavior::kMergedWithPrevious;
    else if (behavior == "MergedWithNext") step.behavior = Behavior::kMergedWithNext;
    else if (behavior == "Contiguous") step.behavior = Behavior::kContiguous;
    else return InvalidArgumentError("tokenizer.json: {}.behavior '{}' is not a known behavior", where, behavior);
    auto inv = j.find("invert");
    step.invert = inv != j.end() && inv->is_boolean() && inv->get<bool>();
  } else if (type == "ByteLevel") {
    step.kind = Kind::kByteLevel;
    step.add_prefix_space = j.value("add_prefix_space", true);
    if (j.value("use_regex", true)) {
      step.scanner = SplitScanner::for_pattern(kGpt2SplitPattern);
      TANDEM_CHECK(step.scanner != nullptr);
    }
  } else if (type == "Metaspace") {
    step.kind = Kind::kMetaspace;
    auto r = j.find("replacement");
    if (r == j.end() || !r->is_string() || r->get<std::string>().empty()) {
      return InvalidArgumentError("tokenizer.json: {}.replacement must be a one-character string", where);
    }
    step.literal = r->get<std::string>();
    auto ps = j.find("prepend_scheme");
    if (ps != j.end() && ps->is_string()) {
      std::string s = ps->get<std::string>();
      if (s == "always") step.prepend = Prepend::kAlways;
      else if (s == "first") step.prepend = Prepend::kFirst;
      else if (s == "never") step.prepend = Prepend::kNever;
      else return InvalidArgumentError("tokenizer.json: {}.prepend_scheme '{}' is not always|first|never", where, s);
    } else {
      step.prepend = j.value("add_prefix_space", true) ? Prepend::kAlways : Prepend::kNever;
    }
    step.split = j.value("split", true);
  } else if (type == "Digits") {
    step.kind = Kind::kSplit;
    bool individual = j.value("individual_digits", false);
    auto re = Regex::compile(individual ? R"(\p{N})" : R"(\p{N}+)");
    if (!re.ok()) return re.status();
    step.regex = std::move(re).value();
  } else if (type == "WhitespaceSplit") {
    step.kind = Kind::kSplit;
    step.behavior = Behavior::kRemoved;
    auto re = Regex::compile(R"(\s+)");
    if (!re.ok()) return re.status();
    step.regex = std::move(re).value();
  } else {
    return InvalidArgumentError(
        "tokenizer.json: {}.type '{}' is not supported (supported: Sequence, Split, ByteLevel, Metaspace, "
        "Digits, WhitespaceSplit)",
        where, type);
  }
  steps.push_back(std::move(step));
  return Status::Ok();
}

Result<std::unique_ptr<PreTokenizer>> PreTokenizer::from_json(const nlohmann::json& json) {
  std::unique_ptr<PreTokenizer> p(new PreTokenizer());
  if (json.is_null()) return p;
  TANDEM_RETURN_IF_ERROR(add_steps(json, "pre_tokenizer", p->steps_));
  for (size_t i = 0; i < p->steps_.size(); ++i) {
    if (p->steps_[i].kind == Kind::kByteLevel) {
      if (i + 1 != p->steps_.size()) {
        return InvalidArgumentError(
            "tokenizer.json: pre_tokenizer: ByteLevel must be the last pre-tokenizer (step {} of {})", i + 1,
            p->steps_.size());
      }
      p->byte_level_ = true;
    }
  }
  return p;
}

void PreTokenizer::segments(const Step& s, std::string_view piece,
                            std::vector<std::pair<size_t, size_t>>& out) const {
  // Matches of the pattern.
  std::vector<std::pair<size_t, size_t>> matches;
  if (s.scanner) {
    s.scanner->find_all(piece, matches);
  } else if (s.regex) {
    s.regex->find_all(piece, matches);
  } else {
    for (size_t pos = 0, hit; (hit = piece.find(s.literal, pos)) != std::string_view::npos;
         pos = hit + s.literal.size()) {
      matches.emplace_back(hit, hit + s.literal.size());
    }
  }
  if (!s.invert && s.behavior == Behavior::kIsolated) {  // hot path: gaps and matches, in order
    size_t prev = 0;
    for (auto [a, b] : matches) {
      if (prev < a) out.emplace_back(prev, a);
      out.emplace_back(a, b);
      prev = b;
    }
    if (prev < piece.size()) out.emplace_back(prev, piece.size());
    return;
  }
  // Generic: (range, is_match) covering the piece, then the behavior (tokenizers' split()).
  struct Seg {
    size_t a, b;
    bool m;
  };
  std::vector<Seg> segs;
  size_t prev = 0;
  for (auto [a, b] : matches) {
    if (prev < a) segs.push_back({prev, a, false});
    segs.push_back({a, b, true});
    prev = b;
  }
  if (prev < piece.size()) segs.push_back({prev, piece.size(), false});
  if (s.invert) for (Seg& g : segs) g.m = !g.m;
  std::vector<Seg> res;
  switch (s.behavior) {
    case Behavior::kRemoved:
      for (const Seg& g : segs) if (!g.m) res.push_back(g);
      break;
    case Behavior::kIsolated:
      res.swap(segs);
      break;
    case Behavior::kMergedWithPrevious: {
      bool prev_match = false;
      for (const Seg& g : segs) {
        if (g.m && !prev_match && !res.empty()) res.back().b = g.b;
        else res.push_back(g);
        prev_match = g.m;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool prev_match = false;
      for (size_t i = segs.size(); i-- > 0;) {
        const Seg& g = segs[i];
        if (g.m && !prev_match && !res.empty()) res.back().a = g.a;
        else res.push_back(g);
        prev_match = g.m;
      }
      std::reverse(res.begin(), res.end());
      break;
    }
    case Behavior::kContiguous: {
      bool prev_match = false;
      for (const Seg& g : segs) {
        if (g.m == prev_match && !res.empty()) res.back().b = g.b;
        else res.push_back(g);
        prev_match = g.m;
      }
      break;
    }
  }
  for (const Seg& g : res) if (g.b > g.a) out.emplace_back(g.a, g.b);
}

void PreTokenizer::pre_tokenize(std::string_view piece, bool at_origin, const Sink& sink) const {
  if (piece.empty()) return;
  run(0, piece, at_origin, sink);
}

void PreTokenizer::run(size_t i, std::string_view piece, bool at_origin, const Sink& sink) const {
  if (piece.empty()) return;
  if (i == steps_.size()) {
    sink(piece);
    return;
  }
  const Step& s = steps_[i];
  switch (s.kind) {
    case Kind::kSplit: {
      std::vector<std::pair<size_t, size_t>> segs;
      segments(s, piece, segs);
      for (auto [a, b] : segs) run(i + 1, piece.substr(a, b - a), at_origin && a == 0, sink);
      return;
    }
    case Kind::kByteLevel: {
      std::string owned;
      std::string_view p = piece;
      if (s.add_prefix_space && p.front() != ' ') {
        owned.reserve(p.size() + 1);
        owned.push_back(' ');
        owned.append(p);
        p = owned;
      }
      if (!s.scanner) {
        run(i + 1, p, at_origin, sink);
        return;
      }
      std::vector<std::pair<size_t, size_t>> segs;
      segments(s, p, segs);
      for (auto [a, b] : segs) run(i + 1, p.substr(a, b - a), at_origin && a == 0, sink);
      return;
    }
    case Kind::kMetaspace: {
      std::string owned;
      owned.reserve(piece.size() + 8);
      const std::string& rep = s.literal;
      for (char c : piece) {
        if (c == ' ') owned.append(rep);
        else owned.push_back(c);
      }
      bool starts = owned.compare(0, rep.size(), rep) == 0;
      if (!starts && (s.prepend == Prepend::kAlways || (s.prepend == Prepend::kFirst && at_origin))) {
        owned.insert(0, rep);
      }
      std::string_view p = owned;
      if (!s.split) {
        run(i + 1, p, at_origin, sink);
        return;
      }
      // Split on the replacement, each occurrence starting a new word (MergedWithNext).
      size_t start = 0;
      for (size_t hit = p.find(rep, rep.size() <= p.size() ? 1 : 0); hit != std::string_view::npos;
           hit = p.find(rep, hit + rep.size())) {
        if (hit > start) {
          run(i + 1, p.substr(start, hit - start), at_origin && start == 0, sink);
          start = hit;
        }
      }
      run(i + 1, p.substr(start), at_origin && start == 0, sink);
      return;
    }
    default:
      run(i + 1, piece, at_origin, sink);
  }
}

}  // namespace tandem
