// Chat template rendering against the formats' reference Jinja templates (Llama 3 as in Meta's
// tokenizer_config.json, Qwen2's ChatML, Llama 2 chat, Mistral instruct v0.1): hand-written cases below,
// and RenderedByJinja, which checks every case in tests/fixtures/tokenizer/chat_templates.json, rendered
// by tools/render_chat_templates.py with jinja2 under transformers' apply_chat_template settings.
#include <gtest/gtest.h>

#include <fstream>

#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace tandem {
namespace {

using testing::tokenizer_fixtures;

// Jinja sources as shipped in the models' tokenizer_config.json (detection works on their markers).
const char* kLlama3Jinja =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 "
    "%}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
const char* kQwenJinja =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + "
    "message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt "
    "%}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const char* kLlama2Jinja =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
    "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif "
    "%}{% for message in loop_messages %}{% if loop.index0 == 0 and system_message != false %}{% set content = "
    "'<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = "
    "message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + "
    "' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif "
    "%}{% endfor %}";
const char* kMistralJinja =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] "
    "+ ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% endif %}{% "
    "endfor %}";

// A model directory: the sp_bpe fixture tokenizer plus a tokenizer_config.json with `jinja`.
class ModelDir {
 public:
  ModelDir(const std::string& tag, const std::string& jinja, const std::string& bos, const std::string& eos) {
    dir_ = std::filesystem::temp_directory_path() / ("tandem_chat_" + tag + "_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    std::filesystem::copy_file(tokenizer_fixtures() / "sp_bpe" / "tokenizer.json", dir_ / "tokenizer.json",
                               std::filesystem::copy_options::overwrite_existing);
    nlohmann::json cfg = {{"bos_token", bos}, {"eos_token", eos}, {"chat_template", jinja}};
    std::ofstream(dir_ / "tokenizer_config.json") << cfg.dump();
  }
  ~ModelDir() { std::filesystem::remove_all(dir_); }
  const std::filesystem::path& path() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

std::string render(const std::filesystem::path& dir, const std::vector<ChatMessage>& msgs, bool gen,
                   const std::string& override_value = "") {
  auto tok = Tokenizer::load(dir, override_value);
  EXPECT_TRUE(tok.ok()) << tok.status().to_string();
  if (!tok.ok()) return "<load error>";
  auto r = (*tok)->apply_chat_template(msgs, gen);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? *r : "<render error>";
}

TEST(ChatTemplate, Llama3) {
  ModelDir d("llama3", kLlama3Jinja, "<|begin_of_text|>", "<|eot_id|>");
  std::vector<ChatMessage> msgs = {{"system", "You are helpful."}, {"user", "  Hi there \n"}, {"assistant", "Hello!"}};
  EXPECT_EQ(render(d.path(), msgs, true),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(render(d.path(), {{"user", "x"}}, false),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>");
}

TEST(ChatTemplate, ChatMLWithQwenDefaultSystem) {
  ModelDir d("chatml", kQwenJinja, "<|endoftext|>", "<|im_end|>");
  EXPECT_EQ(render(d.path(), {{"user", "Hi"}}, true),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render(d.path(), {{"system", "Be brief."}, {"user", " Hi "}}, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n Hi <|im_end|>\n");
}

TEST(ChatTemplate, Llama2) {
  ModelDir d("llama2", kLlama2Jinja, "<s>", "</s>");
  EXPECT_EQ(render(d.path(), {{"system", "SYS"}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye "}}, true),
            "<s>[INST] <<SYS>>\nSYS\n<</SYS>>\n\nHi [/INST] Hello </s><s>[INST] Bye [/INST]");
  EXPECT_EQ(render(d.path(), {{"user", "Hi"}}, true), "<s>[INST] Hi [/INST]");
  auto tok = Tokenizer::load(d.path());
  ASSERT_TRUE(tok.ok());
  std::vector<ChatMessage> bad = {{"user", "a"}, {"user", "b"}};
  auto r = (*tok)->apply_chat_template(bad, true);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("alternate"), std::string::npos);
}

TEST(ChatTemplate, Mistral) {
  ModelDir d("mistral", kMistralJinja, "<s>", "</s>");
  EXPECT_EQ(render(d.path(), {{"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}}, true),
            "<s>[INST] Hi [/INST]Hello</s>[INST] Bye [/INST]");
}

TEST(ChatTemplate, RenderedByJinja) {
  std::ifstream in(tokenizer_fixtures() / "chat_templates.json");
  ASSERT_TRUE(in.good()) << "missing tests/fixtures/tokenizer/chat_templates.json";
  nlohmann::json fx = nlohmann::json::parse(in);
  int checked = 0;
  for (const auto& c : fx["cases"]) {
    const std::string name = c["template"];
    const auto& t = fx["templates"][name];
    ModelDir d("jinja_" + name, t["jinja"], t["bos"], t["eos"]);
    std::vector<ChatMessage> msgs;
    for (const auto& m : c["messages"]) msgs.push_back({m["role"], m["content"]});
    const bool gen = c["add_generation_prompt"];
    EXPECT_EQ(render(d.path(), msgs, gen), c["expected"].get<std::string>())
        << name << " case " << checked << " add_generation_prompt=" << gen;
    ++checked;
  }
  EXPECT_GE(checked, 30);
}

TEST(ChatTemplate, OverrideByNameAndFile) {
  ModelDir d("override", kMistralJinja, "<|begin_of_text|>", "<|eot_id|>");
  EXPECT_EQ(render(d.path(), {{"user", "x"}}, false, "llama3"),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>");
  auto file = d.path() / "qwen.jinja";
  std::ofstream(file) << kQwenJinja;
  EXPECT_EQ(render(d.path(), {{"user", "x"}}, false, file.string()),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nx<|im_end|>\n");
}

TEST(ChatTemplate, UnknownTemplatesAreStartupErrors) {
  ModelDir d("unknown", "{{ messages | tojson }}", "<s>", "</s>");
  auto strict = Tokenizer::load(d.path());
  ASSERT_FALSE(strict.ok());
  EXPECT_NE(strict.status().message().find("--chat-template"), std::string::npos) << strict.status().to_string();
  auto bad_override = Tokenizer::load(d.path(), "vicuna");
  ASSERT_FALSE(bad_override.ok());
  EXPECT_NE(bad_override.status().message().find("'vicuna'"), std::string::npos) << bad_override.status().to_string();
  TokenizerLoadOptions lenient;
  lenient.require_known_chat_template = false;
  auto tok = Tokenizer::load(d.path(), lenient);
  ASSERT_TRUE(tok.ok());
  std::vector<ChatMessage> msgs = {{"user", "x"}};
  EXPECT_FALSE((*tok)->apply_chat_template(msgs, true).ok());
  EXPECT_EQ((*tok)->encode("hello", false).size() > 0, true);
}

TEST(ChatTemplate, Llama3ModelDirectory) {
  auto dir = testing::llama3_dir();
  if (!std::filesystem::exists(dir / "tokenizer_config.json")) GTEST_SKIP() << "no Llama 3 model at " << dir;
  EXPECT_EQ(render(dir, {{"user", "Hello"}}, true),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

}  // namespace
}  // namespace tandem
