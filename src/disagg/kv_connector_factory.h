// Creates the disaggregation KvConnector (producer/consumer over the configured transport) that the
// server hands to Engine::create.
#pragma once

#include <memory>

#include "disagg/kv_transfer_config.h"
#include "engine/kv_connector.h"

namespace tandem {

Result<std::unique_ptr<KvConnector>> create_kv_connector(const KvTransferConfig& config);

}  // namespace tandem
