// UpstreamPool: the proxy's connections to its engine instances. net::HttpClient is single-threaded, so
// the pool has N shards, each an io_context run by one thread and holding one keep-alive HttpClient per
// instance; a client request is pinned to one shard and all of its upstream work runs there.
// The shards either have their own threads, or (the proxy's default) are the io_contexts of the
// client-facing HttpServer (context_per_thread): a request then runs on the thread of its client
// connection, and relaying a chunk costs no thread switch.
#pragma once

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "net/http_client.h"
#include "proxy/instance_registry.h"

namespace tandem::proxy {

class UpstreamPool {
 public:
  // One HttpClient per instance of `registry` on each of `num_shards` shards with their own threads.
  UpstreamPool(int num_shards, const InstanceRegistry& registry);
  // Shards on io_contexts run by someone else (one thread each), e.g. HttpServer::io_context(i). Their
  // owner runs them; stop() must then be called once nothing runs them any more (the clients are
  // destroyed on the calling thread).
  UpstreamPool(const std::vector<boost::asio::io_context*>& contexts, const InstanceRegistry& registry);
  ~UpstreamPool();  // stop()
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  void start();
  // Cancels in-flight upstream calls (their callbacks see kAborted), stops and joins the shard threads.
  // Idempotent.
  void stop();

  size_t num_shards() const { return shards_.size(); }
  size_t next_shard() { return next_.fetch_add(1, std::memory_order_relaxed) % shards_.size(); }
  // The shard whose io_context the calling thread is running, if any.
  std::optional<size_t> current_shard() const;
  boost::asio::io_context& io(size_t shard) { return *shards_[shard]->io; }
  // Runs `fn` on the shard's thread, later.
  void post(size_t shard, std::function<void()> fn);
  // Runs `fn` on the shard's thread: at once when the caller is that thread, else later.
  void dispatch(size_t shard, std::function<void()> fn);
  // Only on the shard's thread.
  net::HttpClient& client(size_t shard, size_t instance) { return *shards_[shard]->clients[instance]; }

  // Watchers of legs in flight (shard thread only): `on_eject` runs if `instance` is ejected by a failed
  // health check while the leg runs, so a hung instance cannot hold requests until their timeouts.
  uint64_t watch(size_t shard, size_t instance, std::function<void()> on_eject);
  void unwatch(size_t shard, size_t instance, uint64_t id);
  // From any thread: runs the watchers of `instance` on every shard.
  void eject(size_t instance);

 private:
  void add_shard(boost::asio::io_context* io, const InstanceRegistry& registry);

  struct Shard {
    std::unique_ptr<boost::asio::io_context> own_io;  // null when the io_context is someone else's
    boost::asio::io_context* io = nullptr;
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work;
    std::vector<std::unique_ptr<net::HttpClient>> clients;
    std::vector<std::unordered_map<uint64_t, std::function<void()>>> watchers;  // per instance
    uint64_t next_watch_id = 1;
    std::thread thread;
  };
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<size_t> next_{0};
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace tandem::proxy
