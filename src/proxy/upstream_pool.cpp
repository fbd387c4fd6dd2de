// UpstreamPool: shard threads with per-instance HTTP clients (see upstream_pool.h).
#include "proxy/upstream_pool.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include <pthread.h>

#include <future>

#include "common/logging.h"

namespace tandem::proxy {

UpstreamPool::UpstreamPool(int num_shards, const InstanceRegistry& registry) {
  for (int s = 0; s < std::max(1, num_shards); ++s) add_shard(nullptr, registry);
}

UpstreamPool::UpstreamPool(const std::vector<boost::asio::io_context*>& contexts, const InstanceRegistry& registry) {
  for (auto* io : contexts) add_shard(io, registry);
}

void UpstreamPool::add_shard(boost::asio::io_context* io, const InstanceRegistry& registry) {
  auto shard = std::make_unique<Shard>();
  if (io == nullptr) {
    shard->own_io = std::make_unique<boost::asio::io_context>(1);
    io = shard->own_io.get();
  }
  shard->io = io;
  const size_t n = registry.size();
  for (size_t i = 0; i < n; ++i) {
    const InstanceUrl& url = registry.url(i);
    shard->clients.push_back(std::make_unique<net::HttpClient>(*io, url.host, url.port,
                                                               net::HttpClientOptions{.user_agent = "tandem-proxy"}));
  }
  shard->watchers.resize(n);
  shards_.push_back(std::move(shard));
}

std::optional<size_t> UpstreamPool::current_shard() const {
  for (size_t i = 0; i < shards_.size(); ++i) {
    if (shards_[i]->io->get_executor().running_in_this_thread()) return i;
  }
  return std::nullopt;
}

UpstreamPool::~UpstreamPool() { stop(); }

void UpstreamPool::start() {
  if (started_) return;
  started_ = true;
  for (auto& shard : shards_) {
    if (!shard->own_io) continue;  // run by its owner
    shard->work.emplace(shard->io->get_executor());
    Shard* s = shard.get();
    s->thread = std::thread([s] {
      pthread_setname_np(pthread_self(), "proxy-upstream");
      // Handlers do not throw by contract; a third-party exception must not kill the process silently.
      for (;;) {
        try {
          s->io->run();
          return;
        } catch (const std::exception& e) {
          TLOG_ERROR("proxy: exception on an upstream thread: {}", e.what());
        }
      }
    });
  }
}

void UpstreamPool::post(size_t shard, std::function<void()> fn) {
  boost::asio::post(*shards_[shard]->io, std::move(fn));
}

void UpstreamPool::dispatch(size_t shard, std::function<void()> fn) {
  boost::asio::dispatch(*shards_[shard]->io, std::move(fn));
}

uint64_t UpstreamPool::watch(size_t shard, size_t instance, std::function<void()> on_eject) {
  Shard& s = *shards_[shard];
  uint64_t id = s.next_watch_id++;
  s.watchers[instance].emplace(id, std::move(on_eject));
  return id;
}

void UpstreamPool::unwatch(size_t shard, size_t instance, uint64_t id) {
  shards_[shard]->watchers[instance].erase(id);
}

void UpstreamPool::eject(size_t instance) {
  for (auto& shard : shards_) {
    Shard* s = shard.get();
    boost::asio::post(*s->io, [s, instance] {
      // Take them all first: each callback cancels its leg, which unwatches (and may start a new leg).
      auto fired = std::move(s->watchers[instance]);
      s->watchers[instance].clear();
      for (auto& [id, fn] : fired) fn();
    });
  }
}

void UpstreamPool::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& shard : shards_) {
    if (started_ && shard->own_io) {
      // Destroy the clients on their own thread: that cancels in-flight calls there.
      auto done = std::make_shared<std::promise<void>>();
      auto fut = done->get_future();
      Shard* s = shard.get();
      boost::asio::post(*s->io, [s, done] {
        s->clients.clear();
        done->set_value();
      });
      if (fut.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
        TLOG_WARN("proxy: an upstream thread did not stop within 10 s");
      }
      s->work.reset();
      s->io->stop();
      if (s->thread.joinable()) s->thread.join();
    }
    shard->clients.clear();
  }
}

}  // namespace tandem::proxy
