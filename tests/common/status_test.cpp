#include "common/status.h"

#include <gtest/gtest.h>

#include "common/channel.h"

namespace tandem {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return InvalidArgumentError("value {} is not positive", v);
  return v;
}

Status use(int v, int* out) {
  TANDEM_ASSIGN_OR_RETURN(*out, parse_positive(v));
  return Status::Ok();
}

TEST(Status, OkAndErrors) {
  EXPECT_TRUE(Status::Ok().ok());
  Status s = NotFoundError("tensor '{}' missing", "w");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.to_string(), "NotFound: tensor 'w' missing");
  EXPECT_EQ(s.with_context("model.safetensors").message(), "model.safetensors: tensor 'w' missing");
}

TEST(Result, ValueAndPropagation) {
  int out = 0;
  EXPECT_TRUE(use(3, &out).ok());
  EXPECT_EQ(out, 3);
  Status s = use(-1, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("-1"), std::string::npos);
}

TEST(Channel, PopTimesOutAndDrainsAfterClose) {
  Channel<int> ch;
  int v = 0;
  EXPECT_EQ(ch.pop(v, std::chrono::milliseconds(1)), Channel<int>::RecvStatus::kTimeout);
  ch.push(7);
  ch.close();
  EXPECT_FALSE(ch.push(8));
  EXPECT_EQ(ch.pop(v, std::chrono::milliseconds(1)), Channel<int>::RecvStatus::kOk);
  EXPECT_EQ(v, 7);
  EXPECT_EQ(ch.pop(v, std::chrono::milliseconds(1)), Channel<int>::RecvStatus::kClosed);
}

}  // namespace
}  // namespace tandem
