// --kv-transfer-config parsing, kv_transfer_params, handshake metadata and notifications: round trips
// and malformed input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "disagg/engine_metadata.h"
#include "disagg/kv_transfer_config.h"
#include "disagg/kv_transfer_params.h"

namespace tandem {
namespace {

// A file in the temp directory, removed when the test ends.
class TempFile {
 public:
  TempFile(const std::string& name, const std::string& text)
      : path_(std::filesystem::temp_directory_path() / (std::to_string(getpid()) + "_" + name)) {
    std::ofstream(path_) << text;
  }
  ~TempFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

TEST(KvTransferConfig, JsonWithVllmAliases) {
  auto c = parse_kv_transfer_config(
      R"({"kv_connector":"NixlConnector","kv_role":"kv_consumer","kv_ip":"0.0.0.0","kv_port":7300,"transport":"tcp",
          "lease_duration_s":12.5,"transfer_timeout_s":2,"kv_load_failure_policy":"fail","num_transfer_threads":2})");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->role, KvTransferRole::kConsumer);
  EXPECT_EQ(c->side_channel_host, "0.0.0.0");
  EXPECT_EQ(c->side_channel_port, 7300);
  EXPECT_EQ(c->transport, TransportKind::kTcp);
  EXPECT_EQ(c->lease_duration.count(), 12500);
  EXPECT_EQ(c->transfer_timeout.count(), 2000);
  EXPECT_EQ(c->failure_policy, KvLoadFailurePolicy::kFail);
  EXPECT_EQ(c->num_transfer_threads, 2);
  auto d = parse_kv_transfer_config(R"({"role":"producer"})");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->role, KvTransferRole::kProducer);
  EXPECT_EQ(d->lease_duration.count(), 30000);
  EXPECT_EQ(d->failure_policy, KvLoadFailurePolicy::kRecompute);
  EXPECT_EQ(parse_kv_transfer_config(R"({"kv_role":"kv_both"})")->role, KvTransferRole::kBoth);
}

TEST(KvTransferConfig, ErrorsNameTheKey) {
  struct Case {
    const char* spec;
    const char* needle;
  } cases[] = {
      {R"({"rolle":"producer"})", "rolle"},
      {R"({"role":"prefiller"})", "role"},
      {R"({"transport":"rdma"})", "transport"},
      {R"({"side_channel_port":70000})", "side_channel_port"},
      {R"({"side_channel_port":"80"})", "side_channel_port"},
      {R"({"lease_duration_s":-1})", "lease_duration_s"},
      {R"({"transfer_timeout_s":"soon"})", "transfer_timeout_s"},
      {R"({"kv_load_failure_policy":"retry"})", "kv_load_failure_policy"},
      {R"({"num_transfer_threads":0})", "num_transfer_threads"},
      {R"({"kv_connector":"LMCacheConnectorV1"})", "kv_connector"},
      {R"({"lease_duration_s":1,"transfer_timeout_s":5})", "lease_duration_s"},
      {R"({"role": )", "JSON"},
  };
  for (const Case& c : cases) {
    auto r = parse_kv_transfer_config(c.spec);
    ASSERT_FALSE(r.ok()) << c.spec;
    EXPECT_NE(r.status().message().find(c.needle), std::string::npos) << r.status().message();
  }
  EXPECT_EQ(parse_kv_transfer_config("/nonexistent/cfg.yaml").status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(parse_kv_transfer_config("").ok());
}

TEST(KvTransferConfig, YamlFiles) {
  TempFile cfg("cfg.yaml", "role: consumer\nside_channel_port: 7301\nlease_duration_s: 45\nadvertise_host: 'decoder-1'\n");
  auto c = parse_kv_transfer_config(cfg.path());
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->role, KvTransferRole::kConsumer);
  EXPECT_EQ(c->side_channel_port, 7301);
  EXPECT_EQ(c->lease_duration.count(), 45000);
  EXPECT_EQ(c->advertise_host, "decoder-1");
  TempFile bad("bad.yaml", "role: consumer\nlease_duration_s: [1, 2]\n");
  auto b = parse_kv_transfer_config(bad.path());
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("lease_duration_s"), std::string::npos);
  TempFile broken("broken.yaml", "role: [consumer\n");
  EXPECT_FALSE(parse_kv_transfer_config(broken.path()).ok());
  TempFile quoted("quoted.yaml", "side_channel_port: '7301'\n");  // a string, not a port
  EXPECT_FALSE(parse_kv_transfer_config(quoted.path()).ok());
}

TEST(KvTransferConfig, ExampleConfigsParse) {
  std::string dir = std::string(TANDEM_SOURCE_DIR) + "/examples/disagg_prefill/configs/";
  auto p = parse_kv_transfer_config(dir + "prefiller.yaml");
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(p->role, KvTransferRole::kProducer);
  auto d = parse_kv_transfer_config(dir + "decoder.yaml");
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->role, KvTransferRole::kConsumer);
}

