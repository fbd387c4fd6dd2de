// Tokenizer::load (file discovery and JSON parsing) and IncrementalDecoder.
#include "tokenizer/tokenizer.h"

#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/utf8.h"

namespace tandem {
namespace {

// Reads and parses a JSON file; `optional` files that do not exist give null.
Result<nlohmann::json> read_json(const std::filesystem::path& path, bool optional) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    if (optional) return nlohmann::json();
    return NotFoundError("{} not found", path.string());
  }
  auto text = read_file(path);
  if (!text.ok()) return IoErrorError("cannot open {}", path.string());
  try {
    return nlohmann::json::parse(*text);
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError("{}: invalid JSON: {}", path.string(), e.what());
  }
}

}  // namespace

Result<std::shared_ptr<Tokenizer>> Tokenizer::load(const std::filesystem::path& path,
                                                   const std::string& chat_template_override) {
  TokenizerLoadOptions options;
  options.chat_template_override = chat_template_override;
  return load(path, options);
}

Result<std::shared_ptr<Tokenizer>> Tokenizer::load(const std::filesystem::path& path,
                                                   const TokenizerLoadOptions& options) {
  std::error_code ec;
  std::filesystem::path dir, file;
  if (std::filesystem::is_directory(path, ec)) {
    dir = path;
    file = path / "tokenizer.json";
    if (!std::filesystem::is_regular_file(file, ec)) {
      return NotFoundError("{} has no tokenizer.json (only tokenizer.json based tokenizers are supported)",
                           path.string());
    }
  } else if (std::filesystem::is_regular_file(path, ec)) {
    file = path;
    dir = path.parent_path();
  } else {
    return NotFoundError("tokenizer path {} does not exist", path.string());
  }
  TANDEM_ASSIGN_OR_RETURN(auto tj, read_json(file, false));
  // Metadata lives next to tokenizer.json (a model directory).
  TANDEM_ASSIGN_OR_RETURN(auto config, read_json(dir / "tokenizer_config.json", true));
  TANDEM_ASSIGN_OR_RETURN(auto generation, read_json(dir / "generation_config.json", true));
  try {
    auto t = HfTokenizer::create(tj, config, generation, options);
    if (!t.ok()) return t.status().with_context(file.string());
    return std::shared_ptr<Tokenizer>(std::move(t).value());
  } catch (const nlohmann::json::exception& e) {
    // A field of the wrong JSON type that the loader did not check explicitly.
    return InvalidArgumentError("{}: malformed tokenizer files: {}", file.string(), e.what());
  }
}

IncrementalDecoder::IncrementalDecoder(std::shared_ptr<const Tokenizer> tokenizer, bool skip_special_tokens)
    : tok_(std::move(tokenizer)), skip_special_(skip_special_tokens) {}

std::string IncrementalDecoder::step(int32_t id) {
  ids_.push_back(id);
  // A trailing byte-fallback token may still merge with the next ones into one character; ids that
  // decode to nothing (unknown, skipped special) do not end such a run.
  if (tok_->contributes_to_decode(id, skip_special_)) pending_byte_token_ = tok_->is_partial_byte_token(id);
  if (pending_byte_token_) return "";
  std::span<const int32_t> all(ids_);
  std::string prefix_text = tok_->decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_), skip_special_);
  std::string new_text = tok_->decode(all.subspan(prefix_offset_), skip_special_);
  if (new_text.size() <= prefix_text.size()) return "";
  // An incomplete UTF-8 sequence shows up as a trailing U+FFFD: wait for the bytes that complete it.
  if (std::string_view(new_text).ends_with(utf8::kReplacementChar)) return "";
  std::string out = new_text.substr(prefix_text.size());
  prefix_offset_ = read_offset_;
  read_offset_ = ids_.size();
  return out;
}

std::string IncrementalDecoder::flush() {
  std::span<const int32_t> all(ids_);
  std::string prefix_text = tok_->decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_), skip_special_);
  std::string new_text = tok_->decode(all.subspan(prefix_offset_), skip_special_);
  std::string out = new_text.size() > prefix_text.size() ? new_text.substr(prefix_text.size()) : "";
  prefix_offset_ = read_offset_ = ids_.size();
  return out;
}

}  // namespace tandem
