// read_file (see file_util.h).
#include "common/file_util.h"

#include <fstream>
#include <sstream>

namespace tandem {

Result<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError("cannot open {}", path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return IoErrorError("error reading {}", path.string());
  return ss.str();
}

}  // namespace tandem