TEST(KvTransferParams, RoundTripAndVllmShape) {
  KvTransferParams p;
  p.do_remote_prefill = true;
  p.remote_engine_id = "engine-a";
  p.remote_request_id = "cmpl-1";
  p.remote_host = "10.0.0.1";
  p.remote_port = 7300;
  p.remote_block_ids = {3, 4, 9};
  p.num_prompt_tokens = 40;
  p.first_token_id = 128000;
  p.block_size = 16;
  auto q = parse_kv_transfer_params(serialize_kv_transfer_params(p));
  ASSERT_TRUE(q.ok()) << q.status().to_string();
  EXPECT_TRUE(q->do_remote_prefill);
  EXPECT_EQ(q->remote_block_ids, p.remote_block_ids);
  EXPECT_EQ(q->first_token_id, 128000);
  EXPECT_EQ(q->remote_port, 7300);
  // What vLLM's proxy sends to a prefill instance: nulls everywhere but do_remote_decode.
  auto v = parse_kv_transfer_params(
      R"({"do_remote_decode":true,"do_remote_prefill":false,"remote_engine_id":null,"remote_block_ids":null,"remote_host":null,"remote_port":null})");
  ASSERT_TRUE(v.ok()) << v.status().to_string();
  EXPECT_TRUE(v->do_remote_decode);
}

TEST(KvTransferParams, MalformedNamesTheField) {
  struct Case {
    const char* json;
    const char* needle;
  } cases[] = {
      {"[1]", "object"},
      {"{", "JSON"},
      {R"({"do_remote_decode":"yes"})", "do_remote_decode"},
      {R"({"do_remote_decode":true,"do_remote_prefill":true})", "both"},
      {R"({"do_remote_prefill":true,"remote_engine_id":"e","remote_request_id":"r","remote_host":"h","remote_port":1,"num_prompt_tokens":3,"first_token_id":1})", "remote_block_ids"},
      {R"({"do_remote_prefill":true,"remote_engine_id":"e","remote_request_id":"r","remote_host":"h","remote_port":0,"remote_block_ids":[1],"num_prompt_tokens":3,"first_token_id":1})", "remote_port"},
      {R"({"do_remote_prefill":true,"remote_engine_id":"e","remote_request_id":"r","remote_host":"h","remote_port":1,"remote_block_ids":[-1],"num_prompt_tokens":3,"first_token_id":1})", "remote_block_ids"},
      {R"({"do_remote_prefill":true,"remote_engine_id":"e","remote_request_id":"r","remote_host":"h","remote_port":1,"remote_block_ids":[1],"num_prompt_tokens":3})", "first_token_id"},
      {R"({"do_remote_prefill":true,"protocol_version":7})", "protocol_version"},
  };
  for (const Case& c : cases) {
    auto r = parse_kv_transfer_params(c.json);
    ASSERT_FALSE(r.ok()) << c.json;
    EXPECT_NE(r.status().message().find(c.needle), std::string::npos) << r.status().message();
  }
}

EngineMetadata sample_metadata() {
  EngineMetadata m;
  m.engine_id = "e1";
  m.host_id = "host/boot";
  m.model_fingerprint = "llama:2x64";
  m.tokenizer_fingerprint = "tok";
  m.layout = KvLayout{2, 2, 8, 16, DType::kF32};
  m.pool_base = 0x7f0000001000ull;
  m.num_blocks = 100;
  m.block_bytes = m.layout.block_bytes();
  m.agents["tcp"] = R"({"kind":"tcp"})";
  return m;
}

TEST(EngineMetadata, RoundTripAndCompatibility) {
  EngineMetadata m = sample_metadata();
  auto r = EngineMetadata::from_json(m.to_json());
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->layout, m.layout);
  EXPECT_EQ(r->pool_base, m.pool_base);
  EXPECT_EQ(r->agents, m.agents);
  EXPECT_TRUE(check_compatible(m, *r).ok());
  EXPECT_EQ(compatibility_fingerprint(m), compatibility_fingerprint(*r));

  EngineMetadata other = m;
  other.layout.block_size = 32;
  other.block_bytes = other.layout.block_bytes();
  other.tokenizer_fingerprint = "tok2";
  Status st = check_compatible(m, other);
  EXPECT_EQ(st.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("block size"), std::string::npos);
  EXPECT_NE(st.message().find("tokenizer"), std::string::npos);
  EXPECT_NE(compatibility_fingerprint(m), compatibility_fingerprint(other));
  EngineMetadata dt = m;
  dt.layout.dtype = DType::kBF16;
  EXPECT_NE(check_compatible(m, dt).message().find("dtype"), std::string::npos);
}

TEST(EngineMetadata, Malformed) {
  EXPECT_FALSE(EngineMetadata::from_json("not json").ok());
  EXPECT_FALSE(EngineMetadata::from_json(R"({"protocol_version":1})").ok());
  std::string v2 = sample_metadata().to_json();
  v2.replace(v2.find("\"protocol_version\":1"), 20, "\"protocol_version\":2");
  auto r = EngineMetadata::from_json(v2);
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
}

TEST(ReleaseNotification, RoundTrip) {
  std::string e, r;
  ASSERT_TRUE(decode_release_notification(encode_release_notification("eng", "req-1"), &e, &r));
  EXPECT_EQ(e, "eng");
  EXPECT_EQ(r, "req-1");
  EXPECT_FALSE(decode_release_notification("hello", &e, &r));
  EXPECT_FALSE(decode_release_notification(R"({"type":"release","engine_id":1})", &e, &r));
}

}  // namespace
}  // namespace tandem
