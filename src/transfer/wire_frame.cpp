// Side-channel frame encoding and bounds-checked payload reading (see wire_frame.h).
#include "transfer/wire_frame.h"

#include <cstring>

namespace tandem {
namespace {

uint64_t load_le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}
void store_le(uint8_t* p, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) p[i] = static_cast<uint8_t>((v >> (8 * i)) & 0xff);
}

}  // namespace

void encode_frame_header(uint16_t type, uint32_t payload_size, uint8_t out[kFrameHeaderSize]) {
  store_le(out, kFrameMagic, 4);
  store_le(out + 4, kWireVersion, 2);
  store_le(out + 6, type, 2);
  store_le(out + 8, payload_size, 4);
  store_le(out + 12, 0, 4);
}

std::string encode_frame(uint16_t type, std::string_view payload) {
  std::string out(kFrameHeaderSize + payload.size(), '\0');
  encode_frame_header(type, static_cast<uint32_t>(payload.size()), reinterpret_cast<uint8_t*>(out.data()));
  if (!payload.empty()) std::memcpy(out.data() + kFrameHeaderSize, payload.data(), payload.size());
  return out;
}

Result<FrameHeader> decode_frame_header(std::span<const uint8_t> bytes, uint32_t max_payload) {
  if (bytes.size() < kFrameHeaderSize) {
    return InvalidArgumentError("truncated frame header: {} of {} bytes", bytes.size(), kFrameHeaderSize);
  }
  const uint8_t* p = bytes.data();
  uint32_t magic = static_cast<uint32_t>(load_le(p, 4));
  if (magic != kFrameMagic) return InvalidArgumentError("bad frame magic 0x{:08x} (not a tandem side channel peer)", magic);
  FrameHeader h;
  h.version = static_cast<uint16_t>(load_le(p + 4, 2));
  if (h.version != kWireVersion) {
    return FailedPreconditionError("unsupported side channel wire version {} (this build speaks {})", h.version, kWireVersion);
  }
  h.type = static_cast<uint16_t>(load_le(p + 6, 2));
  h.payload_size = static_cast<uint32_t>(load_le(p + 8, 4));
  if (h.type == 0) return InvalidArgumentError("frame type 0 is invalid");
  if (h.payload_size > max_payload) {
    return InvalidArgumentError("oversized frame: payload {} bytes exceeds the limit of {}", h.payload_size, max_payload);
  }
  return h;
}

Result<Frame> decode_frame(std::string_view bytes, uint32_t max_payload) {
  TANDEM_ASSIGN_OR_RETURN(FrameHeader h, decode_frame_header(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), max_payload));
  size_t have = bytes.size() - kFrameHeaderSize;
  if (have < h.payload_size) return InvalidArgumentError("truncated frame: payload {} of {} bytes", have, h.payload_size);
  if (have > h.payload_size) return InvalidArgumentError("{} trailing bytes after the frame", have - h.payload_size);
  return Frame{h.type, std::string(bytes.substr(kFrameHeaderSize))};
}

std::string encode_error_payload(const Status& status) {
  WireWriter w;
  w.put_u32(static_cast<uint32_t>(status.code()));
  w.put_string(status.message());
  return w.take();
}

Status decode_error_payload(std::string_view payload) {
  WireReader r(payload);
  uint32_t code = 0;
  std::string message;
  Status st = r.read_u32(&code, "error code");
  if (st.ok()) st = r.read_string(&message, "error message", 1u << 16);
  if (!st.ok()) return InvalidArgumentError("malformed error frame from peer: {}", st.message());
  if (code == 0 || code > static_cast<uint32_t>(StatusCode::kInternal)) {
    return Status(StatusCode::kInternal, fmt::format("peer error with unknown code {}: {}", code, message));
  }
  return Status(static_cast<StatusCode>(code), "peer: " + message);
}

Status WireReader::read_le(uint64_t* v, int n, std::string_view field) {
  if (remaining() < static_cast<size_t>(n)) {
    pos_ = data_.size();
    return InvalidArgumentError("truncated message: missing {} ({} bytes needed, {} left)", field, n, remaining());
  }
  *v = load_le(reinterpret_cast<const uint8_t*>(data_.data() + pos_), n);
  pos_ += n;
  return Status::Ok();
}

Status WireReader::read_u8(uint8_t* v, std::string_view field) {
  uint64_t x = 0;
  TANDEM_RETURN_IF_ERROR(read_le(&x, 1, field));
  *v = static_cast<uint8_t>(x);
  return Status::Ok();
}
Status WireReader::read_u16(uint16_t* v, std::string_view field) {
  uint64_t x = 0;
  TANDEM_RETURN_IF_ERROR(read_le(&x, 2, field));
  *v = static_cast<uint16_t>(x);
  return Status::Ok();
}
Status WireReader::read_u32(uint32_t* v, std::string_view field) {
  uint64_t x = 0;
  TANDEM_RETURN_IF_ERROR(read_le(&x, 4, field));
  *v = static_cast<uint32_t>(x);
  return Status::Ok();
}
Status WireReader::read_u64(uint64_t* v, std::string_view field) { return read_le(v, 8, field); }

Status WireReader::read_string(std::string* v, std::string_view field, uint32_t max_len) {
  uint32_t n = 0;
  TANDEM_RETURN_IF_ERROR(read_u32(&n, field));
  if (n > max_len) return InvalidArgumentError("{} is {} bytes, over the limit of {}", field, n, max_len);
  if (remaining() < n) {
    pos_ = data_.size();
    return InvalidArgumentError("truncated message: {} needs {} bytes, {} left", field, n, remaining());
  }
  v->assign(data_.substr(pos_, n));
  pos_ += n;
  return Status::Ok();
}

Status WireReader::expect_end(std::string_view what) const {
  if (remaining() != 0) return InvalidArgumentError("{}: {} unexpected trailing bytes", what, remaining());
  return Status::Ok();
}

}  // namespace tandem
