// Instance registry: URL parsing, least-loaded and round-robin selection, tie rotation, exclusion,
// health ejection/readmission and lease accounting.
#include "proxy/instance_registry.h"

#include <gtest/gtest.h>

namespace tandem::proxy {
namespace {

TEST(InstanceUrl, ParsesHostPortAndPrefix) {
  auto u = parse_instance_url("http://127.0.0.1:7100");
  ASSERT_TRUE(u.ok()) << u.status().to_string();
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 7100);
  EXPECT_EQ(u->base_path, "");
  EXPECT_EQ(u->text, "http://127.0.0.1:7100");

  auto p = parse_instance_url("localhost:8000/prefix/");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->host, "localhost");
  EXPECT_EQ(p->port, 8000);
  EXPECT_EQ(p->base_path, "/prefix");

  auto d = parse_instance_url("http://example");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->port, 80);

  auto v6 = parse_instance_url("http://[::1]:9000");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 9000);
  EXPECT_EQ(v6->text, "http://[::1]:9000");
}

TEST(InstanceUrl, RejectsBadUrls) {
  EXPECT_FALSE(parse_instance_url("https://x:1").ok());
  EXPECT_FALSE(parse_instance_url("http://:80").ok());
  EXPECT_FALSE(parse_instance_url("http://x:0").ok());
  EXPECT_FALSE(parse_instance_url("http://x:70000").ok());
  EXPECT_FALSE(parse_instance_url("http://x:12ab").ok());
  EXPECT_FALSE(parse_instance_url("").ok());
}

TEST(InstanceRegistry, RejectsDuplicates) {
  InstanceRegistry r;
  ASSERT_TRUE(r.add(InstanceRole::kPrefill, "http://a:1").ok());
  EXPECT_FALSE(r.add(InstanceRole::kPrefill, "http://a:1/").ok());
  EXPECT_TRUE(r.add(InstanceRole::kDecode, "http://a:1").ok());  // another role is another instance
}

TEST(InstanceRegistry, PrefillPicksFewestOutstandingPromptTokens) {
  InstanceRegistry r;
  ASSERT_TRUE(r.add(InstanceRole::kPrefill, "http://p:1").ok());
  ASSERT_TRUE(r.add(InstanceRole::kPrefill, "http://p:2").ok());
  auto a = r.select(InstanceRole::kPrefill, 1000);
  ASSERT_TRUE(a);
  auto b = r.select(InstanceRole::kPrefill, 10);
  ASSERT_TRUE(b);
  EXPECT_NE(a->index(), b->index());
  // Instance b has 10 tokens, a 1000: the next two go to b (10 -> 20 -> 30 < 1000).
  auto c = r.select(InstanceRole::kPrefill, 10);
  auto d = r.select(InstanceRole::kPrefill, 10);
  EXPECT_EQ(c->index(), b->index());
  EXPECT_EQ(d->index(), b->index());
  a->release();  // a drops to 0
  auto e = r.select(InstanceRole::kPrefill, 10);
  EXPECT_EQ(e->index(), a->index());
}

TEST(InstanceRegistry, DecodePicksFewestActiveRequestsAndTiesRotate) {
  InstanceRegistry r;
  ASSERT_TRUE(r.add(InstanceRole::kPrefill, "http://p:1").ok());
  ASSERT_TRUE(r.add(InstanceRole::kDecode, "http://d:1").ok());
  ASSERT_TRUE(r.add(InstanceRole::kDecode, "http://d:2").ok());
  ASSERT_TRUE(r.add(InstanceRole::kDecode, "http://d:3").ok());
  // Released at once: all tied at 0 every time, so selection rotates over the three.
  std::vector<size_t> picks;
  for (int i = 0; i < 6; ++i) {
    auto l = r.select(InstanceRole::kDecode, 0);
    ASSERT_TRUE(l);
    EXPECT_EQ(r.role(l->index()), InstanceRole::kDecode);
    picks.push_back(l->index());
  }
  EXPECT_EQ(picks[0], picks[3]);
  EXPECT_EQ(picks[1], picks[4]);
  EXPECT_NE(picks[0], picks[1]);
  EXPECT_NE(picks[1], picks[2]);
  EXPECT_NE(picks[0], picks[2]);

  // Held leases: the least active wins.
  auto x = r.select(InstanceRole::kDecode, 0);
  auto y = r.select(InstanceRole::kDecode, 0);
  auto z = r.select(InstanceRole::kDecode, 0);
  y->release();
  auto w = r.select(InstanceRole::kDecode, 0);
  EXPECT_EQ(w->index(), y->index());
}

