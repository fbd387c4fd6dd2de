// ChatTemplate: native renderers for the chat formats of the supported model families (no Jinja
// engine). A Jinja chat_template from tokenizer_config.json (or a --chat-template file) is recognised by
// its markers:
//   llama3  "<|start_header_id|>"  header/eot turns, content trimmed, BOS before the first turn
//   chatml  "<|im_start|>"         Qwen/ChatML turns; a default system prompt literal in the template
//                                   (Qwen's "You are a helpful assistant.") is used when none is given
//   llama2  "[INST]" + "<<SYS>>"   Llama 2 chat: system folded into the first user turn
//   mistral "[INST]" without SYS    Mistral instruct: BOS once, "[INST] u [/INST]a</s>"
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"
#include "tokenizer/tokenizer.h"

namespace tandem {

class ChatTemplate {
 public:
  enum class Format { kLlama3, kChatML, kLlama2, kMistral };

  // Recognises a Jinja template text; nullopt when no known marker is present.
  static std::optional<ChatTemplate> detect(std::string_view jinja);
  // --chat-template: a format name (llama3, chatml, llama2, mistral) or a file holding a template.
  static Result<ChatTemplate> from_override(const std::string& value);

  Format format() const { return format_; }
  static std::string_view format_name(Format f);

  Result<std::string> render(std::span<const ChatMessage> messages, bool add_generation_prompt,
                             std::string_view bos, std::string_view eos) const;

 private:
  explicit ChatTemplate(Format f) : format_(f) {}
  Format format_;
  std::string default_system_;  // chatml only
};

}  // namespace tandem
