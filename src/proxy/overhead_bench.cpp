// Proxy overhead benchmark (see overhead_bench.h).
#include "proxy/overhead_bench.h"

#include <pthread.h>
#include <unistd.h>
#include <sys/resource.h>
#include <time.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <barrier>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
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

// Thread names of the parties (the CPU accounting groups threads by these).
constexpr const char* kMockIoThread = "mock-io";
constexpr const char* kMockTickThread = "mock-ticker";
constexpr const char* kClientThread = "bench-client";

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// CPU seconds used so far by the live threads of this process, summed by thread name. Read from
// /proc/self/task/<tid>/schedstat (nanoseconds); empty where /proc is not available. "<name>/user" and
// "<name>/sys" hold the user and kernel clock ticks of /proc/self/task/<tid>/stat (coarse: 10 ms), in
// seconds, for the split between the two.
std::map<std::string, double> cpu_seconds_by_thread_name() {
  std::map<std::string, double> out;
  static const double tick = 1.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream comm(entry.path() / "comm");
    std::ifstream sched(entry.path() / "schedstat");
    std::string name;
    uint64_t run_ns = 0;
    if (!std::getline(comm, name) || !(sched >> run_ns)) continue;
    out[name] += static_cast<double>(run_ns) * 1e-9;
    std::ifstream stat_file(entry.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
    size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream fields(stat.substr(paren + 1));
    std::string field;
    for (int i = 3; i <= 15 && fields >> field; ++i) {  // field 3 is the state; 14 utime, 15 stime
      if (i == 14) out[name + "/user"] += std::strtod(field.c_str(), nullptr) * tick;
      if (i == 15) out[name + "/sys"] += std::strtod(field.c_str(), nullptr) * tick;
    }
  }
  return out;
}

// Per thread name: CPU seconds used between two snapshots.
std::map<std::string, double> cpu_delta(const std::map<std::string, double>& before,
                                        const std::map<std::string, double>& after) {
  std::map<std::string, double> out;
  for (const auto& [name, sec] : after) {
    auto it = before.find(name);
    out[name] = sec - (it == before.end() ? 0.0 : it->second);
  }
  return out;
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
    opts.thread_name = kMockIoThread;
    server_ = std::make_unique<HttpServer>(std::move(opts), router_.as_handler());
  }
  ~MockInstance() {
    stop_ = true;
    if (ticker_.joinable()) ticker_.join();
    server_->stop();
  }
  Status start() {
    TANDEM_RETURN_IF_ERROR(server_->start());
    ticker_ = std::thread([this] {
      pthread_setname_np(pthread_self(), kMockTickThread);
      tick_loop();
    });
    return Status::Ok();
  }
  int port() const { return server_->port(); }
  int64_t connections_total() const { return server_->stats().connections_total; }

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
  double client_cpu_seconds = 0;            // the load generator's threads
  std::map<std::string, double> cpu_seconds;  // the other threads, by name
};

