// InstanceRegistry: the engine instances behind the proxy (prefill, decode or colocated), their health
// state and load counters, and the selection policy that picks one for each request.
//
// Load is tracked through RAII InstanceLease objects: selecting an instance adds the request's cost to
// its counter (prompt tokens for prefill, one active request for decode/colocated) and destroying the
// lease takes it off again, so no code path can leak load. Thread-safe (one short mutex section per call).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace tandem::proxy {

enum class InstanceRole { kPrefill, kDecode, kColocated };
std::string_view instance_role_name(InstanceRole role);

enum class RoutingPolicy { kLeastLoaded, kRoundRobin };
Result<RoutingPolicy> parse_routing_policy(std::string_view name);

// "http://host:port[/prefix]" split into its parts. Only plain http is supported.
struct InstanceUrl {
  std::string host;
  uint16_t port = 80;
  std::string base_path;  // "" or "/prefix" (no trailing slash)
  std::string text;       // normalized "http://host:port[/prefix]"
};
Result<InstanceUrl> parse_instance_url(std::string_view url);

// A point-in-time copy of one instance's state (for metrics, logs and tests).
struct InstanceSnapshot {
  size_t index = 0;
  InstanceRole role = InstanceRole::kDecode;
  std::string url;
  bool healthy = true;
  int64_t outstanding_prompt_tokens = 0;
  int64_t active_requests = 0;
  int64_t total_requests = 0;
  int64_t failures = 0;  // request-level failures (connection errors, 5xx, timeouts)
  int consecutive_health_failures = 0;
};

class InstanceRegistry;

// Holds load on one instance for the lifetime of a request leg. Movable, not copyable.
class InstanceLease {
 public:
  InstanceLease() = default;
  InstanceLease(InstanceLease&& other) noexcept;
  InstanceLease& operator=(InstanceLease&& other) noexcept;
  InstanceLease(const InstanceLease&) = delete;
  InstanceLease& operator=(const InstanceLease&) = delete;
  ~InstanceLease();

  bool valid() const { return registry_ != nullptr; }
  size_t index() const { return index_; }
  // Returns the load early (e.g. prefill done, the decode leg runs on).
  void release();

 private:
  friend class InstanceRegistry;
  InstanceLease(InstanceRegistry* registry, size_t index, int64_t prompt_tokens)
      : registry_(registry), index_(index), prompt_tokens_(prompt_tokens) {}
  InstanceRegistry* registry_ = nullptr;
  size_t index_ = 0;
  int64_t prompt_tokens_ = 0;
};

class InstanceRegistry {
 public:
  explicit InstanceRegistry(RoutingPolicy policy = RoutingPolicy::kLeastLoaded) : policy_(policy) {}
  InstanceRegistry(const InstanceRegistry&) = delete;
  InstanceRegistry& operator=(const InstanceRegistry&) = delete;

  // Adds an instance (healthy until a check or a request says otherwise); returns its index.
  Result<size_t> add(InstanceRole role, std::string_view url);

  // Picks a healthy instance of `role` not in `exclude`: least outstanding prompt tokens (prefill) or
  // fewest active requests (decode, colocated) under kLeastLoaded, the next one under kRoundRobin; ties
  // go round-robin. `prompt_tokens` is the request's estimated cost (counted on prefill instances).
  // nullopt when no healthy instance is left.
  std::optional<InstanceLease> select(InstanceRole role, int64_t prompt_tokens,
                                      const std::vector<size_t>& exclude = {});

  // Health: a failed check or a failed request ejects an instance; a passed check readmits it.
  // Each returns true when the health state changed.
  bool report_health_check(size_t index, bool ok);
  bool report_request_failure(size_t index);

  bool any_healthy(InstanceRole role, const std::vector<size_t>& exclude = {}) const;
  size_t size() const;
  const InstanceUrl& url(size_t index) const;
  InstanceRole role(size_t index) const;
  std::vector<InstanceSnapshot> snapshot() const;

 private:
  friend class InstanceLease;
  struct Instance {
    InstanceRole role;
    InstanceUrl url;
    bool healthy = true;
    int64_t outstanding_prompt_tokens = 0;
    int64_t active_requests = 0;
    int64_t total_requests = 0;
    int64_t failures = 0;
    int consecutive_health_failures = 0;
  };
  void release(size_t index, int64_t prompt_tokens);

  RoutingPolicy policy_;
  mutable std::mutex mu_;
  // unique_ptr keeps InstanceUrl references stable while instances are added (add happens at start-up).
  std::vector<std::unique_ptr<Instance>> instances_;
  size_t rr_cursor_[3] = {0, 0, 0};  // per role: where the next tie-break scan starts
};

}  // namespace tandem::proxy
