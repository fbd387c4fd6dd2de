// Byte-level BPE training and tokenizer file writing for test models (see tokenizer_writer.h).
// Training pre-splits the text with a simplified ASCII version of the Llama 3 pattern; merges learned
// on those pieces are valid for any pre-tokenization, and encoding at run time uses the real regex.
#include "model/tokenizer_writer.h"

#include <cctype>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

namespace tandem {
namespace {

// Built-in training text: plain English and a little code, so common words and operators get merges.
constexpr const char* kTrainingText = R"TEXT(
The quick brown fox jumps over the lazy dog. A serving system answers requests from many users at once.
Each request has a prompt, and the model computes the key and value cache of the prompt before it starts
to generate new tokens one at a time. The first phase is called prefill and the second phase is called
decode. Prefill is limited by compute, while decode is limited by memory bandwidth, because every step
reads all of the weights to produce a single token for each sequence in the batch.
In a disaggregated system, the prefill engine and the decode engine run on different devices. The prefill
engine computes the cache and sends it to the decode engine, which continues the generation. The time to
the first token depends on the prefill, and the time between tokens depends on the decode.
Hello, world! How are you today? I am fine, thank you. What is the weather like in the city where you live?
It was a bright cold day in April, and the clocks were striking thirteen. Once upon a time there was a
little house in the middle of a big forest, and in the house there lived an old man with his three sons.
They worked in the fields every morning and came back home in the evening to eat bread and drink milk.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 256 1024 2048 4096 8192 65536 3.14159 2.71828 1e-5 0.02
Questions and answers: Why is the sky blue? Because the air scatters blue light more than red light.
What does a tokenizer do? It splits text into pieces that the model knows, and turns them into numbers.

def attention(query, key, value, scale):
    scores = query @ key.transpose(-1, -2) * scale
    weights = softmax(scores, dim=-1)
    return weights @ value

for (int i = 0; i < n; ++i) {
  sum += x[i] * y[i];
}
if (status.ok()) { return value; } else { return error; }
class Engine:
    def __init__(self, model, config):
        self.model = model
        self.config = config
    def step(self):
        batch = self.scheduler.schedule()
        return self.model.forward(batch)
import json
with open("config.json") as f:
    data = json.load(f)
print(f"hidden size: {data['hidden_size']}")
std::vector<float> logits(vocab_size, 0.0f);
#include <string>
// This comment explains what the function does and why it is written this way.
The library provides functions for reading files, parsing numbers, formatting strings, and writing output.
Users can install the package, import the module, call the function, and print the result on the screen.
The best way to learn a language is to read, write, speak and listen every day, a little at a time.
Science is the study of the natural world through observation and experiment. Mathematics is the language
of science: algebra, geometry, probability, statistics, and calculus describe how things change and move.
History tells the story of people, nations, wars, discoveries, inventions and ideas across thousands of years.
Music, painting, poetry, dance and theatre are forms of art that express feelings and tell stories.
The kitchen smelled of fresh coffee, warm bread, butter, honey, oranges, apples and chocolate cake.
She opened the window, looked at the garden, and saw birds singing in the trees under the morning sun.
)TEXT";

// GPT-2 byte-to-unicode table: printable bytes map to themselves, the rest to U+0100 onwards.
// order[i] is the byte given vocabulary id i (printable ones first, as in GPT-2 / Llama 3).
struct ByteMap {
  std::string symbol[256];
  std::vector<int> order;
  ByteMap() {
    std::vector<int> bs, cs;
    for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
    for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
    for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
    cs = bs;
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      if (std::find(bs.begin(), bs.end(), b) == bs.end()) {
        bs.push_back(b);
        cs.push_back(256 + n++);
      }
    }
    for (size_t i = 0; i < bs.size(); ++i) symbol[bs[i]] = utf8(cs[i]);
    order = bs;
  }
  static std::string utf8(int cp) {
    std::string s;
    if (cp < 0x80) {
      s.push_back(static_cast<char>(cp));
    } else {
      s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    return s;
  }
};

bool is_letter(unsigned char c) { return std::isalpha(c) || c >= 0x80; }
bool is_digit(unsigned char c) { return std::isdigit(c); }
bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_punct(unsigned char c) { return !is_letter(c) && !is_digit(c) && !is_space(c); }

// Simplified Llama 3 pre-tokenization (ASCII classes).
std::vector<std::string> pre_split(const std::string& t) {
  std::vector<std::string> out;
  size_t i = 0, n = t.size();
  auto at = [&](size_t k) -> unsigned char { return k < n ? static_cast<unsigned char>(t[k]) : 0; };
  while (i < n) {
    size_t start = i;
    unsigned char c = at(i);
    if (is_letter(c) || (c != '\n' && c != '\r' && !is_digit(c) && i + 1 < n && is_letter(at(i + 1)))) {
      ++i;
      while (i < n && is_letter(at(i))) ++i;
    } else if (is_digit(c)) {
      while (i < n && is_digit(at(i)) && i - start < 3) ++i;
    } else if (is_punct(c) || (c == ' ' && is_punct(at(i + 1)))) {
      if (c == ' ') ++i;
      while (i < n && is_punct(at(i))) ++i;
      while (i < n && (at(i) == '\n' || at(i) == '\r')) ++i;
    } else {
      while (i < n && is_space(at(i))) ++i;
      if (i < n && i - start > 1 && at(i - 1) == ' ') --i;  // leave one space for the next word
    }
    out.push_back(t.substr(start, i - start));
  }
  return out;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> train_byte_level_bpe(const std::string& text, int num_merges) {
  static const ByteMap bytes;
  std::map<std::string, int64_t> counts;
  for (const auto& w : pre_split(text)) counts[w]++;
  std::vector<std::pair<std::vector<std::string>, int64_t>> words;
  for (const auto& [w, cnt] : counts) {
    std::vector<std::string> syms;
    for (unsigned char c : w) syms.push_back(bytes.symbol[c]);
    words.emplace_back(std::move(syms), cnt);
  }
  std::vector<std::pair<std::string, std::string>> merges;
  while (static_cast<int>(merges.size()) < num_merges) {
    std::map<std::pair<std::string, std::string>, int64_t> pairs;
    for (const auto& [syms, cnt] : words) {
      for (size_t k = 0; k + 1 < syms.size(); ++k) pairs[{syms[k], syms[k + 1]}] += cnt;
    }
    if (pairs.empty()) break;
    auto best = pairs.begin();
    for (auto it = pairs.begin(); it != pairs.end(); ++it) {
      if (it->second > best->second) best = it;  // ties: the lexicographically smallest pair (map order)
    }
    const auto [a, b] = best->first;
    merges.emplace_back(a, b);
    for (auto& [syms, cnt] : words) {
      std::vector<std::string> merged;
      for (size_t k = 0; k < syms.size(); ++k) {
        if (k + 1 < syms.size() && syms[k] == a && syms[k + 1] == b) {
          merged.push_back(a + b);
          ++k;
        } else {
          merged.push_back(syms[k]);
        }
      }
      syms = std::move(merged);
    }
  }
  return merges;
}

Result<WrittenTokenizer> write_tokenizer_files(const std::filesystem::path& dir, int32_t max_size, int model_max_length) {
  static const ByteMap bytes;
  static const char* kSpecials[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                                    "<|end_header_id|>", "<|eot_id|>"};
  constexpr int kNumSpecials = 5;
  if (max_size < 256 + kNumSpecials) return InvalidArgumentError("tokenizer size {} is below 261", max_size);
  auto merges = train_byte_level_bpe(kTrainingText, max_size - 256 - kNumSpecials);

  using ojson = nlohmann::ordered_json;
  ojson vocab = ojson::object();
  int32_t next = 0;
  for (int b : bytes.order) vocab[bytes.symbol[b]] = next++;
  ojson merge_list = ojson::array();
  for (const auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = next++;
    merge_list.push_back(a + " " + b);
  }
  WrittenTokenizer info;
  ojson added = ojson::array();
  ojson added_decoder = ojson::object();
  for (int k = 0; k < kNumSpecials; ++k) {
    int32_t id = next++;
    added.push_back({{"id", id}, {"content", kSpecials[k]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
    added_decoder[std::to_string(id)] = {{"content", kSpecials[k]}, {"single_word", false}, {"lstrip", false},
                                         {"rstrip", false}, {"normalized", false}, {"special", true}};
  }
  info.begin_of_text_id = next - 5;
  info.end_of_text_id = next - 4;
  info.eot_id = next - 1;
  // As in Llama 3, reserved special tokens fill the rest of the model's vocabulary, so every id the
  // model can produce is a token the tokenizer knows.
  for (int k = 0; next < max_size; ++k) {
    std::string content = fmt::format("<|reserved_special_token_{}|>", k);
    int32_t id = next++;
    added.push_back({{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
    added_decoder[std::to_string(id)] = {{"content", content}, {"single_word", false}, {"lstrip", false},
                                         {"rstrip", false}, {"normalized", false}, {"special", true}};
  }
  info.size = next;

  const char* kLlama3Pattern =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  ojson tok;
  tok["version"] = "1.0";
  tok["truncation"] = nullptr;
  tok["padding"] = nullptr;
  tok["added_tokens"] = added;
  tok["normalizer"] = nullptr;
  tok["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", kLlama3Pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
  ojson bos_item = {{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}};
  tok["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       {{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}},
        {{"type", "TemplateProcessing"},
         {"single", {bos_item, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
         {"pair",
          {bos_item, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
           {{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 1}}}},
           {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
         {"special_tokens",
          {{"<|begin_of_text|>",
            {{"id", "<|begin_of_text|>"}, {"ids", {info.begin_of_text_id}}, {"tokens", {"<|begin_of_text|>"}}}}}}}}}};
  tok["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  tok["model"] = {{"type", "BPE"},          {"dropout", nullptr},      {"unk_token", nullptr},
                  {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", false},
                  {"byte_fallback", false}, {"ignore_merges", true}, {"vocab", vocab}, {"merges", merge_list}};

  ojson cfg;
  cfg["added_tokens_decoder"] = added_decoder;
  cfg["bos_token"] = "<|begin_of_text|>";
  cfg["eos_token"] = "<|eot_id|>";
  cfg["add_bos_token"] = true;
  cfg["add_eos_token"] = false;
  cfg["clean_up_tokenization_spaces"] = true;
  cfg["model_max_length"] = model_max_length;
  cfg["tokenizer_class"] = "PreTrainedTokenizerFast";
  cfg["chat_template"] =
      "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + "
      "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if "
      "add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}";

  for (auto& [name, j] : {std::pair<const char*, ojson*>{"tokenizer.json", &tok}, {"tokenizer_config.json", &cfg}}) {
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out << j->dump(2) << "\n";
    out.close();
    if (!out) return IoErrorError("cannot write {}", (dir / name).string());
  }
  return info;
}

}  // namespace tandem