// Opens `streams` concurrent streaming requests to port, spread over client threads.
PhaseResult run_phase(int port, const OverheadBenchOptions& o) {
  PhaseResult total;
  std::mutex mu;
  std::vector<std::thread> threads;
  const auto cpu_before = cpu_seconds_by_thread_name();
  const auto start = Clock::now();
  // With a ramp, the threads start together once all have their connections open; the barrier's
  // completion (run once, before any thread is released) sets the common start time.
  std::chrono::steady_clock::time_point ramp_start;
  std::barrier ramp_ready(o.client_threads, [&]() noexcept { ramp_start = std::chrono::steady_clock::now(); });
  for (int t = 0; t < o.client_threads; ++t) {
    const int n = o.streams / o.client_threads + (t < o.streams % o.client_threads ? 1 : 0);
    threads.emplace_back([&, n, t] {
      pthread_setname_np(pthread_self(), kClientThread);
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
        // Open the connections first (n concurrent GET /health), as a client with a connection pool
        // would have them: TTFT then measures the request path, not the TCP handshakes and accepts.
        int opened = 0;
        for (int i = 0; i < n; ++i) {
          net::HttpClientRequest ping;
          ping.target = "/health";
          ping.connect_timeout = std::chrono::seconds(30);
          client.request(std::move(ping), {.on_head = nullptr, .on_body = nullptr, .on_complete = [&opened](const Status& s) {
                                             opened += s.ok();
                                           }});
        }
        io.run_for(std::chrono::seconds(60));  // returns as soon as every ping completed
        io.restart();
        mine.failed += n - opened;
        std::vector<StreamState> states(static_cast<size_t>(n));
        auto start_stream = [&](int i) {
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
                                st->parser.feed(piece, [&](const SseEventView& ev) {
                                  if (ev.data == "[DONE]") return;
                                  size_t k = ev.data.find("\"text\":\"");
                                  if (k == std::string_view::npos) return;
                                  // The stamp is followed by '"', which ends the number.
                                  int64_t stamp = std::strtoll(ev.data.data() + k + 8, nullptr, 10);
                                  mine.chunk_ms.push_back(static_cast<double>(now - stamp) / 1e6);
                                  if (st->first) {
                                    st->first = false;
                                    mine.ttft_ms.push_back(seconds_between(st->sent, Clock::now()) * 1e3);
                                  }
                                });
                              },
                          .on_complete = [&mine](const Status& s) { s.ok() ? ++mine.ok : ++mine.failed; }});
        };
        std::vector<std::unique_ptr<boost::asio::steady_timer>> ramp_timers;
        if (o.ramp.count() <= 0) {
          for (int i = 0; i < n; ++i) start_stream(i);  // a burst: every request at once
        } else {
          // Stream i of thread t is stream g = i * threads + t of the phase; it starts at g/streams of the
          // ramp after the common start (the threads wait for each other), so arrivals are evenly spaced.
          ramp_ready.arrive_and_wait();
          const auto t0 = ramp_start;
          for (int i = 0; i < n; ++i) {
            const int64_t g = static_cast<int64_t>(i) * o.client_threads + t;
            const auto at = t0 + std::chrono::nanoseconds(
                                     std::chrono::duration_cast<std::chrono::nanoseconds>(o.ramp).count() * g / o.streams);
            ramp_timers.push_back(std::make_unique<boost::asio::steady_timer>(io, at));
            ramp_timers.back()->async_wait([&start_stream, i](const boost::system::error_code& ec) {
              if (!ec) start_stream(i);
            });
          }
        }
        io.run_for(std::chrono::milliseconds(o.interval * (o.tokens + 2)) + o.ramp + std::chrono::seconds(60));
      }
      io.run_for(std::chrono::seconds(1));  // let cancelled calls finish
      mine.client_cpu_seconds = thread_cpu_seconds();
      std::lock_guard lock(mu);
      total.client_cpu_seconds += mine.client_cpu_seconds;
      total.ok += mine.ok;
      total.failed += mine.failed;
      total.ttft_ms.insert(total.ttft_ms.end(), mine.ttft_ms.begin(), mine.ttft_ms.end());
      total.chunk_ms.insert(total.chunk_ms.end(), mine.chunk_ms.begin(), mine.chunk_ms.end());
    });
  }
  for (auto& t : threads) t.join();
  total.seconds = seconds_between(start, Clock::now());
  total.cpu_seconds = cpu_delta(cpu_before, cpu_seconds_by_thread_name());
  total.cpu_seconds.erase(kClientThread);  // exited; counted by the threads themselves
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

// Count and sum of the proxy's own latency histograms, to take the mean over one run.
struct HopTotals {
  std::array<int64_t, 4> count{};
  std::array<double, 4> sum{};
};

HopTotals hop_totals(ProxyMetrics& m) {
  HopTotals t;
  const LatencyHistogram* h[4] = {&m.queue_seconds, &m.prefill_seconds, &m.handoff_seconds, &m.first_byte_seconds};
  for (size_t i = 0; i < 4; ++i) {
    t.count[i] = h[i]->count();
    t.sum[i] = h[i]->sum_seconds();
  }
  return t;
}

