// InstanceRegistry: health state, load counters and instance selection (see instance_registry.h).
#include "proxy/instance_registry.h"

#include <algorithm>
#include <charconv>
#include <limits>

#include "common/logging.h"

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
  std::string_view rest = url;
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.find("://") != std::string_view::npos) {
    return InvalidArgumentError("instance URL '{}': only http:// is supported", url);
  }
  size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (hostport.empty()) return InvalidArgumentError("instance URL '{}' has no host", url);
  InstanceUrl out;
  size_t colon = hostport.rfind(':');
  if (colon == std::string_view::npos || (hostport.front() == '[' && hostport.back() == ']')) {
    out.host = std::string(hostport);
    out.port = 80;
  } else {
    out.host = std::string(hostport.substr(0, colon));
    std::string_view port_text = hostport.substr(colon + 1);
    unsigned port = 0;
    auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port == 0 || port > 65535) {
      return InvalidArgumentError("instance URL '{}' has a bad port '{}'", url, port_text);
    }
    out.port = static_cast<uint16_t>(port);
  }
  if (out.host.size() >= 2 && out.host.front() == '[' && out.host.back() == ']') {
    out.host = out.host.substr(1, out.host.size() - 2);  // [::1] -> ::1
  }
  if (out.host.empty()) return InvalidArgumentError("instance URL '{}' has no host", url);
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

const InstanceUrl& InstanceLease::url() const {
  TANDEM_CHECK(registry_ != nullptr, "url() on an empty lease");
  return registry_->url(index_);
}

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

size_t InstanceRegistry::count(InstanceRole role) const {
  std::lock_guard lock(mu_);
  return static_cast<size_t>(
      std::count_if(instances_.begin(), instances_.end(), [&](const auto& i) { return i->role == role; }));
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
