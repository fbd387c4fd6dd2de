// ProxyConfig validation (see proxy_config.h).
#include "proxy/proxy_config.h"

namespace tandem::proxy {

Status ProxyConfig::validate() const {
  if (port < 0 || port > 65535) return InvalidArgumentError("--port {} is out of range (0-65535)", port);
  if (host.empty()) return InvalidArgumentError("--host is empty");
  if (colocated()) {
    if (!prefill_urls.empty() || !decode_urls.empty()) {
      return InvalidArgumentError("--colocated cannot be combined with --prefill/--decode");
    }
  } else {
    if (prefill_urls.empty()) return InvalidArgumentError("at least one --prefill URL is needed (or --colocated)");
    if (decode_urls.empty()) return InvalidArgumentError("at least one --decode URL is needed (or --colocated)");
  }
  auto check_urls = [](const std::vector<std::string>& urls, std::string_view flag) -> Status {
    for (const auto& u : urls) {
      auto parsed = parse_instance_url(u);
      if (!parsed.ok()) return parsed.status().with_context(flag);
    }
    return Status::Ok();
  };
  TANDEM_RETURN_IF_ERROR(check_urls(prefill_urls, "--prefill"));
  TANDEM_RETURN_IF_ERROR(check_urls(decode_urls, "--decode"));
  TANDEM_RETURN_IF_ERROR(check_urls(colocated_urls, "--colocated"));
  using ms = std::chrono::milliseconds;
  auto positive = [](ms v, std::string_view flag) -> Status {
    if (v <= ms(0)) return InvalidArgumentError("{} must be positive", flag);
    return Status::Ok();
  };
  TANDEM_RETURN_IF_ERROR(positive(connect_timeout, "--connect-timeout"));
  TANDEM_RETURN_IF_ERROR(positive(prefill_timeout, "--prefill-timeout"));
  TANDEM_RETURN_IF_ERROR(positive(decode_idle_timeout, "--decode-timeout"));
  TANDEM_RETURN_IF_ERROR(positive(request_timeout, "--request-timeout"));
  TANDEM_RETURN_IF_ERROR(positive(health_interval, "--health-interval"));
  TANDEM_RETURN_IF_ERROR(positive(health_timeout, "--health-timeout"));
  if (server_threads < 1 || server_threads > 256) return InvalidArgumentError("--threads must be in 1..256");
  if (upstream_threads < 0 || upstream_threads > 256) {
    return InvalidArgumentError("--upstream-threads must be in 0..256 (0: the client-facing threads)");
  }
  return Status::Ok();
}

}  // namespace tandem::proxy