// Microseconds of CPU per relayed chunk used by the threads named `name` (0 when none ran).
double cpu_us_per_chunk(const PhaseResult& r, const std::string& name) {
  if (r.chunk_ms.empty()) return 0;
  auto it = r.cpu_seconds.find(name);
  double sec = name == kClientThread ? r.client_cpu_seconds : (it == r.cpu_seconds.end() ? 0.0 : it->second);
  return sec * 1e6 / static_cast<double>(r.chunk_ms.size());
}

}  // namespace

Status run_overhead_bench(const OverheadBenchOptions& options) {
  OverheadBenchOptions o = options;
  // A relayed chunk costs the proxy a receive and a send, about what it costs the load generator and the
  // mock together, so the proxy gets as many threads as both (half the cores) to keep up with their bursts.
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  const int auto_threads = std::max(2, cores / 4);
  if (o.client_threads == 0) o.client_threads = auto_threads;
  if (o.proxy_threads == 0) o.proxy_threads = std::max(2, cores / 2);
  if (o.instance_threads == 0) o.instance_threads = auto_threads;
  if (o.streams < 1 || o.tokens < 1 || o.client_threads < 1 || o.proxy_threads < 1 || o.instance_threads < 1 ||
      o.proxy_upstream_threads < 0 || o.interval.count() < 1) {
    return InvalidArgumentError(
        "--streams, --tokens, --interval-ms and the thread counts must be positive (0 threads: automatic; "
        "--proxy-upstream-threads 0: shared)");
  }
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
  // Both ends of every client connection, and of every pooled upstream connection (two per stream when
  // disaggregated: the prefill and the decode pools).
  const rlim_t needed = static_cast<rlim_t>(o.streams) * (o.disaggregated ? 6 : 4) + 256;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < needed) {
    return ResourceExhaustedError("{} streams need about {} file descriptors; the limit is {} (ulimit -n)", o.streams,
                                  needed, static_cast<uint64_t>(lim.rlim_cur));
  }
  // The decode (or colocated) instance, which the direct run calls; disaggregated runs add a prefill
  // instance of its own, as a 1P1D fleet has (one mock in both roles would make prefill legs queue
  // behind other streams' decode requests on the same threads, which no real fleet does).
  MockInstance mock(o.instance_threads, o.tokens, o.interval);
  TANDEM_RETURN_IF_ERROR(mock.start());
  const std::string url = fmt::format("http://127.0.0.1:{}", mock.port());
  std::optional<MockInstance> prefill_mock;
  if (o.disaggregated) {
    prefill_mock.emplace(o.instance_threads, o.tokens, o.interval);
    TANDEM_RETURN_IF_ERROR(prefill_mock->start());
  }

  ProxyConfig cfg;
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  cfg.server_threads = o.proxy_threads;
  cfg.upstream_threads = o.proxy_upstream_threads;
  if (o.disaggregated) {
    cfg.prefill_urls = {fmt::format("http://127.0.0.1:{}", prefill_mock->port())};
    cfg.decode_urls = {url};
  } else {
    cfg.colocated_urls = {url};
  }
  TANDEM_ASSIGN_OR_RETURN(auto proxy, ProxyServer::create(cfg));
  TANDEM_RETURN_IF_ERROR(proxy->start());

  std::printf("proxy overhead: %d concurrent streams x %d chunks every %lld ms, %s, %s routing, %d client / %d proxy%s / "
              "%d threads per mock instance, %u cores\n",
              o.streams, o.tokens, static_cast<long long>(o.interval.count()),
              o.ramp.count() > 0 ? fmt::format("starts spread over {} ms", o.ramp.count()).c_str() : "all starting at once",
              o.disaggregated ? "disaggregated (1P1D: a prefill mock and the decode mock)" : "colocated", o.client_threads, o.proxy_threads,
              o.proxy_upstream_threads > 0 ? fmt::format(" (+{} upstream)", o.proxy_upstream_threads).c_str() : "",
              o.instance_threads, std::thread::hardware_concurrency());
  std::fflush(stdout);
  PhaseResult direct = run_phase(mock.port(), o);
  std::optional<PhaseResult> cold;
  if (o.warmup) cold = run_phase(proxy->port(), o);
  auto mock_connections = [&] { return mock.connections_total() + (prefill_mock ? prefill_mock->connections_total() : 0); };
  const int64_t mock_connections_before = mock_connections();
  const HopTotals hops_before = hop_totals(proxy->metrics());
  PhaseResult proxied = run_phase(proxy->port(), o);
  const HopTotals hops_after = hop_totals(proxy->metrics());
  const int64_t upstream_connections = mock_connections() - mock_connections_before;
  proxy->stop();

  std::printf("%s\n", std::string(58, '=').c_str());
  std::printf("%-38s %8d %8d\n", "Streams ok (direct, proxy)", direct.ok, proxied.ok);
  std::printf("%-38s %8d %8d\n", "Streams failed (direct, proxy)", direct.failed, proxied.failed);
  std::printf("%-38s %8zu %8zu\n", "Chunks received (direct, proxy)", direct.chunk_ms.size(), proxied.chunk_ms.size());
  std::printf("%-14s %10s %10s %10s   (ms)\n", "", "direct", "proxy", "overhead");
  print_row("TTFT", direct.ttft_ms, proxied.ttft_ms);
  print_row("chunk", direct.chunk_ms, proxied.chunk_ms);
  std::printf("%-14s %10s %10s   (us of CPU per chunk received)\n", "CPU", "direct", "proxy");
  const double proxy_us = cpu_us_per_chunk(proxied, "proxy-io") + cpu_us_per_chunk(proxied, "proxy-upstream");
  std::printf("%-14s %10.2f %10.2f\n", "load generator", cpu_us_per_chunk(direct, kClientThread),
              cpu_us_per_chunk(proxied, kClientThread));
  std::printf("%-14s %10.2f %10.2f\n", "mock instance",
              cpu_us_per_chunk(direct, kMockIoThread) + cpu_us_per_chunk(direct, kMockTickThread),
              cpu_us_per_chunk(proxied, kMockIoThread) + cpu_us_per_chunk(proxied, kMockTickThread));
  std::printf("%-14s %10s %10.2f\n", "proxy", "-", proxy_us);
  {
    auto get = [&](const char* key) {
      auto it = proxied.cpu_seconds.find(key);
      return it == proxied.cpu_seconds.end() ? 0.0 : it->second;
    };
    const double user = get("proxy-io/user") + get("proxy-upstream/user");
    const double sys = get("proxy-io/sys") + get("proxy-upstream/sys");
    if (user + sys > 0) std::printf("proxy CPU in the kernel (socket calls): %.0f%%\n", 100.0 * sys / (user + sys));
  }
  auto hop_ms = [&](size_t i) {
    int64_t n = hops_after.count[i] - hops_before.count[i];
    return n > 0 ? (hops_after.sum[i] - hops_before.sum[i]) * 1e3 / static_cast<double>(n) : 0.0;
  };
  std::printf("proxy-side means (ms): request in -> first leg sent %.3f | prefill leg %.3f | prefill answer -> first "
              "decode byte %.3f | request in -> first bytes to the client %.3f\n",
              hop_ms(0), hop_ms(1), hop_ms(2), hop_ms(3));
  std::printf("connections the proxy opened to the mock during the measured run: %lld (%s)\n",
              static_cast<long long>(upstream_connections), o.warmup ? "0 when the warm pool is reused" : "cold pool");
  if (cold) {
    std::printf("warm-up run (cold upstream pool): TTFT p50 %.3f p99 %.3f, chunk p50 %.3f p99 %.3f ms; %d failed\n",
                percentile(cold->ttft_ms, 50), percentile(cold->ttft_ms, 99), percentile(cold->chunk_ms, 50),
                percentile(cold->chunk_ms, 99), cold->failed);
  }
  std::printf("%s\n", std::string(58, '=').c_str());
  if (direct.failed || proxied.failed) return UnavailableError("{} streams failed", direct.failed + proxied.failed);
  return Status::Ok();
}

}  // namespace tandem::proxy
