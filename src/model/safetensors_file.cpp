// SafetensorsFile: mmap + header validation; write_safetensors: the matching writer.
#include "model/safetensors_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

namespace tandem {

int64_t SafetensorsTensor::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

std::string SafetensorsTensor::shape_string() const { return fmt::format("[{}]", fmt::join(shape, ", ")); }

namespace {

std::string_view safetensors_code(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kI32: return "I32";
    case DType::kI64: return "I64";
    case DType::kU8: return "U8";
  }
  return "?";
}

Result<DType> parse_safetensors_dtype(const std::string& code) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kI32, DType::kI64, DType::kU8}) {
    if (code == safetensors_code(t)) return t;
  }
  return InvalidArgumentError("unsupported dtype '{}'", code);
}

// Validates one header entry; fills *t (data pointer relative to data_begin).
Status parse_entry(const std::string& file, const std::string& name, const nlohmann::json& e, const uint8_t* data_begin,
                   uint64_t data_bytes, SafetensorsTensor* t) {
  if (!e.is_object()) return InvalidArgumentError("{}: tensor '{}': header entry is not an object", file, name);
  auto dt = e.find("dtype");
  if (dt == e.end() || !dt->is_string()) return InvalidArgumentError("{}: tensor '{}': missing 'dtype'", file, name);
  auto parsed = parse_safetensors_dtype(dt->get<std::string>());
  if (!parsed.ok()) return InvalidArgumentError("{}: tensor '{}': {}", file, name, parsed.status().message());
  t->name = name;
  t->dtype = *parsed;
  auto sh = e.find("shape");
  if (sh == e.end() || !sh->is_array()) return InvalidArgumentError("{}: tensor '{}': missing 'shape'", file, name);
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0)) {
      return InvalidArgumentError("{}: tensor '{}': bad shape {}", file, name, sh->dump());
    }
    uint64_t v = d.get<uint64_t>();
    if (v != 0 && numel > (uint64_t{1} << 62) / v) return InvalidArgumentError("{}: tensor '{}': shape too large", file, name);
    numel *= v;
    t->shape.push_back(static_cast<int64_t>(v));
  }
  auto off = e.find("data_offsets");
  if (off == e.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned()) {
    return InvalidArgumentError("{}: tensor '{}': missing or bad 'data_offsets'", file, name);
  }
  uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
  if (begin > end) return InvalidArgumentError("{}: tensor '{}': data_offsets [{}, {}] decrease", file, name, begin, end);
  if (end > data_bytes) {
    return InvalidArgumentError("{}: tensor '{}': data ends at byte {} of a {}-byte data section (file truncated?)", file,
                                name, end, data_bytes);
  }
  if (end - begin != numel * dtype_size(t->dtype)) {
    return InvalidArgumentError("{}: tensor '{}': {} bytes for shape {} of {} (expected {})", file, name, end - begin,
                                t->shape_string(), dt->get<std::string>(), numel * dtype_size(t->dtype));
  }
  t->data = data_begin + begin;
  t->nbytes = end - begin;
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(const std::filesystem::path& path) {
  const std::string file = path.string();
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFoundError("cannot open {}: {}", file, std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return IoErrorError("cannot stat {}: {}", file, std::strerror(err));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return InvalidArgumentError("{}: file of {} bytes is too short for a safetensors header", file, size);
  }
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  ::close(fd);
  if (map == MAP_FAILED) return IoErrorError("cannot mmap {}: {}", file, std::strerror(map_err));

  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->map_ = map;
  f->map_bytes_ = size;
  const uint8_t* bytes = static_cast<const uint8_t*>(map);
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= static_cast<uint64_t>(bytes[i]) << (8 * i);
  if (header_len > size - 8) {
    return InvalidArgumentError("{}: header length {} exceeds the file size {} (truncated or not safetensors)", file,
                                header_len, size);
  }
  const uint8_t* data_begin = bytes + 8 + header_len;
  const uint64_t data_bytes = size - 8 - header_len;
  try {
    auto header = nlohmann::json::parse(bytes + 8, bytes + 8 + header_len);
    if (!header.is_object()) return InvalidArgumentError("{}: header is not a JSON object", file);
    for (auto it = header.begin(); it != header.end(); ++it) {
      if (it.key() == "__metadata__") {
        if (it->is_object()) {
          for (auto m = it->begin(); m != it->end(); ++m) {
            if (m->is_string()) f->metadata_[m.key()] = m->get<std::string>();
          }
        }
        continue;
      }
      SafetensorsTensor t;
      TANDEM_RETURN_IF_ERROR(parse_entry(file, it.key(), it.value(), data_begin, data_bytes, &t));
      f->tensors_.emplace(it.key(), std::move(t));
    }
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError("{}: invalid safetensors header JSON: {}", file, e.what());
  }
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) munmap(map_, map_bytes_);
}

const SafetensorsTensor* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

Status write_safetensors(const std::filesystem::path& path, const std::vector<SafetensorsWriteEntry>& entries,
                         const std::map<std::string, std::string>& metadata) {
  std::vector<const SafetensorsWriteEntry*> sorted;
  for (const auto& e : entries) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->name < b->name; });
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto* e : sorted) {
    header[e->name] = {{"dtype", std::string(safetensors_code(e->dtype))},
                       {"shape", e->shape},
                       {"data_offsets", {offset, offset + e->bytes.size()}}};
    offset += e->bytes.size();
  }
  std::string text = header.dump();
  while ((text.size() + 8) % 8 != 0) text.push_back(' ');  // align the data section to 8 bytes
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return IoErrorError("cannot create {}", path.string());
  uint64_t len = text.size();
  uint8_t len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<uint8_t>(len >> (8 * i));
  out.write(reinterpret_cast<const char*>(len_bytes), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto* e : sorted) out.write(reinterpret_cast<const char*>(e->bytes.data()), static_cast<std::streamsize>(e->bytes.size()));
  out.close();
  if (!out) return IoErrorError("error writing {}", path.string());
  return Status::Ok();
}

}  // namespace tandem
