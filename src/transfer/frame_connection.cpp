// FrameConnection over a non-blocking POSIX socket with poll()-based deadlines (see frame_connection.h).
#include "transfer/frame_connection.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tandem {
namespace {

constexpr auto kTick = std::chrono::milliseconds(50);

int poll_timeout_ms(TimePoint deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (left.count() <= 0) return 0;
  return static_cast<int>(std::min<int64_t>(left.count(), kTick.count()));
}

void set_socket_options(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  int flags = fcntl(fd, F_GETFL, 0);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

}  // namespace

FrameConnection::FrameConnection(int fd, std::string peer_name) : fd_(fd), peer_name_(std::move(peer_name)) {
  set_socket_options(fd_);
}

FrameConnection::~FrameConnection() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<FrameConnection>> FrameConnection::connect(const std::string& host, int port,
                                                                  std::chrono::milliseconds timeout) {
  TimePoint deadline = Clock::now() + timeout;
  std::string name = fmt::format("{}:{}", host, port);
  if (port <= 0 || port > 65535) return InvalidArgumentError("bad side channel port {} for {}", port, host);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) return UnavailableError("cannot resolve side channel host '{}': {}", host, gai_strerror(rc));
  Status last = UnavailableError("no address for {}", name);
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      last = UnavailableError("socket(): {}", std::strerror(errno));
      continue;
    }
    set_socket_options(fd);
    int c = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (c != 0 && errno != EINPROGRESS) {
      last = UnavailableError("connect to {} failed: {}", name, std::strerror(errno));
      ::close(fd);
      continue;
    }
    if (c != 0) {
      pollfd p{fd, POLLOUT, 0};
      int left = static_cast<int>(std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count()));
      int pr = ::poll(&p, 1, left);
      int err = 0;
      socklen_t len = sizeof(err);
      if (pr <= 0) {
        last = pr == 0 ? DeadlineExceededError("connect to {} timed out after {} ms", name, timeout.count())
                       : UnavailableError("connect to {}: {}", name, std::strerror(errno));
        ::close(fd);
        continue;
      }
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        last = UnavailableError("connect to {} failed: {}", name, std::strerror(err));
        ::close(fd);
        continue;
      }
    }
    freeaddrinfo(res);
    return std::make_unique<FrameConnection>(fd, name);
  }
  freeaddrinfo(res);
  return last;
}

Status FrameConnection::wait_io(bool for_write, TimePoint deadline, const std::atomic<bool>* cancel) {
  while (true) {
    if (broken_) return UnavailableError("connection to {} is closed", peer_name_);
    if (cancel != nullptr && cancel->load()) return AbortedError("cancelled");
    pollfd p{fd_, static_cast<short>(for_write ? POLLOUT : POLLIN), 0};
    int pr = ::poll(&p, 1, poll_timeout_ms(deadline));
    if (pr > 0) return Status::Ok();
    if (pr < 0 && errno != EINTR) return UnavailableError("poll on {}: {}", peer_name_, std::strerror(errno));
    if (Clock::now() >= deadline) return DeadlineExceededError("timed out waiting for {}", peer_name_);
  }
}

Status FrameConnection::wait_readable(TimePoint deadline, const std::atomic<bool>* cancel) {
  return wait_io(false, deadline, cancel);
}

Status FrameConnection::send_bytes(const void* data, size_t n, TimePoint deadline, const std::atomic<bool>* cancel) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::send(fd_, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w;
      n -= static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      Status st = wait_io(true, deadline, cancel);
      if (!st.ok()) return fail(st);
      continue;
    }
    return fail(UnavailableError("send to {} failed: {}", peer_name_, std::strerror(errno)));
  }
  return Status::Ok();
}

Status FrameConnection::recv_bytes(void* data, size_t n, TimePoint deadline, const std::atomic<bool>* cancel) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    ssize_t r = ::recv(fd_, p, n, 0);
    if (r > 0) {
      p += r;
      n -= static_cast<size_t>(r);
      continue;
    }
    if (r == 0) return fail(UnavailableError("peer {} closed the connection", peer_name_));
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      Status st = wait_io(false, deadline, cancel);
      if (!st.ok()) return fail(st);
      continue;
    }
    return fail(UnavailableError("recv from {} failed: {}", peer_name_, std::strerror(errno)));
  }
  return Status::Ok();
}

Status FrameConnection::send_frame(uint16_t type, std::string_view payload, TimePoint deadline) {
  if (payload.size() > 0xffffffffu) return InvalidArgumentError("frame payload too large");
  uint8_t header[kFrameHeaderSize];
  encode_frame_header(type, static_cast<uint32_t>(payload.size()), header);
  TANDEM_RETURN_IF_ERROR(send_bytes(header, sizeof(header), deadline));
  return send_bytes(payload.data(), payload.size(), deadline);
}

Result<Frame> FrameConnection::recv_frame(TimePoint deadline, uint32_t max_payload, const std::atomic<bool>* cancel) {
  uint8_t header[kFrameHeaderSize];
  TANDEM_RETURN_IF_ERROR(recv_bytes(header, sizeof(header), deadline, cancel));
  auto h = decode_frame_header(std::span<const uint8_t>(header, sizeof(header)), max_payload);
  if (!h.ok()) return fail(h.status());  // the stream cannot be resynchronised
  Frame f;
  f.type = h->type;
  f.payload.resize(h->payload_size);
  TANDEM_RETURN_IF_ERROR(recv_bytes(f.payload.data(), f.payload.size(), deadline, cancel));
  return f;
}

Result<Frame> FrameConnection::request(uint16_t type, std::string_view payload, TimePoint deadline,
                                       uint32_t max_reply_payload) {
  TANDEM_RETURN_IF_ERROR(send_frame(type, payload, deadline));
  TANDEM_ASSIGN_OR_RETURN(Frame reply, recv_frame(deadline, max_reply_payload));
  if (reply.type == frame_type::kError) return decode_error_payload(reply.payload);
  return reply;
}

void FrameConnection::shutdown() {
  broken_ = true;
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
}

}  // namespace tandem
