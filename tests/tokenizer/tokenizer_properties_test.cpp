// Properties of the tokenizer beyond the HF vectors: incremental decode equals full decode (random ids,
// both skip modes), unknown ids, invalid UTF-8 and lone surrogates, malformed tokenizer.json errors, the
// tokenize/detokenize stream logic and concurrent use.
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_cli.h"
#include "tokenizer/utf8.h"
#include "tokenizer_test_util.h"

namespace tandem {
namespace {

using testing::built_tokenizers;
using testing::read_jsonl;
using testing::tokenizer_fixtures;

std::shared_ptr<Tokenizer> load_fixture(const std::string& name) {
  auto tok = Tokenizer::load(tokenizer_fixtures() / name / "tokenizer.json");
  EXPECT_TRUE(tok.ok()) << tok.status().to_string();
  return tok.ok() ? std::move(tok).value() : nullptr;
}

std::string stream(const std::shared_ptr<Tokenizer>& tok, const std::vector<int32_t>& ids, bool skip, bool* valid) {
  IncrementalDecoder dec(tok, skip);
  std::string out;
  *valid = true;
  for (int32_t id : ids) {
    std::string piece = dec.step(id);
    *valid = *valid && utf8::is_valid(piece);
    out += piece;
  }
  std::string tail = dec.flush();
  *valid = *valid && utf8::is_valid(tail);
  return out + tail;
}

TEST(IncrementalDecoder, EqualsFullDecodeOnRandomIds) {
  for (const auto& name : built_tokenizers()) {
    auto tok = load_fixture(name);
    ASSERT_TRUE(tok);
    std::mt19937 rng(7);
    const int32_t vocab = tok->vocab_size();
    // Bias towards byte tokens (ids 3..258 in the SentencePiece fixtures, raw bytes in byte-level) so that
    // multi-byte characters are split across tokens often.
    std::uniform_int_distribution<int32_t> any(-2, vocab + 3), low(0, 300), len(1, 30);
    for (int iter = 0; iter < 1500; ++iter) {
      std::vector<int32_t> ids(len(rng));
      for (auto& id : ids) id = rng() % 3 == 0 ? any(rng) : low(rng);
      for (bool skip : {false, true}) {
        bool valid = false;
        std::string streamed = stream(tok, ids, skip, &valid);
        ASSERT_EQ(streamed, tok->decode(ids, skip)) << name << " iteration " << iter;
        ASSERT_TRUE(valid) << name;
      }
    }
  }
}

TEST(IncrementalDecoder, EqualsFullDecodeOnEncodedText) {
  for (const auto& name : built_tokenizers()) {
    auto tok = load_fixture(name);
    ASSERT_TRUE(tok);
    for (const auto& r : read_jsonl(tokenizer_fixtures() / (name + ".vectors.jsonl"))) {
      if (!r.contains("ids_special")) continue;
      auto ids = r["ids_special"].get<std::vector<int32_t>>();
      for (bool skip : {false, true}) {
        bool valid = false;
        EXPECT_EQ(stream(tok, ids, skip, &valid), tok->decode(ids, skip)) << name << ": " << r["text"];
        EXPECT_TRUE(valid);
      }
    }
  }
}

TEST(Tokenizer, UnknownIdsDecodeToNothing) {
  for (const auto& name : built_tokenizers()) {
    auto tok = load_fixture(name);
    ASSERT_TRUE(tok);
    const int32_t v = tok->vocab_size();
    std::vector<int32_t> hello = tok->encode("hello", false);
    std::vector<int32_t> with_unknown = {-5, v, v + 1000};
    with_unknown.insert(with_unknown.end(), hello.begin(), hello.end());
    with_unknown.push_back(INT32_MAX);
    EXPECT_EQ(tok->decode(with_unknown, false), tok->decode(hello, false));
    EXPECT_EQ(tok->decode(std::vector<int32_t>{v, v + 5}, false), "");
    EXPECT_FALSE(tok->id_to_token(v).has_value());
  }
}

TEST(Tokenizer, InvalidUtf8IsReplacedBeforeEncoding) {
  for (const auto& name : built_tokenizers()) {
    auto tok = load_fixture(name);
    ASSERT_TRUE(tok);
    const std::string fffd = "\xEF\xBF\xBD";
    // A stray continuation byte, an invalid byte, a truncated sequence at the end.
    EXPECT_EQ(tok->encode("a\x80" "b\xFF" "c\xE6\x97", false), tok->encode("a" + fffd + "b" + fffd + "c" + fffd, false));
    // A CESU-8 / WTF-8 lone surrogate (ED A0 80) is three maximal invalid subparts: three U+FFFD, as
    // Python's bytes.decode("utf-8", "replace") gives.
    EXPECT_EQ(tok->encode("x\xED\xA0\x80y", false), tok->encode("x" + fffd + fffd + fffd + "y", false));
    // Overlong encoding of '/'.
    EXPECT_EQ(tok->encode("\xC0\xAF", false), tok->encode(fffd + fffd, false));
  }
}

TEST(Utf8, LossyMatchesMaximalSubpartRule) {
  EXPECT_EQ(utf8::to_valid_lossy("\xF0\x9F\x98"), "\xEF\xBF\xBD");  // one subpart
  EXPECT_EQ(utf8::to_valid_lossy("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
  EXPECT_EQ(utf8::to_valid_lossy("\xE0\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_TRUE(utf8::ends_with_incomplete_sequence("a\xE6\x97"));
  EXPECT_FALSE(utf8::ends_with_incomplete_sequence("a\xE6\x97\xA5"));
  EXPECT_FALSE(utf8::ends_with_incomplete_sequence("a\xFF"));
}

// Writes `content` as tokenizer.json in a fresh directory and loads it.
Status load_text(const std::string& content) {
  auto dir = std::filesystem::temp_directory_path() / ("tandem_tok_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    std::ofstream(dir / "tokenizer.json") << content;
  }
  auto tok = Tokenizer::load(dir);
  std::filesystem::remove_all(dir);
  return tok.ok() ? Status::Ok() : tok.status();
}

TEST(Tokenizer, MalformedTokenizerJsonNamesTheField) {
  const std::string ok_model = R"("model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]})";
  EXPECT_TRUE(load_text("{" + ok_model + "}").ok());
  auto expect_error = [&](const std::string& content, const std::string& needle) {
    Status st = load_text(content);
    EXPECT_FALSE(st.ok()) << content;
    EXPECT_NE(st.message().find(needle), std::string::npos) << "'" << st.message() << "' lacks '" << needle << "'";
  };
  expect_error("{ not json", "invalid JSON");
  expect_error(R"({"model": {"type": "BPE", "vocab": [1, 2]}})", "model.vocab");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": "zero"}}})", "model.vocab['a']");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})", "model.merges[0]");
  expect_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a"]}})", "model.merges[0]");
  expect_error(R"({"model": {"type": "WordPiece", "vocab": {}}})", "model.type");
  expect_error("{" + ok_model + R"(, "pre_tokenizer": {"type": "Bogus"}})", "pre_tokenizer.type");
  expect_error("{" + ok_model + R"(, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "("}}]}})",
               "pre_tokenizer.pretokenizers[0].pattern.Regex");
  expect_error("{" + ok_model + R"(, "normalizer": {"type": "Replace", "content": "x"}})", "normalizer.pattern");
  expect_error("{" + ok_model + R"(, "decoder": {"type": "Nope"}})", "decoder.type");
  expect_error("{" + ok_model + R"(, "added_tokens": [{"id": "1", "content": "x"}]})", "added_tokens[0].id");
  expect_error("{" + ok_model + R"(, "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}]}})",
               "post_processor.special_tokens['<s>']");
  expect_error(R"({"nomodel": 1})", "model");
  EXPECT_EQ(Tokenizer::load("/nonexistent/tokenizer").status().code(), StatusCode::kNotFound);
}

