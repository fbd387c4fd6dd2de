// InstanceRegistry: health state, load counters and instance selection (see instance_registry.h).
#include "proxy/instance_registry.h"

#include <algorithm>
#include <limits>

#include "common/logging.h"
#include "net/http_client.h"

namespace tandem::proxy {

std::string_view instance_role_name(InstanceRole role) {
  switch (role) {
    case InstanceRole::kPrefill: return "prefill";
    case InstanceRole::kDecode: return "decode";
    case InstanceRole::kColocated: return "colocated";
  }
  return "?";
}

Result<RoutingPolicy> parse_routing_policy(std::string_view name) {
  if (name == "least_loaded") return RoutingPolicy::kLeastLoaded;
  if (name == "round_robin") return RoutingPolicy::kRoundRobin;
  return InvalidArgumentError("unknown routing policy '{}' (least_loaded or round_robin)", name);
}

Result<InstanceUrl> parse_instance_url(std::string_view url) {
  // A URL without a scheme means http://; net's parser rejects any other scheme.
  const bool has_scheme = url.find("://") != std::string_view::npos;
  const std::string full = has_scheme ? std::string(url) : "http://" + std::string(url);
  auto parsed = net::HttpUrl::parse(full);
  if (!parsed.ok()) return InvalidArgumentError("instance URL '{}': {}", url, parsed.status().message());
  // HttpUrl takes "host:" as the default port; an instance URL must then name one.
  std::string_view authority = std::string_view(full).substr(7);
  authority = authority.substr(0, authority.find('/'));
  if (authority.ends_with(':')) return InvalidArgumentError("instance URL '{}' has a bad port ''", url);
  InstanceUrl out;
  out.host = std::move(parsed->host);
  out.port = parsed->port;
  std::string_view path = parsed->target;
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  out.base_path = std::string(path);
  bool v6 = out.host.find(':') != std::string::npos;
  out.text = fmt::format("http://{}{}{}:{}{}", v6 ? "[" : "", out.host, v6 ? "]" : "", out.port, out.base_path);
  return out;
}

// ---- InstanceLease ----

InstanceLease::InstanceLease(InstanceLease&& other) noexcept
    : registry_(other.registry_), index_(other.index_), prompt_tokens_(other.prompt_tokens_) {
  other.registry_ = nullptr;
}

InstanceLease& InstanceLease::operator=(InstanceLease&& other) noexcept {
  if (this != &other) {
    release();
    registry_ = other.registry_;
    index_ = other.index_;
    prompt_tokens_ = other.prompt_tokens_;
    other.registry_ = nullptr;
  }
  return *this;
}

InstanceLease::~InstanceLease() { release(); }

void InstanceLease::release() {
  if (registry_ == nullptr) return;
  registry_->release(index_, prompt_tokens_);
  registry_ = nullptr;
}

// ---- InstanceRegistry ----

Result<size_t> InstanceRegistry::add(InstanceRole role, std::string_view url) {
  TANDEM_ASSIGN_OR_RETURN(InstanceUrl parsed, parse_instance_url(url));
  std::lock_guard lock(mu_);
  for (const auto& inst : instances_) {
    if (inst->role == role && inst->url.text == parsed.text) {
      return AlreadyExistsError("{} instance {} given twice", instance_role_name(role), parsed.text);
    }
  }
  auto inst = std::make_unique<Instance>();
  inst->role = role;
  inst->url = std::move(parsed);
  instances_.push_back(std::move(inst));
  return instances_.size() - 1;
}

std::optional<InstanceLease> InstanceRegistry::select(InstanceRole role, int64_t prompt_tokens,
                                                      const std::vector<size_t>& exclude) {
  std::lock_guard lock(mu_);
  const size_t n = instances_.size();
  if (n == 0) return std::nullopt;
  size_t& cursor = rr_cursor_[static_cast<int>(role)];
  size_t best = n;
  int64_t best_load = std::numeric_limits<int64_t>::max();
  // Scanning from the cursor and keeping the first strict minimum makes ties (and the plain
  // round-robin policy, where every load counts as equal) rotate.
  for (size_t k = 0; k < n; ++k) {
    size_t i = (cursor + k) % n;
    const Instance& inst = *instances_[i];
    if (inst.role != role || !inst.healthy) continue;
    if (std::find(exclude.begin(), exclude.end(), i) != exclude.end()) continue;
    int64_t load = 0;
    if (policy_ == RoutingPolicy::kLeastLoaded) {
      load = role == InstanceRole::kPrefill ? inst.outstanding_prompt_tokens : inst.active_requests;
    }
    if (load < best_load) {
      best_load = load;
      best = i;
    }
  }
  if (best == n) return std::nullopt;
  cursor = (best + 1) % n;
  Instance& chosen = *instances_[best];
  chosen.outstanding_prompt_tokens += prompt_tokens;
  chosen.active_requests += 1;
  chosen.total_requests += 1;
  return InstanceLease(this, best, prompt_tokens);
}

void InstanceRegistry::release(size_t index, int64_t prompt_tokens) {
  std::lock_guard lock(mu_);
  Instance& inst = *instances_[index];
  inst.outstanding_prompt_tokens -= prompt_tokens;
  inst.active_requests -= 1;
  TANDEM_CHECK(inst.outstanding_prompt_tokens >= 0 && inst.active_requests >= 0, "load counter underflow");
}

bool InstanceRegistry::report_health_check(size_t index, bool ok) {
  std::lock_guard lock(mu_);
  Instance& inst = *instances_.at(index);
  bool was = inst.healthy;
  inst.consecutive_health_failures = ok ? 0 : inst.consecutive_health_failures + 1;
  inst.healthy = ok;
  if (was != ok) {
    if (ok) {
      TLOG_INFO("proxy: {} instance {} is healthy again, readmitted", instance_role_name(inst.role), inst.url.text);
    } else {
      TLOG_WARN("proxy: {} instance {} failed its health check, ejected", instance_role_name(inst.role),
                inst.url.text);
    }
  }
  return was != ok;
}

bool InstanceRegistry::report_request_failure(size_t index) {
  std::lock_guard lock(mu_);
  Instance& inst = *instances_.at(index);
  inst.failures += 1;
  bool was = inst.healthy;
  inst.healthy = false;
  if (was) {
    TLOG_WARN("proxy: {} instance {} failed a request, ejected until its next passed health check",
              instance_role_name(inst.role), inst.url.text);
  }
  return was;
}

bool InstanceRegistry::any_healthy(InstanceRole role, const std::vector<size_t>& exclude) const {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < instances_.size(); ++i) {
    const Instance& inst = *instances_[i];
    if (inst.role == role && inst.healthy && std::find(exclude.begin(), exclude.end(), i) == exclude.end()) {
      return true;
    }
  }
  return false;
}

size_t InstanceRegistry::size() const {
  std::lock_guard lock(mu_);
  return instances_.size();
}

const InstanceUrl& InstanceRegistry::url(size_t index) const {
  std::lock_guard lock(mu_);
  return instances_.at(index)->url;
}

InstanceRole InstanceRegistry::role(size_t index) const {
  std::lock_guard lock(mu_);
  return instances_.at(index)->role;
}

std::vector<InstanceSnapshot> InstanceRegistry::snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<InstanceSnapshot> out;
  out.reserve(instances_.size());
  for (size_t i = 0; i < instances_.size(); ++i) {
    const Instance& inst = *instances_[i];
    out.push_back({i, inst.role, inst.url.text, inst.healthy, inst.outstanding_prompt_tokens,
                   inst.active_requests, inst.total_requests, inst.failures,
                   inst.consecutive_health_failures});
  }
  return out;
}

}  // namespace tandem::proxy
