// Framing for the side channel (handshake, tcp-transport reads, notifications). Every message is a
// 16-byte little-endian header {magic "TDSC", version, type, payload size, reserved} followed by the
// payload. Decoding checks magic, version and a payload-size limit, so a malformed, oversized or
// wrong-version frame is an error Status, never a crash. WireWriter/WireReader build and parse the
// binary payloads (little-endian integers, length-prefixed strings) with bounds checks.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"

namespace tandem {

inline constexpr uint32_t kFrameMagic = 0x43534454u;  // bytes "TDSC"
inline constexpr uint16_t kWireVersion = 1;
inline constexpr size_t kFrameHeaderSize = 16;
inline constexpr uint32_t kDefaultMaxFramePayload = 4u << 20;  // 4 MiB

// Frame types used by the transfer layer; users of the side channel (disagg) take types >= kUserBase.
namespace frame_type {
inline constexpr uint16_t kError = 1;        // payload: u32 StatusCode + string message
inline constexpr uint16_t kReadRequest = 2;  // tcp agent: descriptors to read
inline constexpr uint16_t kReadReply = 3;    // tcp agent: u64 total bytes, then that many raw bytes follow
inline constexpr uint16_t kNotify = 4;       // payload: string message
inline constexpr uint16_t kAck = 5;          // empty
inline constexpr uint16_t kUserBase = 64;
}  // namespace frame_type

struct FrameHeader {
  uint16_t version = kWireVersion;
  uint16_t type = 0;
  uint32_t payload_size = 0;
};

struct Frame {
  uint16_t type = 0;
  std::string payload;
};

void encode_frame_header(uint16_t type, uint32_t payload_size, uint8_t out[kFrameHeaderSize]);
std::string encode_frame(uint16_t type, std::string_view payload);
// Checks magic, version and payload_size <= max_payload.
Result<FrameHeader> decode_frame_header(std::span<const uint8_t> bytes, uint32_t max_payload);
// Decodes exactly one whole frame from `bytes` (no trailing bytes allowed).
Result<Frame> decode_frame(std::string_view bytes, uint32_t max_payload);

// An error reply: the status code and message travel to the peer, which gets them back as a Status.
std::string encode_error_payload(const Status& status);
Status decode_error_payload(std::string_view payload);

class WireWriter {
 public:
  void put_u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void put_u16(uint16_t v) { put_le(v, 2); }
  void put_u32(uint32_t v) { put_le(v, 4); }
  void put_u64(uint64_t v) { put_le(v, 8); }
  void put_string(std::string_view s) {  // u32 length + bytes
    put_u32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  const std::string& data() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void put_le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string out_;
};

// Reads fields in order; the first failure names the field and sticks (later reads fail too).
class WireReader {
 public:
  explicit WireReader(std::string_view data) : data_(data) {}
  Status read_u8(uint8_t* v, std::string_view field);
  Status read_u16(uint16_t* v, std::string_view field);
  Status read_u32(uint32_t* v, std::string_view field);
  Status read_u64(uint64_t* v, std::string_view field);
  Status read_string(std::string* v, std::string_view field, uint32_t max_len);
  size_t remaining() const { return data_.size() - pos_; }
  // Error unless every byte was consumed.
  Status expect_end(std::string_view what) const;

 private:
  Status read_le(uint64_t* v, int n, std::string_view field);
  std::string_view data_;
  size_t pos_ = 0;
};

}  // namespace tandem
