// Logging through spdlog. Log configuration is process-wide by nature (one stderr); engine state never is.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

#include "common/status.h"

namespace tandem {

// Parses "trace|debug|info|warning|warn|error|critical|off" (case-insensitive) and applies it.
Status set_log_level(std::string_view level);

#define TLOG_TRACE(...) SPDLOG_TRACE(__VA_ARGS__)
#define TLOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define TLOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define TLOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define TLOG_ERROR(...) ::spdlog::error(__VA_ARGS__)

}  // namespace tandem
