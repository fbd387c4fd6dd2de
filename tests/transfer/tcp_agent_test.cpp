// The tcp agent between two agents in one process over loopback: reads of many regions, bounds
// checks, timeouts, a dead peer, cancellation, notifications, and a side channel fed garbage.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <numeric>
#include <random>
#include <thread>

#include "transfer/side_channel_server.h"
#include "transfer/tcp/tcp_agent.h"

namespace tandem {
namespace {

using namespace std::chrono_literals;

struct Node {
  std::shared_ptr<SideChannelServer> server;
  std::unique_ptr<TcpAgent> agent;
};

Node make_node(std::chrono::milliseconds io_timeout = 5000ms) {
  SideChannelOptions so;
  so.host = "127.0.0.1";
  auto server = SideChannelServer::start(so);
  EXPECT_TRUE(server.ok()) << server.status().to_string();
  Node n;
  n.server = std::shared_ptr<SideChannelServer>(std::move(server).value());
  TcpAgentOptions ao;
  ao.io_timeout = io_timeout;
  auto agent = TcpAgent::create(n.server, ao);
  EXPECT_TRUE(agent.ok()) << agent.status().to_string();
  n.agent = std::move(agent).value();
  return n;
}

uint64_t addr_of(const void* p) { return reinterpret_cast<uint64_t>(p); }

std::string connect_peer(TransferAgent& reader, const TransferAgent& owner) {
  auto md = owner.export_metadata();
  EXPECT_TRUE(md.ok());
  auto peer = reader.import_metadata(*md);
  EXPECT_TRUE(peer.ok()) << peer.status().to_string();
  return *peer;
}

TEST(TcpAgent, ReadsManyRegions) {
  Node producer = make_node(), consumer = make_node();
  // The owner has 3 regions; the reader one big one.
  std::vector<std::vector<uint8_t>> src(3, std::vector<uint8_t>(1 << 20));
  std::mt19937 rng(1);
  for (auto& r : src) {
    for (auto& b : r) b = static_cast<uint8_t>(rng());
    ASSERT_TRUE(producer.agent->register_memory({addr_of(r.data()), r.size(), MemoryKind::kHost, 0}).ok());
  }
  std::vector<uint8_t> dst(3 << 20, 0);
  ASSERT_TRUE(consumer.agent->register_memory({addr_of(dst.data()), dst.size(), MemoryKind::kHost, 0}).ok());
  std::string peer = connect_peer(*consumer.agent, *producer.agent);

  // 500 random runs of assorted sizes scattered over the three source regions.
  std::vector<ReadDescriptor> descs;
  uint64_t offset = 0;
  std::vector<std::tuple<int, uint64_t, uint64_t, uint64_t>> expect;  // region, src off, dst off, len
  for (int i = 0; i < 500 && offset < dst.size(); ++i) {
    int region = static_cast<int>(rng() % 3);
    uint64_t len = 1 + rng() % 6000;
    len = std::min<uint64_t>(len, dst.size() - offset);
    uint64_t so = rng() % (src[region].size() - len);
    descs.push_back({addr_of(dst.data() + offset), addr_of(src[region].data() + so), len});
    expect.emplace_back(region, so, offset, len);
    offset += len;
  }
  auto id = consumer.agent->submit_read(peer, descs);
  ASSERT_TRUE(id.ok()) << id.status().to_string();
  TransferStatus st = consumer.agent->wait(*id, 10s);
  ASSERT_EQ(st.state, TransferState::kDone) << st.error.to_string();
  EXPECT_EQ(st.bytes, offset);
  for (auto& [region, so, dof, len] : expect) {
    ASSERT_EQ(0, memcmp(dst.data() + dof, src[region].data() + so, len));
  }
  consumer.agent->release(*id);
  EXPECT_EQ(producer.agent->bytes_served(), offset);

  // Several transfers in flight at once reuse pooled connections.
  std::vector<TransferId> ids;
  for (int k = 0; k < 8; ++k) {
    auto t = consumer.agent->submit_read(peer, {{addr_of(dst.data() + k * 1000), addr_of(src[0].data() + k * 7), 1000}});
    ASSERT_TRUE(t.ok());
    ids.push_back(*t);
  }
  for (int k = 0; k < 8; ++k) {
    ASSERT_EQ(consumer.agent->wait(ids[k], 10s).state, TransferState::kDone);
    EXPECT_EQ(0, memcmp(dst.data() + k * 1000, src[0].data() + k * 7, 1000));
    consumer.agent->release(ids[k]);
  }
}

TEST(TcpAgent, RejectsReadsOutsideRegisteredMemory) {
  Node producer = make_node(), consumer = make_node();
  std::vector<uint8_t> src(4096, 1), dst(4096, 0);
  ASSERT_TRUE(producer.agent->register_memory({addr_of(src.data()), src.size(), MemoryKind::kHost, 0}).ok());
  ASSERT_TRUE(consumer.agent->register_memory({addr_of(dst.data()), dst.size(), MemoryKind::kHost, 0}).ok());
  std::string peer = connect_peer(*consumer.agent, *producer.agent);
  // Remote range runs past the end of the producer's region.
  auto id = consumer.agent->submit_read(peer, {{addr_of(dst.data()), addr_of(src.data()) + 4000, 200}});
  ASSERT_TRUE(id.ok());
  TransferStatus st = consumer.agent->wait(*id, 5s);
  EXPECT_EQ(st.state, TransferState::kFailed);
  EXPECT_EQ(st.error.code(), StatusCode::kInvalidArgument) << st.error.to_string();
  consumer.agent->release(*id);
  // Local destination outside our registered memory is refused at submit.
  std::vector<uint8_t> other(16);
  EXPECT_FALSE(consumer.agent->submit_read(peer, {{addr_of(other.data()), addr_of(src.data()), 16}}).ok());
  // Unknown peer.
  EXPECT_EQ(consumer.agent->submit_read("nobody", {{addr_of(dst.data()), addr_of(src.data()), 16}}).status().code(),
            StatusCode::kNotFound);
  // Overlapping registration.
  EXPECT_FALSE(producer.agent->register_memory({addr_of(src.data()) + 10, 10, MemoryKind::kHost, 0}).ok());
  // The agent still works after the error.
  auto ok = consumer.agent->submit_read(peer, {{addr_of(dst.data()), addr_of(src.data()), 4096}});
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(consumer.agent->wait(*ok, 5s).state, TransferState::kDone);
  consumer.agent->release(*ok);
}

TEST(TcpAgent, DeadPeerFailsFast) {
  Node consumer = make_node(2000ms);
  std::vector<uint8_t> dst(4096);
  ASSERT_TRUE(consumer.agent->register_memory({addr_of(dst.data()), dst.size(), MemoryKind::kHost, 0}).ok());
  std::string peer;
  {
    Node producer = make_node();
    peer = connect_peer(*consumer.agent, *producer.agent);
  }  // the producer is gone: its port refuses connections
  auto t0 = Clock::now();
  auto id = consumer.agent->submit_read(peer, {{addr_of(dst.data()), 0x1000, 16}});
  ASSERT_TRUE(id.ok());
  TransferStatus st = consumer.agent->wait(*id, 10s);
  EXPECT_EQ(st.state, TransferState::kFailed);
  EXPECT_EQ(st.error.code(), StatusCode::kUnavailable) << st.error.to_string();
  EXPECT_LT(seconds_between(t0, Clock::now()), 5.0);
  consumer.agent->release(*id);
  EXPECT_FALSE(consumer.agent->notify(peer, "x").ok());
}

// A listener that accepts and never answers.
struct SilentListener {
  int fd = -1;
  int port = 0;
  std::vector<int> accepted;
  std::thread t;
  std::atomic<bool> stop{false};
  SilentListener() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(0, ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)));
    socklen_t len = sizeof(a);
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    ::listen(fd, 16);
  }
  ~SilentListener() {
    for (int c : accepted) ::close(c);
    ::close(fd);
  }
};

