// HealthChecker: periodic GET /health of every instance (see health_checker.h).
#include "proxy/health_checker.h"

#include <future>

#include "common/logging.h"

namespace tandem::proxy {

struct HealthChecker::State : std::enable_shared_from_this<HealthChecker::State> {
  UpstreamPool& pool;
  size_t shard;
  InstanceRegistry& registry;
  ProxyMetrics& metrics;
  std::chrono::milliseconds interval;
  std::chrono::milliseconds timeout;
  boost::asio::steady_timer timer;
  std::vector<std::shared_ptr<net::HttpCall>> calls;  // per instance: the check in flight, if any
  bool stopped = false;

  State(UpstreamPool& p, size_t s, InstanceRegistry& r, ProxyMetrics& m, std::chrono::milliseconds i,
        std::chrono::milliseconds t)
      : pool(p), shard(s), registry(r), metrics(m), interval(i), timeout(t), timer(p.io(s)), calls(r.size()) {}

  void round() {
    if (stopped) return;
    for (size_t i = 0; i < calls.size(); ++i) {
      if (calls[i]) continue;  // the previous check is still running (bounded by its timeout)
      net::HttpClientRequest req;
      req.method = "GET";
      req.target = registry.url(i).base_path + "/health";
      req.connect_timeout = timeout;
      req.idle_timeout = timeout;
      req.total_timeout = timeout;
      auto status = std::make_shared<int>(0);
      auto self = shared_from_this();
      calls[i] = pool.client(shard, i).request(
          std::move(req), {.on_head = [status](const net::HttpResponseHead& h) { *status = h.status; },
                           .on_body = nullptr,
                           .on_complete = [self, i, status](const Status& st) {
                             self->calls[i].reset();
                             if (self->stopped || st.code() == StatusCode::kAborted) return;
                             bool ok = st.ok() && *status == 200;
                             if (!ok) {
                               self->metrics.health_checks_failed.fetch_add(1, std::memory_order_relaxed);
                               TLOG_DEBUG("proxy: health check of {} failed: {}", self->registry.url(i).text,
                                          st.ok() ? fmt::format("HTTP {}", *status) : st.to_string());
                             }
                             if (self->registry.report_health_check(i, ok) && !ok) {
                               self->pool.eject(i);  // legs in flight there fail over now
                             }
                           }});
    }
    timer.expires_after(interval);
    auto self = shared_from_this();
    timer.async_wait([self](const boost::system::error_code& ec) {
      if (!ec) self->round();
    });
  }
};

HealthChecker::HealthChecker(UpstreamPool& pool, size_t shard, InstanceRegistry& registry, ProxyMetrics& metrics,
                             std::chrono::milliseconds interval, std::chrono::milliseconds timeout)
    : state_(std::make_shared<State>(pool, shard, registry, metrics, interval, timeout)) {}

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::start() {
  if (started_) return;
  started_ = true;
  auto s = state_;
  s->pool.post(s->shard, [s] { s->round(); });
}

void HealthChecker::stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  auto s = state_;
  auto done = std::make_shared<std::promise<void>>();
  auto fut = done->get_future();
  s->pool.post(s->shard, [s, done] {
    if (!s->stopped) {
      s->stopped = true;
      s->timer.cancel();
      for (auto& c : s->calls) {
        if (auto call = std::move(c)) call->cancel();
      }
    }
    done->set_value();
  });
  if (fut.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    TLOG_WARN("proxy: the health checker did not stop within 5 s");
  }
}

}  // namespace tandem::proxy
