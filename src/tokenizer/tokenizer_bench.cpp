// Deterministic benchmark corpora and the encode timing loop (see tokenizer_bench.h).
#include "tokenizer/tokenizer_bench.h"

#include <chrono>
#include <cstdint>

#include "tokenizer/utf8.h"

namespace tandem {
namespace {

struct SplitMix64 {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
};

constexpr size_t kDocBytes = 4096;
constexpr size_t kDocs = 200;

const char* const kWords[] = {
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
    "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were",
    "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would",
    "who", "so", "no", "system", "model", "request", "server", "memory", "cache", "token", "latency", "through",
    "between", "because", "government", "development", "information", "performance", "understanding",
    "particularly", "environment", "significant", "approximately", "responsibility", "measurement", "river",
    "mountain", "village", "history", "children", "morning", "evening", "question", "answer", "language",
    "library", "student", "teacher", "journey", "kitchen", "garden", "window", "weather", "science", "music",
    "painting", "doctor", "hospital", "market", "country", "city", "family", "friend", "water", "light",
    "quickly", "slowly", "carefully", "however", "therefore", "although", "meanwhile", "nevertheless",
    "it's", "don't", "they're", "we'll", "I'm", "couldn't", "1999", "42", "3.5", "twenty", "first", "last"};

const char* const kIdents[] = {"count", "buffer", "index", "result", "value", "request", "config", "tensor",
                               "offset", "length", "node", "queue", "handle", "status", "block_table",
                               "num_tokens", "kv_cache", "scheduler", "max_len", "HttpServer", "parse_json"};

std::string prose_doc(SplitMix64& r) {
  std::string s;
  while (s.size() < kDocBytes) {
    size_t words = 8 + r.below(14);
    for (size_t w = 0; w < words; ++w) {
      std::string word = kWords[r.below(std::size(kWords))];
      if (w == 0 && word[0] >= 'a' && word[0] <= 'z') word[0] = static_cast<char>(word[0] - 32);
      s += word;
      if (w + 1 < words) s += r.below(12) == 0 ? ", " : " ";
    }
    s += r.below(8) == 0 ? "?" : ".";
    s += r.below(6) == 0 ? "\n\n" : " ";
  }
  return s;
}

std::string code_doc(SplitMix64& r) {
  std::string s;
  auto id = [&] { return std::string(kIdents[r.below(std::size(kIdents))]); };
  while (s.size() < kDocBytes) {
    if (r.below(2) == 0) {
      s += "// Computes the " + id() + " for each " + id() + " in the batch.\n";
      s += "static int " + id() + "_" + std::to_string(r.below(100)) + "(const std::vector<int>& " + id() +
           ", size_t " + id() + ") {\n";
      for (size_t i = 0, n = 2 + r.below(5); i < n; ++i) {
        s += "  if (" + id() + "[i] > " + std::to_string(r.below(4096)) + " && " + id() + " != nullptr) {\n";
        s += "    " + id() + " += " + id() + " * " + std::to_string(r.below(64)) + ";  // scale\n  }\n";
      }
      s += "  return " + id() + ".size();\n}\n\n";
    } else {
      s += "def " + id() + "(" + id() + ", " + id() + "=None):\n";
      s += "    \"\"\"Returns the " + id() + ".\"\"\"\n";
      for (size_t i = 0, n = 2 + r.below(5); i < n; ++i) {
        s += "    for " + id() + " in range(" + std::to_string(r.below(1000)) + "):\n";
        s += "        " + id() + "[\"" + id() + "\"] = " + id() + " ** 2 + 0x" + std::to_string(r.below(9999)) + "\n";
      }
      s += "    return {\"" + id() + "\": " + id() + "}\n\n";
    }
  }
  return s;
}

std::string unicode_doc(SplitMix64& r) {
  // (first, last, weight) code point ranges; surrogates excluded.
  static const uint32_t kRanges[][3] = {{0x20, 0x7E, 30}, {0xA0, 0x24F, 10}, {0x370, 0x52F, 8},
                                        {0x590, 0x6FF, 6},  {0x900, 0x97F, 3},  {0x3040, 0x30FF, 8},
                                        {0x4E00, 0x9FFF, 14}, {0xAC00, 0xD7A3, 8}, {0x1F300, 0x1FAFF, 6},
                                        {0x2000, 0x206F, 2}};
  uint32_t total = 0;
  for (const auto& rg : kRanges) total += rg[2];
  std::string s;
  while (s.size() < kDocBytes) {
    size_t len = 1 + r.below(12);
    for (size_t i = 0; i < len; ++i) {
      uint32_t pick = static_cast<uint32_t>(r.below(total));
      for (const auto& rg : kRanges) {
        if (pick < rg[2]) {
          utf8::append_char(s, rg[0] + static_cast<uint32_t>(r.below(rg[1] - rg[0] + 1)));
          break;
        }
        pick -= rg[2];
      }
    }
    s += r.below(10) == 0 ? "\n" : " ";
  }
  return s;
}

}  // namespace

std::vector<BenchCorpus> make_bench_corpora() {
  std::vector<BenchCorpus> out = {{"prose", {}}, {"code", {}}, {"unicode", {}}};
  SplitMix64 r{20240601};
  for (size_t i = 0; i < kDocs; ++i) out[0].docs.push_back(prose_doc(r));
  for (size_t i = 0; i < kDocs; ++i) out[1].docs.push_back(code_doc(r));
  for (size_t i = 0; i < kDocs / 2; ++i) out[2].docs.push_back(unicode_doc(r));
  return out;
}

EncodeBenchResult run_encode_bench(const Tokenizer& tok, const BenchCorpus& corpus, double min_seconds) {
  for (const auto& d : corpus.docs) (void)tok.encode(d, false);  // warm-up (caches, page faults)
  EncodeBenchResult res;
  auto start = std::chrono::steady_clock::now();
  do {
    for (const auto& d : corpus.docs) {
      res.tokens += static_cast<double>(tok.encode(d, false).size());
      res.bytes += static_cast<double>(d.size());
    }
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (res.seconds < min_seconds);
  return res;
}

}  // namespace tandem