TEST(InstanceRegistry, RoundRobinIgnoresLoad) {
  InstanceRegistry r(RoutingPolicy::kRoundRobin);
  ASSERT_TRUE(r.add(InstanceRole::kColocated, "http://c:1").ok());
  ASSERT_TRUE(r.add(InstanceRole::kColocated, "http://c:2").ok());
  auto a = r.select(InstanceRole::kColocated, 5);
  auto b = r.select(InstanceRole::kColocated, 5);
  auto c = r.select(InstanceRole::kColocated, 5);  // a still holds load, round-robin goes back to it
  EXPECT_NE(a->index(), b->index());
  EXPECT_EQ(a->index(), c->index());
}

TEST(InstanceRegistry, ExcludeAndHealth) {
  InstanceRegistry r;
  auto i0 = r.add(InstanceRole::kDecode, "http://d:1");
  auto i1 = r.add(InstanceRole::kDecode, "http://d:2");
  ASSERT_TRUE(i0.ok() && i1.ok());
  auto only1 = r.select(InstanceRole::kDecode, 0, {*i0});
  ASSERT_TRUE(only1);
  EXPECT_EQ(only1->index(), *i1);
  EXPECT_FALSE(r.select(InstanceRole::kDecode, 0, {*i0, *i1}));
  EXPECT_FALSE(r.select(InstanceRole::kPrefill, 0));  // no instance of that role

  EXPECT_TRUE(r.report_request_failure(*i1));  // ejected
  EXPECT_FALSE(r.report_request_failure(*i1));  // already out
  for (int k = 0; k < 4; ++k) EXPECT_EQ(r.select(InstanceRole::kDecode, 0)->index(), *i0);
  EXPECT_TRUE(r.any_healthy(InstanceRole::kDecode));
  EXPECT_TRUE(r.report_health_check(*i0, false));
  EXPECT_FALSE(r.any_healthy(InstanceRole::kDecode));
  EXPECT_FALSE(r.select(InstanceRole::kDecode, 0));
  EXPECT_TRUE(r.report_health_check(*i1, true));  // readmitted
  EXPECT_FALSE(r.report_health_check(*i1, true));
  EXPECT_EQ(r.select(InstanceRole::kDecode, 0)->index(), *i1);
  auto snap = r.snapshot();
  EXPECT_FALSE(snap[*i0].healthy);
  EXPECT_EQ(snap[*i0].consecutive_health_failures, 1);
  EXPECT_EQ(snap[*i1].failures, 2);
}

TEST(InstanceRegistry, LeasesReturnTheirLoad) {
  InstanceRegistry r;
  ASSERT_TRUE(r.add(InstanceRole::kPrefill, "http://p:1").ok());
  {
    auto a = r.select(InstanceRole::kPrefill, 100);
    auto b = r.select(InstanceRole::kPrefill, 50);
    auto snap = r.snapshot();
    EXPECT_EQ(snap[0].outstanding_prompt_tokens, 150);
    EXPECT_EQ(snap[0].active_requests, 2);
    InstanceLease moved = std::move(*a);
    EXPECT_FALSE(a->valid());
    moved.release();
    moved.release();  // idempotent
    EXPECT_EQ(r.snapshot()[0].outstanding_prompt_tokens, 50);
  }
  auto snap = r.snapshot();
  EXPECT_EQ(snap[0].outstanding_prompt_tokens, 0);
  EXPECT_EQ(snap[0].active_requests, 0);
  EXPECT_EQ(snap[0].total_requests, 2);
}

TEST(RoutingPolicy, Parses) {
  EXPECT_EQ(*parse_routing_policy("round_robin"), RoutingPolicy::kRoundRobin);
  EXPECT_EQ(*parse_routing_policy("least_loaded"), RoutingPolicy::kLeastLoaded);
  EXPECT_FALSE(parse_routing_policy("random").ok());
}

}  // namespace
}  // namespace tandem::proxy
