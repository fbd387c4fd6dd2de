// Proxy overhead benchmark (see overhead_bench.h).
#include "proxy/overhead_bench.h"

#include <sys/resource.h>

#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "net/http_client.h"
#include "net/http_server.h"
#include "net/router.h"
#include "net/sse.h"
#include "proxy/proxy_server.h"

namespace tandem::proxy {

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

std::string chunk_event(int64_t stamp, bool last) {
  return sse_data(fmt::format(
      R"({{"id":"cmpl-D","object":"text_completion","created":0,"model":"mock","choices":[{{"index":0,"text":"{}","logprobs":null,"finish_reason":{}}}]}})",
      stamp, last ? "\"length\"" : "null"));
}

// Streams `tokens` stamped chunks per request: the first at once, then one per interval (one ticker
// thread serves every stream). Answers prefill legs (do_remote_decode) with one stamped token.
class MockInstance {
 public:
  MockInstance(int threads, int tokens, std::chrono::milliseconds interval) : tokens_(tokens), interval_(interval) {
    router_.add("GET", "/health", [](const HttpRequest&, std::shared_ptr<ResponseWriter> w) {
      w->send(HttpResponse::text(200, ""));
    });
    router_.add("POST", "/v1/completions", [this](const HttpRequest& r, std::shared_ptr<ResponseWriter> w) {
      if (r.body.find("do_remote_decode") != std::string::npos) {
        return w->send(HttpResponse::json(
            200, fmt::format(R"({{"id":"cmpl-P","object":"text_completion","created":0,"model":"mock",)"
                             R"("choices":[{{"index":0,"text":"{}","logprobs":null,"finish_reason":"length"}}],)"
                             R"("usage":{{"prompt_tokens":8,"completion_tokens":1,"total_tokens":9}},)"
                             R"("kv_transfer_params":{{"do_remote_prefill":true}}}})",
                             now_ns())));
      }
      w->start_stream(200, "text/event-stream");
      w->write(chunk_event(now_ns(), tokens_ == 1));
      std::lock_guard lock(mu_);
      streams_.push_back({std::move(w), 1});
    });
    HttpServerOptions opts;
    opts.host = "127.0.0.1";
    opts.port = 0;
    opts.num_io_threads = threads;
    server_ = std::make_unique<HttpServer>(std::move(opts), router_.as_handler());
  }
  ~MockInstance() {
    stop_ = true;
    if (ticker_.joinable()) ticker_.join();
    server_->stop();
  }
  Status start() {
    TANDEM_RETURN_IF_ERROR(server_->start());
    ticker_ = std::thread([this] { tick_loop(); });
    return Status::Ok();
  }
  int port() const { return server_->port(); }

 private:
  struct Stream {
    std::shared_ptr<ResponseWriter> writer;
    int sent;
  };
  void tick_loop() {
    auto next = Clock::now() + interval_;
    while (!stop_) {
      std::this_thread::sleep_until(next);
      next += interval_;
      std::vector<Stream> batch;
      {
        std::lock_guard lock(mu_);
        batch.swap(streams_);
      }
      std::vector<Stream> keep;
      for (auto& s : batch) {
        if (s.writer->is_closed()) continue;
        if (s.sent >= tokens_) {
          s.writer->write(sse_data(
              R"({"id":"cmpl-D","object":"text_completion","created":0,"model":"mock","choices":[],"usage":{"prompt_tokens":8,"completion_tokens":)" +
              std::to_string(tokens_) + "," + R"("total_tokens":)" + std::to_string(tokens_ + 8) + "}}"));
          s.writer->write(std::string(kSseDone));
          s.writer->finish();
          continue;
        }
        ++s.sent;
        s.writer->write(chunk_event(now_ns(), s.sent == tokens_));
        keep.push_back(std::move(s));
      }
      std::lock_guard lock(mu_);
      for (auto& s : keep) streams_.push_back(std::move(s));
    }
  }