TEST(TcpAgent, StalledPeerTimesOutAndCancelIsPrompt) {
  SilentListener silent;  // the kernel completes connects from its backlog; nobody ever answers
  Node consumer = make_node(400ms);
  std::vector<uint8_t> dst(4096);
  ASSERT_TRUE(consumer.agent->register_memory({addr_of(dst.data()), dst.size(), MemoryKind::kHost, 0}).ok());
  std::string md = fmt::format(R"({{"kind":"tcp","version":1,"name":"silent","host":"127.0.0.1","port":{}}})", silent.port);
  auto peer = consumer.agent->import_metadata(md);
  ASSERT_TRUE(peer.ok()) << peer.status().to_string();

  auto id = consumer.agent->submit_read(*peer, {{addr_of(dst.data()), 0x1000, 16}});
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(consumer.agent->wait(*id, 50ms).state, TransferState::kPending);  // a short wait returns pending
  TransferStatus st = consumer.agent->wait(*id, 5s);
  EXPECT_EQ(st.state, TransferState::kFailed);
  EXPECT_EQ(st.error.code(), StatusCode::kDeadlineExceeded) << st.error.to_string();
  consumer.agent->release(*id);

  // release() of a pending transfer cancels it well before the I/O timeout.
  Node patient = make_node(60000ms);
  ASSERT_TRUE(patient.agent->register_memory({addr_of(dst.data()), dst.size(), MemoryKind::kHost, 0}).ok());
  auto peer2 = patient.agent->import_metadata(md);
  ASSERT_TRUE(peer2.ok());
  auto id2 = patient.agent->submit_read(*peer2, {{addr_of(dst.data()), 0x1000, 16}});
  ASSERT_TRUE(id2.ok());
  std::this_thread::sleep_for(100ms);
  auto t0 = Clock::now();
  patient.agent->release(*id2);
  EXPECT_LT(seconds_between(t0, Clock::now()), 2.0);
}

