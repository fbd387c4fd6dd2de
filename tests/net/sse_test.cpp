// SSE/chunk framing and the incremental SSE parser.
#include <gtest/gtest.h>

#include "net/sse.h"

namespace tandem {
namespace {

TEST(Sse, DataFraming) {
  EXPECT_EQ(sse_data("{\"a\":1}"), "data: {\"a\":1}\n\n");
  EXPECT_EQ(sse_data("x\ny"), "data: x\ndata: y\n\n");
  EXPECT_EQ(sse_data(""), "data: \n\n");
  EXPECT_EQ(sse_event("error", "{}"), "event: error\ndata: {}\n\n");
  EXPECT_EQ(sse_comment("ping"), ": ping\n\n");
  EXPECT_EQ(std::string(kSseDone), "data: [DONE]\n\n");
}

TEST(Sse, ChunkFraming) {
  EXPECT_EQ(http_chunk("hello"), "5\r\nhello\r\n");
  EXPECT_EQ(http_chunk(std::string(26, 'a')), "1a\r\n" + std::string(26, 'a') + "\r\n");
  EXPECT_EQ(http_chunk(""), "");
  EXPECT_EQ(http_chunk_size_line(5), "5\r\n");
  EXPECT_EQ(http_chunk_size_line(0x1a), "1a\r\n");
  EXPECT_EQ(http_chunk_size_line(0), "0\r\n");
  EXPECT_EQ(http_chunk_size_line(size_t{0xfedcba98}), "fedcba98\r\n");
  const std::string data(300, 'z');
  EXPECT_EQ(http_chunk_size_line(data.size()) + data + std::string(kChunkEnd), http_chunk(data));
}

TEST(Sse, ParserRoundTripsSplitInput) {
  std::string stream = sse_data("one") + sse_comment("keepalive") + sse_event("error", "a\nb") + std::string(kSseDone);
  // Feed one byte at a time: events must come out whole and in order.
  SseParser p;
  std::vector<SseEvent> events;
  for (char c : stream) {
    for (auto& e : p.feed(std::string_view(&c, 1))) events.push_back(std::move(e));
  }
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].data, "one");
  EXPECT_EQ(events[0].event, "");
  EXPECT_EQ(events[1].event, "error");
  EXPECT_EQ(events[1].data, "a\nb");
  EXPECT_EQ(events[2].data, "[DONE]");
}

TEST(Sse, ParserHandlesCrLf) {
  SseParser p;
  auto events = p.feed("data: x\r\n\r\ndata: y\r\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "x");
  events = p.feed("\r\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "y");
}

}  // namespace
}  // namespace tandem
