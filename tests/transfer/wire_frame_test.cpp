// Side-channel framing: round trips and every kind of malformed input.
#include <gtest/gtest.h>

#include "transfer/transfer_agent.h"
#include "transfer/wire_frame.h"

namespace tandem {
namespace {

TEST(WireFrame, RoundTrip) {
  std::string bytes = encode_frame(frame_type::kNotify, "hello");
  ASSERT_EQ(bytes.size(), kFrameHeaderSize + 5);
  auto f = decode_frame(bytes, 1024);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ(f->type, frame_type::kNotify);
  EXPECT_EQ(f->payload, "hello");
  auto empty = decode_frame(encode_frame(frame_type::kAck, ""), 1024);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->payload.empty());
}

TEST(WireFrame, RejectsMalformed) {
  std::string good = encode_frame(frame_type::kNotify, "payload");
  // Truncated header and payload.
  EXPECT_EQ(decode_frame(good.substr(0, 7), 1024).status().code(), StatusCode::kInvalidArgument);
  auto trunc = decode_frame(good.substr(0, good.size() - 1), 1024);
  EXPECT_FALSE(trunc.ok());
  EXPECT_NE(trunc.status().message().find("truncated"), std::string::npos);
  // Trailing bytes.
  EXPECT_FALSE(decode_frame(good + "x", 1024).ok());
  // Oversized.
  auto big = decode_frame(good, 3);
  EXPECT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("oversized"), std::string::npos);
  // Wrong version.
  std::string v2 = good;
  v2[4] = 2;
  auto wrong = decode_frame(v2, 1024);
  EXPECT_EQ(wrong.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(wrong.status().message().find("version"), std::string::npos);
  // Bad magic.
  std::string http = "GET / HTTP/1.1\r\n\r\n";
  EXPECT_EQ(decode_frame(http, 1024).status().code(), StatusCode::kInvalidArgument);
  // Type 0.
  std::string t0 = good;
  t0[6] = 0;
  t0[7] = 0;
  EXPECT_FALSE(decode_frame(t0, 1024).ok());
}

TEST(WireFrame, ErrorPayloadRoundTrip) {
  Status st = decode_error_payload(encode_error_payload(NotFoundError("lease {} expired", "r1")));
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_NE(st.message().find("lease r1 expired"), std::string::npos);
  EXPECT_EQ(decode_error_payload("xx").code(), StatusCode::kInvalidArgument);
  WireWriter w;
  w.put_u32(999);
  w.put_string("x");
  EXPECT_EQ(decode_error_payload(w.data()).code(), StatusCode::kInternal);
}

TEST(WireReader, TruncationAndLimits) {
  WireWriter w;
  w.put_u16(7);
  w.put_u64(1ull << 40);
  w.put_string("abc");
  std::string data = w.take();
  {
    WireReader r(data);
    uint16_t a = 0;
    uint64_t b = 0;
    std::string c;
    ASSERT_TRUE(r.read_u16(&a, "a").ok());
    ASSERT_TRUE(r.read_u64(&b, "b").ok());
    ASSERT_TRUE(r.read_string(&c, "c", 16).ok());
    EXPECT_EQ(a, 7);
    EXPECT_EQ(b, 1ull << 40);
    EXPECT_EQ(c, "abc");
    EXPECT_TRUE(r.expect_end("msg").ok());
  }
  {
    WireReader r(std::string_view(data).substr(0, 5));
    uint16_t a = 0;
    uint64_t b = 0;
    ASSERT_TRUE(r.read_u16(&a, "a").ok());
    Status st = r.read_u64(&b, "field b");
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find("field b"), std::string::npos);
  }
  {
    WireReader r(data);
    uint16_t a = 0;
    uint64_t b = 0;
    std::string c;
    (void)r.read_u16(&a, "a");
    (void)r.read_u64(&b, "b");
    EXPECT_FALSE(r.read_string(&c, "c", 2).ok());  // over the limit
  }
  {
    // A string length that claims more than what follows.
    WireWriter bad;
    bad.put_u32(1000);
    std::string s;
    WireReader r(bad.data());
    EXPECT_FALSE(r.read_string(&s, "s", 4096).ok());
  }
}

TEST(Descriptors, CoalesceRuns) {
  std::vector<ReadDescriptor> d = {{1000, 5000, 10}, {1010, 5010, 10}, {1020, 5020, 10},  // one run
                                   {2000, 6000, 10},                                      // gap
                                   {2010, 7000, 10},                                      // remote jumps
                                   {2020, 7010, 0},                                       // empty dropped
                                   {2020, 7010, 5}};
  auto c = coalesce_descriptors(d);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].local_addr, 1000u);
  EXPECT_EQ(c[0].length, 30u);
  EXPECT_EQ(c[1].length, 10u);
  EXPECT_EQ(c[2].remote_addr, 7000u);
  EXPECT_EQ(c[2].length, 15u);
}

}  // namespace
}  // namespace tandem