  int tokens_;
  std::chrono::milliseconds interval_;
  Router router_;
  std::unique_ptr<HttpServer> server_;
  std::mutex mu_;
  std::vector<Stream> streams_;
  std::thread ticker_;
  std::atomic<bool> stop_{false};
};

struct PhaseResult {
  std::vector<double> ttft_ms;
  std::vector<double> chunk_ms;
  int ok = 0;
  int failed = 0;
  double seconds = 0;
};

// Opens `streams` concurrent streaming requests to port, spread over client threads.
PhaseResult run_phase(int port, const OverheadBenchOptions& o) {
  PhaseResult total;
  std::mutex mu;
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (int t = 0; t < o.client_threads; ++t) {
    const int n = o.streams / o.client_threads + (t < o.streams % o.client_threads ? 1 : 0);
    threads.emplace_back([&, n] {
      PhaseResult mine;
      boost::asio::io_context io;
      {
        net::HttpClient client(io, "127.0.0.1", static_cast<uint16_t>(port),
                               net::HttpClientOptions{.max_idle_connections = 8192});
        struct StreamState {
          SseParser parser;
          TimePoint sent;
          bool first = true;
        };
        std::vector<StreamState> states(static_cast<size_t>(n));
        for (int i = 0; i < n; ++i) {
          net::HttpClientRequest req;
          req.method = "POST";
          req.target = "/v1/completions";
          req.body = R"({"model":"mock","prompt":"benchmark prompt","max_tokens":)" + std::to_string(o.tokens) +
                     R"(,"stream":true})";
          req.idle_timeout = std::chrono::seconds(60);
          req.connect_timeout = std::chrono::seconds(30);
          StreamState* st = &states[static_cast<size_t>(i)];
          st->sent = Clock::now();
          client.request(std::move(req),
                         {.on_head = nullptr,
                          .on_body =
                              [st, &mine](std::string_view piece) {
                                const int64_t now = now_ns();
                                for (auto& ev : st->parser.feed(piece)) {
                                  if (ev.data == "[DONE]") continue;
                                  size_t k = ev.data.find("\"text\":\"");
                                  if (k == std::string::npos) continue;
                                  int64_t stamp = std::strtoll(ev.data.c_str() + k + 8, nullptr, 10);
                                  mine.chunk_ms.push_back(static_cast<double>(now - stamp) / 1e6);
                                  if (st->first) {
                                    st->first = false;
                                    mine.ttft_ms.push_back(seconds_between(st->sent, Clock::now()) * 1e3);
                                  }
                                }
                              },
                          .on_complete = [&mine](const Status& s) { s.ok() ? ++mine.ok : ++mine.failed; }});
        }
        io.run_for(std::chrono::milliseconds(o.interval * (o.tokens + 2)) + std::chrono::seconds(60));
      }
      io.run_for(std::chrono::seconds(1));  // let cancelled calls finish
      std::lock_guard lock(mu);
      total.ok += mine.ok;
      total.failed += mine.failed;
      total.ttft_ms.insert(total.ttft_ms.end(), mine.ttft_ms.begin(), mine.ttft_ms.end());
      total.chunk_ms.insert(total.chunk_ms.end(), mine.chunk_ms.begin(), mine.chunk_ms.end());
    });
  }
  for (auto& t : threads) t.join();
  total.seconds = seconds_between(start, Clock::now());
  return total;
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  double idx = p / 100.0 * static_cast<double>(v.size() - 1);
  size_t lo = static_cast<size_t>(idx);
  size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (idx - static_cast<double>(lo));
}

void print_row(const char* name, std::vector<double>& direct, std::vector<double>& proxied) {
  for (double p : {50.0, 90.0, 99.0, 100.0}) {
    double d = percentile(direct, p), x = percentile(proxied, p);
    std::printf("%-6s p%-5g %10.3f %10.3f %10.3f\n", name, p, d, x, x - d);
  }
}

}  // namespace

Status run_overhead_bench(const OverheadBenchOptions& o) {
  if (o.streams < 1 || o.tokens < 1 || o.client_threads < 1 || o.interval.count() < 1) {
    return InvalidArgumentError("--streams, --tokens, --client-threads and --interval-ms must be positive");
  }
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
  const rlim_t needed = static_cast<rlim_t>(o.streams) * 4 + 256;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < needed) {
    return ResourceExhaustedError("{} streams need about {} file descriptors; the limit is {} (ulimit -n)", o.streams,
                                  needed, static_cast<uint64_t>(lim.rlim_cur));
  }
  MockInstance mock(o.instance_threads, o.tokens, o.interval);
  TANDEM_RETURN_IF_ERROR(mock.start());
  const std::string url = fmt::format("http://127.0.0.1:{}", mock.port());

  ProxyConfig cfg;
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  cfg.server_threads = o.proxy_threads;
  cfg.upstream_threads = o.proxy_threads;
  if (o.disaggregated) {
    cfg.prefill_urls = {url};
    cfg.decode_urls = {url};
  } else {
    cfg.colocated_urls = {url};
  }
  TANDEM_ASSIGN_OR_RETURN(auto proxy, ProxyServer::create(cfg));
  TANDEM_RETURN_IF_ERROR(proxy->start());

  std::printf("proxy overhead: %d concurrent streams x %d chunks every %lld ms, %s routing, %d client / %d proxy / "
              "%d instance threads\n",
              o.streams, o.tokens, static_cast<long long>(o.interval.count()),
              o.disaggregated ? "disaggregated (1P1D mock)" : "colocated", o.client_threads, o.proxy_threads,
              o.instance_threads);
  std::fflush(stdout);
  PhaseResult direct = run_phase(mock.port(), o);
  PhaseResult proxied = run_phase(proxy->port(), o);
  proxy->stop();

  std::printf("%s\n", std::string(58, '=').c_str());
  std::printf("%-38s %8d %8d\n", "Streams ok (direct, proxy)", direct.ok, proxied.ok);
  std::printf("%-38s %8d %8d\n", "Streams failed (direct, proxy)", direct.failed, proxied.failed);
  std::printf("%-38s %8zu %8zu\n", "Chunks received (direct, proxy)", direct.chunk_ms.size(), proxied.chunk_ms.size());
  std::printf("%-14s %10s %10s %10s   (ms)\n", "", "direct", "proxy", "overhead");
  print_row("TTFT", direct.ttft_ms, proxied.ttft_ms);
  print_row("chunk", direct.chunk_ms, proxied.chunk_ms);
  std::printf("%s\n", std::string(58, '=').c_str());
  if (direct.failed || proxied.failed) return UnavailableError("{} streams failed", direct.failed + proxied.failed);
  return Status::Ok();
}

}  // namespace tandem::proxy
