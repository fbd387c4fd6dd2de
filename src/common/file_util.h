// read_file: a whole file's bytes in one string (config, tokenizer and index files). Callers map the
// failure to their own message; the codes tell which step failed.
#pragma once

#include <filesystem>
#include <string>

#include "common/status.h"

namespace tandem {

// The file's contents. kNotFound when it cannot be opened (missing, no permission), kIoError when the
// stream reports a read error.
Result<std::string> read_file(const std::filesystem::path& path);

}  // namespace tandem
