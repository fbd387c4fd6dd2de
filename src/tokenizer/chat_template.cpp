// Chat template detection and rendering (see chat_template.h). Each renderer reproduces its reference
// Jinja template byte for byte (tests/tokenizer/chat_template_test.cpp holds hand-written expectations).
#include "tokenizer/chat_template.h"

#include "common/file_util.h"
#include "tokenizer/utf8.h"

namespace tandem {
namespace {

// Python str.strip(): Unicode whitespace on both ends (Jinja's `trim` and `.strip()`).
std::string strip(std::string_view s) { return std::string(utf8::trim_whitespace(s, true, true)); }

// Extracts Qwen's default system prompt: the literal between "<|im_start|>system\n" and
// "<|im_end|>" inside a quoted string of the template (Jinja source spells the newline as \n).
std::string chatml_default_system(std::string_view jinja) {
  for (std::string_view head : {std::string_view("<|im_start|>system\\n"), std::string_view("<|im_start|>system\n")}) {
    size_t p = jinja.find(head);
    while (p != std::string_view::npos) {
      size_t start = p + head.size();
      size_t end = jinja.find("<|im_end|>", start);
      if (end == std::string_view::npos) break;
      std::string_view lit = jinja.substr(start, end - start);
      // Only a literal (no Jinja expression or string concatenation inside).
      if (!lit.empty() && lit.find('\'') == std::string_view::npos && lit.find('"') == std::string_view::npos &&
          lit.find("{{") == std::string_view::npos && lit.find('+') == std::string_view::npos) {
        return std::string(lit);
      }
      p = jinja.find(head, start);
    }
  }
  return "";
}

// Appends pieces (avoids operator+ chains, which trip GCC 12's -Wrestrict false positive).
void append(std::string& out, std::initializer_list<std::string_view> pieces) {
  for (std::string_view p : pieces) out.append(p);
}

}  // namespace

std::string_view ChatTemplate::format_name(Format f) {
  switch (f) {
    case Format::kLlama3: return "llama3";
    case Format::kChatML: return "chatml";
    case Format::kLlama2: return "llama2";
    case Format::kMistral: return "mistral";
  }
  return "?";
}

std::optional<ChatTemplate> ChatTemplate::detect(std::string_view jinja) {
  if (jinja.find("<|start_header_id|>") != std::string_view::npos) return ChatTemplate(Format::kLlama3);
  if (jinja.find("<|im_start|>") != std::string_view::npos) {
    ChatTemplate t(Format::kChatML);
    t.default_system_ = chatml_default_system(jinja);
    return t;
  }
  if (jinja.find("[INST]") != std::string_view::npos) {
    return ChatTemplate(jinja.find("<<SYS>>") != std::string_view::npos ? Format::kLlama2 : Format::kMistral);
  }
  return std::nullopt;
}

Result<ChatTemplate> ChatTemplate::from_override(const std::string& value) {
  for (Format f : {Format::kLlama3, Format::kChatML, Format::kLlama2, Format::kMistral}) {
    if (value == format_name(f)) return ChatTemplate(f);
  }
  auto text = read_file(value);
  if (!text.ok()) {
    return InvalidArgumentError(
        "--chat-template '{}' is neither a known format (llama3, chatml, llama2, mistral) nor a readable file",
        value);
  }
  auto t = detect(*text);
  if (!t) {
    return InvalidArgumentError(
        "--chat-template '{}': the template matches no supported format (llama3, chatml, llama2, mistral)",
        value);
  }
  return *t;
}

Result<std::string> ChatTemplate::render(std::span<const ChatMessage> messages, bool add_generation_prompt,
                                         std::string_view bos, std::string_view eos) const {
  std::string out;
  switch (format_) {
    case Format::kLlama3:
      for (size_t i = 0; i < messages.size(); ++i) {
        if (i == 0) out.append(bos);
        append(out, {"<|start_header_id|>", messages[i].role, "<|end_header_id|>\n\n",
                     strip(messages[i].content), "<|eot_id|>"});
      }
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    case Format::kChatML:
      for (size_t i = 0; i < messages.size(); ++i) {
        if (i == 0 && messages[0].role != "system" && !default_system_.empty()) {
          append(out, {"<|im_start|>system\n", default_system_, "<|im_end|>\n"});
        }
        append(out, {"<|im_start|>", messages[i].role, "\n", messages[i].content, "<|im_end|>\n"});
      }
      if (add_generation_prompt) out += "<|im_start|>assistant\n";
      return out;
    case Format::kLlama2:
    case Format::kMistral: {
      std::span<const ChatMessage> turns = messages;
      std::string system;
      bool has_system = !messages.empty() && messages[0].role == "system";
      if (has_system) {
        if (format_ == Format::kMistral) {
          return InvalidArgumentError("the mistral chat format has no system role; only user and assistant");
        }
        system = messages[0].content;
        turns = messages.subspan(1);
      }
      if (format_ == Format::kMistral) out.append(bos);
      for (size_t i = 0; i < turns.size(); ++i) {
        const ChatMessage& m = turns[i];
        bool should_be_user = i % 2 == 0;
        if ((m.role == "user") != should_be_user || (m.role != "user" && m.role != "assistant")) {
          return InvalidArgumentError(
              "conversation roles must alternate user/assistant/user/assistant/... (message {} is '{}')",
              i + (has_system ? 1 : 0), m.role);
        }
        if (format_ == Format::kLlama2) {
          std::string content = m.content;
          if (i == 0 && has_system) {
            content.clear();
            append(content, {"<<SYS>>\n", system, "\n<</SYS>>\n\n", m.content});
          }
          if (m.role == "user") {
            append(out, {bos, "[INST] ", strip(content), " [/INST]"});
          } else {
            append(out, {" ", strip(content), " ", eos});
          }
        } else {
          if (m.role == "user") append(out, {"[INST] ", m.content, " [/INST]"});
          else append(out, {m.content, eos});
        }
      }
      return out;
    }
  }
  return InternalError("unknown chat format");
}

}  // namespace tandem
