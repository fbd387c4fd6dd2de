// `tandem proxy`: the client-facing router for disaggregated (xPyD) or colocated fleets. Thin: parses
// flags, runs proxy::ProxyServer until SIGINT/SIGTERM.
#include <csignal>
#include <cstdio>

#include "common/logging.h"
#include "common/termination_signals.h"
#include "proxy/overhead_bench.h"
#include "proxy/proxy_server.h"
#include "tandem/commands.h"

namespace tandem::app {

namespace {

struct ProxyFlags {
  proxy::ProxyConfig config;
  std::string routing = "least_loaded";
  std::string log_level = "info";
  double connect_timeout_s = 5;
  double prefill_timeout_s = 300;
  double decode_timeout_s = 300;
  double request_timeout_s = 6 * 3600;
  double health_interval_s = 2;
  double health_timeout_s = 1;
};

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
}

int run_proxy(ProxyFlags& f) {
  if (Status st = set_log_level(f.log_level); !st.ok()) {
    std::fprintf(stderr, "error: --log-level: %s\n", st.message().c_str());
    return 2;
  }
  auto routing = proxy::parse_routing_policy(f.routing);
  if (!routing.ok()) {
    std::fprintf(stderr, "error: --routing: %s\n", routing.status().message().c_str());
    return 2;
  }
  proxy::ProxyConfig& c = f.config;
  c.routing = *routing;
  c.connect_timeout = to_ms(f.connect_timeout_s);
  c.prefill_timeout = to_ms(f.prefill_timeout_s);
  c.decode_idle_timeout = to_ms(f.decode_timeout_s);
  c.request_timeout = to_ms(f.request_timeout_s);
  c.health_interval = to_ms(f.health_interval_s);
  c.health_timeout = to_ms(f.health_timeout_s);

  // Block the stop signals before any thread starts (threads inherit the mask); wait for them below.
  block_termination_signals();
  std::signal(SIGPIPE, SIG_IGN);

  auto server = proxy::ProxyServer::create(c);
  if (!server.ok()) {
    std::fprintf(stderr, "error: %s\n", server.status().message().c_str());
    return 2;
  }
  if (Status st = (*server)->start(); !st.ok()) {
    std::fprintf(stderr, "error: %s\n", st.to_string().c_str());
    return 1;
  }
  const int sig = wait_for_termination_signal();
  TLOG_INFO("proxy: signal {} received, shutting down", sig);
  (*server)->stop(std::chrono::seconds(5));
  return 0;
}

}  // namespace

void register_proxy(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<ProxyFlags>();
  CLI::App* cmd = app.add_subcommand(
      "proxy", "Client-facing router for disaggregated prefill/decode (or colocated) instances");
  auto& c = flags->config;
  cmd->add_option("--host", c.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", c.port, "Port to listen on (0: ephemeral)")->capture_default_str();
  cmd->add_option("--prefill", c.prefill_urls, "Prefill (KV producer) instance URL, e.g. http://127.0.0.1:7100; repeatable");
  cmd->add_option("--decode", c.decode_urls, "Decode (KV consumer) instance URL; repeatable");
  cmd->add_option("--colocated", c.colocated_urls,
                  "Instance doing both phases (no disaggregation): plain load balancing; repeatable");
  cmd->add_option("--routing", flags->routing, "Instance choice: least_loaded or round_robin")->capture_default_str();
  cmd->add_option("--api-key", c.api_key,
                  "Require 'Authorization: Bearer KEY' from clients on /v1/* (the header is forwarded to the instances)");
  cmd->add_option("--log-level", flags->log_level, "trace, debug, info, warning, error")->capture_default_str();
  cmd->add_option("--connect-timeout", flags->connect_timeout_s, "Seconds to connect to an instance")->capture_default_str();
  cmd->add_option("--prefill-timeout", flags->prefill_timeout_s, "Seconds for a whole prefill leg")->capture_default_str();
  cmd->add_option("--decode-timeout", flags->decode_timeout_s, "Longest silence (s) on a decode leg")->capture_default_str();
  cmd->add_option("--request-timeout", flags->request_timeout_s, "Seconds for any one leg in total")->capture_default_str();
  cmd->add_option("--health-interval", flags->health_interval_s, "Seconds between instance health checks")->capture_default_str();
  cmd->add_option("--health-timeout", flags->health_timeout_s, "Seconds a health check may take")->capture_default_str();
  cmd->add_option("--threads", c.server_threads,
                  "I/O threads (client connections, and with --upstream-threads 0 the instance connections too)")
      ->capture_default_str();
  cmd->add_option("--upstream-threads", c.upstream_threads,
                  "Separate threads for the connections to instances (0: each request uses its client "
                  "connection's thread, which saves a thread switch per relayed chunk)")
      ->capture_default_str();
  cmd->callback([flags, &exit_code] { exit_code = run_proxy(*flags); });

  // `tandem proxy-bench`: the proxy's added latency over direct calls (see proxy/overhead_bench.h).
  auto bench = std::make_shared<proxy::OverheadBenchOptions>();
  auto interval_ms = std::make_shared<int>(50);
  CLI::App* b = app.add_subcommand("proxy-bench", "Measure the proxy's latency overhead over direct calls (mock instance, loopback)");
  b->add_option("--streams", bench->streams, "Concurrent streams")->capture_default_str();
  b->add_option("--tokens", bench->tokens, "Chunks per stream")->capture_default_str();
  b->add_option("--interval-ms", *interval_ms, "Milliseconds between chunks of a stream")->capture_default_str();
  auto ramp_ms = std::make_shared<int>(0);
  b->add_option("--ramp-ms", *ramp_ms,
                "Spread the stream starts evenly over this many ms (0: all at once, a burst); the direct and the "
                "proxied runs use the same ramp")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  b->add_option("--client-threads", bench->client_threads, "Load generator threads (0: a quarter of the cores, >= 2)")
      ->capture_default_str();
  b->add_option("--proxy-threads", bench->proxy_threads, "Proxy I/O threads, as `tandem proxy --threads` (0: half the cores, >= 2)")
      ->capture_default_str();
  b->add_option("--proxy-upstream-threads", bench->proxy_upstream_threads,
                "As `tandem proxy --upstream-threads` (0: the proxy's I/O threads drive both sides)")
      ->capture_default_str();
  b->add_option("--instance-threads", bench->instance_threads, "I/O threads of each mock instance (0: a quarter of the cores, >= 2)")
      ->capture_default_str();
  b->add_flag("--disaggregated", bench->disaggregated, "Route as 1P1D (a second mock as the prefill instance) instead of colocated");
  auto no_warmup = std::make_shared<bool>(false);
  b->add_flag("--no-warmup", *no_warmup,
              "Measure the first proxied run (every stream also opens its connections to the instances) instead "
              "of a second one over the warm upstream pool");
  b->callback([bench, interval_ms, ramp_ms, no_warmup, &exit_code] {
    bench->interval = std::chrono::milliseconds(*interval_ms);
    bench->ramp = std::chrono::milliseconds(*ramp_ms);
    bench->warmup = !*no_warmup;
    spdlog::set_level(spdlog::level::warn);
    Status st = proxy::run_overhead_bench(*bench);
    if (!st.ok()) std::fprintf(stderr, "error: %s\n", st.to_string().c_str());
    exit_code = st.ok() ? 0 : 1;
  });
}

}  // namespace tandem::app
