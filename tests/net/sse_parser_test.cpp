// SseParser, callback form (as the benchmark client uses it): framing split at every byte boundary,
// CRLF, comments, multi-line data, finish().
#include <gtest/gtest.h>

#include "net/sse.h"

namespace tandem {
namespace {

std::vector<std::string> parse_in_pieces(const std::string& stream, size_t piece) {
  SseParser p;
  std::vector<std::string> events;
  auto on = [&](const SseEventView& e) {
    if (e.has_data) events.emplace_back(e.data);
  };
  for (size_t i = 0; i < stream.size(); i += piece) p.feed(std::string_view(stream).substr(i, piece), on);
  p.finish(on);
  return events;
}

TEST(SseParser, EventsSurviveAnySplit) {
  const std::string stream =
      ": ping\n\ndata: {\"a\":1}\n\ndata:{\"b\":2}\r\n\r\nevent: x\nid: 3\ndata: l1\ndata: l2\n\n\n\ndata: [DONE]\n\n";
  const std::vector<std::string> want = {"{\"a\":1}", "{\"b\":2}", "l1\nl2", "[DONE]"};
  for (size_t piece = 1; piece <= stream.size(); ++piece) {
    EXPECT_EQ(parse_in_pieces(stream, piece), want) << "piece size " << piece;
  }
}

TEST(SseParser, CrOnlyLineEndsAndUnterminatedLastEvent) {
  EXPECT_EQ(parse_in_pieces("data: a\r\rdata: b\r\r", 1), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(parse_in_pieces("data: last", 3), (std::vector<std::string>{"last"}));
  EXPECT_EQ(parse_in_pieces("data: x\n", 100), (std::vector<std::string>{"x"}));
  EXPECT_TRUE(parse_in_pieces(": only a comment\n\n\n", 2).empty());
}

TEST(SseParser, DispatchesOnlyWhenTheBlankLineArrives) {
  SseParser p;
  std::vector<std::string> events;
  auto on = [&](const SseEventView& e) {
    if (e.has_data) events.emplace_back(e.data);
  };
  p.feed("data: {\"x\":1}\n", on);
  EXPECT_TRUE(events.empty());
  p.feed("\n", on);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(p.buffered_bytes(), 0u);
}

}  // namespace
}  // namespace tandem