TEST(TokenizerCli, JsonlStreams) {
  auto tok = load_fixture("bytelevel_bpe");
  ASSERT_TRUE(tok);
  auto enc = tokenize_stream(*tok, "\"hello\"\n\n\"a\\ud800b\"\n\"\\ud83d\\ude00\"\n", true, false);
  ASSERT_EQ(enc.error, "");
  std::vector<std::string> lines;
  for (size_t p = 0, nl; (nl = enc.text.find('\n', p)) != std::string::npos; p = nl + 1) lines.push_back(enc.text.substr(p, nl - p));
  ASSERT_EQ(lines.size(), 3u);
  auto ids_of = [](const std::string& s) { return nlohmann::json::parse(s).get<std::vector<int32_t>>(); };
  EXPECT_EQ(ids_of(lines[0]), tok->encode("hello", false));
  EXPECT_EQ(ids_of(lines[1]), tok->encode("a\xEF\xBF\xBD" "b", false));  // lone surrogate -> U+FFFD
  EXPECT_EQ(ids_of(lines[2]), tok->encode("\xF0\x9F\x98\x80", false));   // a proper pair is kept
  auto dec = detokenize_stream(*tok, lines[0] + "\n" + lines[2] + "\n", true, false);
  EXPECT_EQ(dec.error, "");
  EXPECT_EQ(dec.text, "\"hello\"\n\"\xF0\x9F\x98\x80\"\n");
  EXPECT_EQ(detokenize_stream(*tok, lines[0], false, false).text, "hello");
  EXPECT_NE(detokenize_stream(*tok, "[1, \"x\"]", false, false).error, "");
  EXPECT_NE(tokenize_stream(*tok, "not json\n", true, false).error.find("line 1"), std::string::npos);
}

TEST(Tokenizer, ConcurrentEncodeMatchesSerial) {
  auto tok = load_fixture("sp_bpe");
  ASSERT_TRUE(tok);
  std::vector<std::string> texts;
  for (const auto& r : read_jsonl(tokenizer_fixtures() / "sp_bpe.vectors.jsonl"))
    if (r.contains("text")) texts.push_back(r["text"].get<std::string>());
  std::vector<std::vector<int32_t>> serial;
  for (const auto& t : texts) serial.push_back(tok->encode(t, true));
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 3; ++round)
        for (size_t i = (t * 7) % texts.size(), n = 0; n < texts.size(); ++n, i = (i + 1) % texts.size())
          if (tok->encode(texts[i], true) != serial[i]) ++mismatches;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace tandem
