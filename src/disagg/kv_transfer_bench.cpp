// kv-transfer benchmark (see kv_transfer_bench.h). The producer side (in-process or forked) owns a
// filled pool and an agent; the consumer reads the prompt's blocks into its own pool, times each
// iteration, and verifies the bytes of the last one.
#include "disagg/kv_transfer_bench.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "backend/kv_cache_view.h"
#include "transfer/cuda_ipc/cuda_ipc_agent.h"
#include "transfer/device_memory.h"
#include "transfer/tcp/tcp_agent.h"

namespace tandem {
namespace {

// The KV layout the options describe and the number of blocks the prompt fills.
struct BenchLayout {
  KvLayout layout;
  size_t num_blocks = 0;
};

BenchLayout layout_of(const KvTransferBenchOptions& o) {
  return {KvLayout{o.num_layers, o.num_kv_heads, o.head_dim, o.block_size, o.dtype},
          static_cast<size_t>((o.num_tokens + o.block_size - 1) / o.block_size)};
}

struct Endpoint {
  std::shared_ptr<SideChannelServer> server;
  std::unique_ptr<TransferAgent> agent;
  TransferBuffer pool;
};

Result<Endpoint> make_endpoint(TransportKind kind, size_t pool_bytes, MemoryKind mem, int device, uint32_t seed) {
  Endpoint e;
  SideChannelOptions so;
  TANDEM_ASSIGN_OR_RETURN(auto server, SideChannelServer::start(so));
  e.server = std::move(server);
  if (kind == TransportKind::kCudaIpc) {
    CudaIpcAgentOptions o;
    o.device_id = device;
    TANDEM_ASSIGN_OR_RETURN(auto a, CudaIpcAgent::create(e.server, o));
    e.agent = std::move(a);
  } else {
    TcpAgentOptions o;
    TANDEM_ASSIGN_OR_RETURN(auto a, TcpAgent::create(e.server, o));
    e.agent = std::move(a);
  }
  TANDEM_ASSIGN_OR_RETURN(e.pool, TransferBuffer::allocate(pool_bytes, mem, device));
  TANDEM_RETURN_IF_ERROR(e.pool.fill(seed));
  TANDEM_RETURN_IF_ERROR(e.agent->register_memory(e.pool.region()));
  return e;
}

bool write_all(int fd, const std::string& s) {
  uint32_t n = static_cast<uint32_t>(s.size());
  if (write(fd, &n, 4) != 4) return false;
  size_t off = 0;
  while (off < s.size()) {
    ssize_t w = write(fd, s.data() + off, s.size() - off);
    if (w <= 0) return false;
    off += static_cast<size_t>(w);
  }
  return true;
}

Result<std::string> read_all(int fd) {
  uint32_t n = 0;
  if (read(fd, &n, 4) != 4 || n > (1u << 24)) return UnavailableError("producer process sent no metadata");
  std::string s(n, '\0');
  size_t off = 0;
  while (off < n) {
    ssize_t r = read(fd, s.data() + off, n - off);
    if (r <= 0) return UnavailableError("producer process closed its pipe");
    off += static_cast<size_t>(r);
  }
  return s;
}

Result<KvTransferBenchResult> bench_one(const KvTransferBenchOptions& o, TransportKind kind, const std::string* remote) {
  const BenchLayout shape = layout_of(o);
  const size_t block_bytes = shape.layout.block_bytes();
  const size_t nblocks = shape.num_blocks;
  const size_t producer_blocks = nblocks;
  const size_t consumer_blocks = o.scattered ? 2 * nblocks : nblocks;
  const MemoryKind mem = o.device == Device::kCuda ? MemoryKind::kCuda : MemoryKind::kHost;
  KvTransferBenchResult res;
  res.transport = std::string(transport_kind_name(kind));
  res.num_blocks = nblocks;
  res.bytes = nblocks * block_bytes;

  std::string producer_md;
  uint64_t producer_base = 0;
  Endpoint producer;
  if (remote != nullptr) {  // two processes: the forked producer made its endpoint already
    if (remote->rfind("ERR", 0) == 0) return UnavailableError("producer process: {}", *remote);
    size_t sp = remote->find(' ');
    producer_base = std::stoull(remote->substr(0, sp));
    producer_md = remote->substr(sp + 1);
    res.mode = "two processes";
  } else {
    TANDEM_ASSIGN_OR_RETURN(producer, make_endpoint(kind, producer_blocks * block_bytes, mem, o.producer_device, 1));
    TANDEM_ASSIGN_OR_RETURN(producer_md, producer.agent->export_metadata());
    producer_base = producer.pool.region().addr;
    res.mode = "one process, two agents";
  }

  TANDEM_ASSIGN_OR_RETURN(Endpoint consumer, make_endpoint(kind, consumer_blocks * block_bytes, mem, o.consumer_device, 2));
  auto peer = consumer.agent->import_metadata(producer_md);
  if (!peer.ok()) return peer.status();
  std::vector<ReadDescriptor> descs;
  const uint64_t consumer_base = consumer.pool.region().addr;
  for (size_t b = 0; b < nblocks; ++b) {
    size_t local = o.scattered ? 2 * b : b;
    descs.push_back({consumer_base + local * block_bytes, producer_base + b * block_bytes, block_bytes});
  }
  descs = coalesce_descriptors(descs);
  res.num_descriptors = descs.size();

  std::vector<double> ms;
  Status err;
  for (int it = 0; it < o.iterations + 1 && err.ok(); ++it) {  // the first is a warm-up
    TimePoint t0 = Clock::now();
    auto id = consumer.agent->submit_read(*peer, descs);
    if (!id.ok()) {
      err = id.status();
      break;
    }
    TransferStatus st = consumer.agent->wait(*id, std::chrono::seconds(120));
    double elapsed = seconds_between(t0, Clock::now()) * 1e3;
    consumer.agent->release(*id);
    if (st.state != TransferState::kDone) {
      err = st.state == TransferState::kFailed ? st.error : DeadlineExceededError("transfer did not finish in 120 s");
      break;
    }
    if (it > 0) ms.push_back(elapsed);
  }
  if (err.ok()) {
    // Verify: regenerate the producer's pattern for a few blocks and compare what arrived.
    res.verified = true;
    std::vector<uint8_t> got(block_bytes), want(block_bytes);
    auto ref = TransferBuffer::allocate(producer_blocks * block_bytes, MemoryKind::kHost);
    if (ref.ok() && ref->fill(1).ok()) {
      for (size_t b : {size_t{0}, nblocks / 2, nblocks - 1}) {
        size_t local = o.scattered ? 2 * b : b;
        if (!consumer.pool.copy_to_host(local * block_bytes, got.data(), block_bytes).ok() ||
            !ref->copy_to_host(b * block_bytes, want.data(), block_bytes).ok() || got != want) {
          res.verified = false;
        }
      }
    } else {
      res.verified = false;
    }
  }
  consumer.agent->forget_peer(*peer);
  if (!err.ok()) return err;
  std::sort(ms.begin(), ms.end());
  res.min_ms = ms.front();
  res.median_ms = ms[ms.size() / 2];
  res.gbps_at_min = static_cast<double>(res.bytes) / (res.min_ms * 1e-3) / 1e9;
  return res;
}

}  // namespace

Result<std::vector<KvTransferBenchResult>> run_kv_transfer_bench(const KvTransferBenchOptions& o) {
  if (o.num_tokens < 1 || o.num_layers < 1 || o.num_kv_heads < 1 || o.head_dim < 1 || o.block_size < 1 || o.iterations < 1) {
    return InvalidArgumentError("kv-transfer bench: sizes and --iterations must be positive");
  }
  std::vector<TransportKind> kinds = o.transports;
  if (kinds.empty()) {
    kinds.push_back(TransportKind::kTcp);
    // In two-process mode the parent must not touch CUDA before forking; the child reports failures.
    if (o.device == Device::kCuda && (o.two_processes || cuda_ipc_available())) kinds.push_back(TransportKind::kCudaIpc);
  }
  for (TransportKind k : kinds) {
    if (k == TransportKind::kAuto) return InvalidArgumentError("kv-transfer bench: name a transport (tcp, cuda_ipc)");
    if (k == TransportKind::kCudaIpc && o.device != Device::kCuda) return InvalidArgumentError("cuda_ipc needs --device cuda");
  }
  const MemoryKind mem = o.device == Device::kCuda ? MemoryKind::kCuda : MemoryKind::kHost;
  const BenchLayout shape = layout_of(o);
  const size_t pool_bytes = shape.num_blocks * shape.layout.block_bytes();
  std::vector<std::string> remote(kinds.size());
  pid_t child = -1;
  int to_child[2] = {-1, -1};
  if (o.two_processes) {
    // One producer process for every transport, forked before this process initialises CUDA (a forked
    // child cannot use a CUDA context inherited from its parent).
    int from_child[2];
    if (pipe(from_child) != 0 || pipe(to_child) != 0) return InternalError("pipe() failed");
    child = fork();
    if (child < 0) return InternalError("fork() failed");
    if (child == 0) {
      close(from_child[0]);
      close(to_child[1]);
      std::vector<Endpoint> eps;
      for (TransportKind k : kinds) {
        auto ep = make_endpoint(k, pool_bytes, mem, o.producer_device, 1);
        std::string msg;
        if (ep.ok()) {
          auto md = ep->agent->export_metadata();
          msg = md.ok() ? fmt::format("{} {}", ep->pool.region().addr, *md) : "ERR " + md.status().to_string();
          eps.push_back(std::move(ep).value());
        } else {
          msg = "ERR " + ep.status().to_string();
        }
        write_all(from_child[1], msg);
      }
      char c;
      while (read(to_child[0], &c, 1) > 0) {
      }  // serve until the parent closes the pipe
      _exit(0);
    }
    close(from_child[1]);
    close(to_child[0]);
    for (auto& r : remote) {
      auto msg = read_all(from_child[0]);
      r = msg.ok() ? *msg : "ERR " + msg.status().to_string();
    }
    close(from_child[0]);
  }
  std::vector<KvTransferBenchResult> out;
  Status err;
  for (size_t i = 0; i < kinds.size() && err.ok(); ++i) {
    auto r = bench_one(o, kinds[i], o.two_processes ? &remote[i] : nullptr);
    if (!r.ok()) {
      err = r.status().with_context(std::string(transport_kind_name(kinds[i])));
    } else {
      out.push_back(*r);
    }
  }
  if (child > 0) {
    close(to_child[1]);
    waitpid(child, nullptr, 0);
  }
  if (!err.ok()) return err;
  return out;
}

std::string format_kv_transfer_bench(const KvTransferBenchOptions& o, const std::vector<KvTransferBenchResult>& results) {
  const KvLayout layout = layout_of(o).layout;
  std::string s = fmt::format(
      "============ KV transfer benchmark ============\n"
      "Prompt tokens:                  {}\n"
      "KV shape:                       {} layers x {} kv heads x {} dim, {} ({} bytes/elem), block {} tokens\n"
      "Block bytes:                    {}\n"
      "Memory:                         {}\n"
      "Consumer block placement:       {}\n"
      "Iterations:                     {} (+1 warm-up)\n",
      o.num_tokens, o.num_layers, o.num_kv_heads, o.head_dim, dtype_name(o.dtype), dtype_size(o.dtype), o.block_size,
      layout.block_bytes(), o.device == Device::kCuda ? "CUDA device memory" : "host memory",
      o.scattered ? "scattered (no two consecutive: one descriptor per block)" : "contiguous (runs coalesced)", o.iterations);
  for (const auto& r : results) {
    s += fmt::format(
        "---------------- {} ({}) ----------------\n"
        "Bytes moved:                    {} ({:.1f} MB)\n"
        "Blocks / descriptors:           {} / {}\n"
        "Time min / median (ms):         {:.3f} / {:.3f}\n"
        "Throughput at min (GB/s):       {:.2f}\n"
        "Data verified:                  {}\n",
        r.transport, r.mode, r.bytes, r.bytes / 1e6, r.num_blocks, r.num_descriptors, r.min_ms, r.median_ms,
        r.gbps_at_min, r.verified ? "yes" : "NO");
  }
  s += "===============================================\n";
  return s;
}

}  // namespace tandem
