#include "common/logging.h"

#include <algorithm>
#include <string>

namespace tandem {

Status set_log_level(std::string_view level) {
  std::string l(level);
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
  if (l == "warning") l = "warn";
  auto lvl = spdlog::level::from_str(l);
  // from_str returns off for unknown names; accept "off" only when asked for literally.
  if (lvl == spdlog::level::off && l != "off") {
    return InvalidArgumentError("unknown log level '{}' (expected trace, debug, info, warning, error, critical, off)",
                                level);
  }
  spdlog::set_level(lvl);
  return Status::Ok();
}

}  // namespace tandem