TEST(TcpAgent, NotificationsArriveInOrder) {
  Node a = make_node(), b = make_node();
  std::atomic<int> callbacks{0};
  b.server->set_notification_callback([&] { ++callbacks; });
  std::string peer = connect_peer(*a.agent, *b.agent);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(a.agent->notify(peer, "done " + std::to_string(i)).ok());
  auto got = b.agent->take_notifications();
  ASSERT_EQ(got.size(), 20u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(got[i], "done " + std::to_string(i));
  EXPECT_EQ(callbacks.load(), 20);
  EXPECT_TRUE(b.agent->take_notifications().empty());
}

TEST(SideChannel, SurvivesGarbageAndAnswersErrors) {
  Node node = make_node();
  int port = node.server->port();
  // Unknown message type: an error reply, and the connection stays usable.
  auto conn = FrameConnection::connect("127.0.0.1", port, 2000ms);
  ASSERT_TRUE(conn.ok());
  auto reply = (*conn)->request(999, "?", Clock::now() + 2s);
  EXPECT_EQ(reply.status().code(), StatusCode::kInvalidArgument);
  WireWriter w;
  w.put_string("still alive");
  auto ack = (*conn)->request(frame_type::kNotify, w.data(), Clock::now() + 2s);
  ASSERT_TRUE(ack.ok()) << ack.status().to_string();
  EXPECT_EQ(ack->type, frame_type::kAck);
  // Malformed read request (truncated descriptor list).
  WireWriter bad;
  bad.put_u32(3);
  bad.put_u64(1);
  auto r2 = (*conn)->request(frame_type::kReadRequest, bad.data(), Clock::now() + 2s);
  EXPECT_EQ(r2.status().code(), StatusCode::kInvalidArgument);

  // Not our protocol at all: an error frame, then the server closes the connection.
  auto raw = FrameConnection::connect("127.0.0.1", port, 2000ms);
  ASSERT_TRUE(raw.ok());
  std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_TRUE((*raw)->send_bytes(http.data(), http.size(), Clock::now() + 1s).ok());
  auto err = (*raw)->recv_frame(Clock::now() + 2s, 1 << 16);
  ASSERT_TRUE(err.ok()) << err.status().to_string();
  EXPECT_EQ(err->type, frame_type::kError);
  EXPECT_NE(decode_error_payload(err->payload).message().find("magic"), std::string::npos);
  char c;
  EXPECT_FALSE((*raw)->recv_bytes(&c, 1, Clock::now() + 2s).ok());

  // Oversized and wrong-version headers.
  for (int which = 0; which < 2; ++which) {
    auto c2 = FrameConnection::connect("127.0.0.1", port, 2000ms);
    ASSERT_TRUE(c2.ok());
    uint8_t header[kFrameHeaderSize];
    encode_frame_header(frame_type::kNotify, which == 0 ? 0x7fffffffu : 4, header);
    if (which == 1) header[4] = 9;
    ASSERT_TRUE((*c2)->send_bytes(header, sizeof(header), Clock::now() + 1s).ok());
    auto e = (*c2)->recv_frame(Clock::now() + 2s, 1 << 16);
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->type, frame_type::kError);
  }
  // A half-sent frame from a stalled client does not block others.
  auto stalled = FrameConnection::connect("127.0.0.1", port, 2000ms);
  ASSERT_TRUE(stalled.ok());
  uint8_t header[kFrameHeaderSize];
  encode_frame_header(frame_type::kNotify, 100, header);
  ASSERT_TRUE((*stalled)->send_bytes(header, sizeof(header), Clock::now() + 1s).ok());
  auto ack2 = (*conn)->request(frame_type::kNotify, w.data(), Clock::now() + 2s);
  EXPECT_TRUE(ack2.ok());
  EXPECT_GE(node.server->frames_rejected(), 3u);
  EXPECT_EQ(node.server->take_notifications().size(), 2u);
}

}  // namespace
}  // namespace tandem
