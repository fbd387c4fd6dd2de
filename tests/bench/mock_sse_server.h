// MockSseServer: a scripted HTTP/1.1 server for the bench tests. Each request (read with Beast) is
// answered by a script chosen from its body: a status line, then body pieces written at injected delays
// (chunked transfer encoding), optionally dropping the connection midway. It stamps every piece's send
// time with the shared monotonic clock so tests can compare the client's receive stamps with it.
// One thread accepts; each connection gets its own thread with blocking I/O and sleep_until timing.
#pragma once

#include <ostream>  // before Beast 1.74 headers

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"

namespace tandem::bench::testing {

struct MockPiece {
  double delay_ms = 0;  // after the previous piece (the first: after the request was read)
  std::string bytes;    // body bytes (one HTTP chunk)
};

struct MockScript {
  int status = 200;
  std::string reason = "OK";
  std::vector<MockPiece> pieces;
  bool drop_after_pieces = false;  // close the socket after the pieces, without the final chunk
  std::string error_body;          // body of a non-200 response
};

struct MockRecord {
  std::string body;
  std::string request_id;
  TimePoint received;
  std::vector<TimePoint> sent;  // per piece, just before its write
};

class MockSseServer {
 public:
  using ScriptFn = std::function<MockScript(const std::string& request_body)>;

  explicit MockSseServer(ScriptFn script) : script_(std::move(script)), acceptor_(io_) {
    namespace asio = boost::asio;
    asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(1024);
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { accept_loop(); });
  }

  ~MockSseServer() {
    stopping_ = true;
    boost::system::error_code ec;
    {  // wake the blocking accept()
      boost::asio::ip::tcp::socket wake(io_);
      wake.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ec);
    }
    if (accept_thread_.joinable()) accept_thread_.join();
    acceptor_.close(ec);
    {
      std::lock_guard lock(mu_);
      for (auto& s : sockets_) {
        s->shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
      }
    }
    for (auto& t : conn_threads_) t.join();
  }

  uint16_t port() const { return port_; }

  std::vector<MockRecord> records() const {
    std::lock_guard lock(mu_);
    return records_;
  }
  int connections() const { return connections_.load(); }

  // Chunk helpers: OpenAI completions stream events.
  static std::string text_event(const std::string& text) {
    return "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"choices\":[{\"index\":0,\"text\":\"" + text +
           "\",\"finish_reason\":null}]}\n\n";
  }
  static std::string usage_event(int prompt_tokens, int completion_tokens) {
    return "data: {\"id\":\"cmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":" + std::to_string(prompt_tokens) +
           ",\"completion_tokens\":" + std::to_string(completion_tokens) + "}}\n\n";
  }
  static std::string done_event() { return "data: [DONE]\n\n"; }

 private:
  void accept_loop() {
    while (!stopping_) {
      auto sock = std::make_shared<boost::asio::ip::tcp::socket>(io_);
      boost::system::error_code ec;
      acceptor_.accept(*sock, ec);
      if (stopping_) return;
      if (ec) continue;
      sock->set_option(boost::asio::ip::tcp::no_delay(true), ec);
      connections_++;
      std::lock_guard lock(mu_);
      sockets_.push_back(sock);
      conn_threads_.emplace_back([this, sock] { serve(sock); });
    }
  }

  void serve(std::shared_ptr<boost::asio::ip::tcp::socket> sock) {
    namespace http = boost::beast::http;
    boost::beast::flat_buffer buf;
    boost::system::error_code ec;
    for (;;) {
      http::request<http::string_body> req;
      http::read(*sock, buf, req, ec);
      if (ec) return;
      MockRecord rec;
      rec.received = Clock::now();
      rec.body = req.body();
      if (auto it = req.find("x-request-id"); it != req.end()) rec.request_id = std::string(it->value());
      MockScript script = script_(req.body());
      if (script.status != 200) {
        std::string resp = "HTTP/1.1 " + std::to_string(script.status) + " " + script.reason +
                           "\r\nContent-Type: application/json\r\nContent-Length: " +
                           std::to_string(script.error_body.size()) + "\r\n\r\n" + script.error_body;
        boost::asio::write(*sock, boost::asio::buffer(resp), ec);
        add_record(std::move(rec));
        if (ec) return;
        continue;
      }
      std::string head =
          "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
      boost::asio::write(*sock, boost::asio::buffer(head), ec);
      TimePoint due = rec.received;
      for (const auto& piece : script.pieces) {
        due += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(piece.delay_ms));
        std::this_thread::sleep_until(due);
        char hex[32];
        std::snprintf(hex, sizeof hex, "%zx\r\n", piece.bytes.size());
        std::string chunk = hex + piece.bytes + "\r\n";
        rec.sent.push_back(Clock::now());
        boost::asio::write(*sock, boost::asio::buffer(chunk), ec);
        if (ec) break;
      }
      if (script.drop_after_pieces || ec) {
        sock->shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
        sock->close(ec);
        add_record(std::move(rec));
        return;
      }
      boost::asio::write(*sock, boost::asio::buffer(std::string("0\r\n\r\n")), ec);
      add_record(std::move(rec));
      if (ec) return;
    }
  }

  void add_record(MockRecord rec) {
    std::lock_guard lock(mu_);
    records_.push_back(std::move(rec));
  }

  ScriptFn script_;
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::thread accept_thread_;
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<boost::asio::ip::tcp::socket>> sockets_;
  std::vector<std::thread> conn_threads_;
  std::vector<MockRecord> records_;
};

}  // namespace tandem::bench::testing
