// create_kv_connector: the one place that picks the KvConnector implementation (see the header).
#include "disagg/kv_connector_factory.h"

#include "disagg/disagg_connector.h"

namespace tandem {

Result<std::unique_ptr<KvConnector>> create_kv_connector(const KvTransferConfig& config) {
  return std::unique_ptr<KvConnector>(std::make_unique<DisaggKvConnector>(config));
}

}  // namespace tandem
