// CUDA backend row/elementwise ops and GEMMs against the CPU reference backend, on odd shapes (sizes
// that are not multiples of 8/16/128 take the scalar paths). Inputs are bf16-rounded on both sides, so
// the differences come from bf16 output rounding and accumulation order only:
//   elementwise / norms: NMSE <= 1e-5, max-abs <= 0.05 for values of order 1-4 (silu_mul: 2^-8 of max |ref|);
//   matmul: NMSE <= 1e-5 (bf16 out) / 1e-9 (fp32 out), max-abs stated per case.
#include <gtest/gtest.h>

#include <numeric>

#include "cuda/cuda_test_util.h"

namespace tandem {
namespace {

using namespace cuda_test;

TEST(CudaOps, Embedding) {
  TANDEM_SKIP_WITHOUT_CUDA();
  Backends be = make_backends();
  std::mt19937 rng(1);
  for (int hidden : {136, 100, 8}) {
    const int vocab = 1001;
    std::vector<float> table = random_bf16(static_cast<size_t>(vocab) * hidden, rng);
    std::vector<int32_t> ids = {0, 5, 1000, -1, 1001, 77, 77, 3};
    const int n = static_cast<int>(ids.size());
    auto d_table = upload_bf16(*be.gpu, table, {vocab, hidden});
    auto d_ids = upload_raw(*be.gpu, ids, DType::kI32, {n});
    auto d_out = device_tensor(*be.gpu, DType::kBF16, {n, hidden});
    poison(*be.gpu, d_out.view);
    be.gpu->embedding(d_ids.view, d_table.view, d_out.view);
    std::vector<float> ref(static_cast<size_t>(n) * hidden);
    be.cpu->embedding(host_view_i32(ids, {n}), host_view(table, {vocab, hidden}), host_view(ref, {n, hidden}));
    std::vector<float> got = download(*be.gpu, d_out.view);
    EXPECT_EQ(got, ref) << "hidden " << hidden;  // a copy: exact
  }
}

TEST(CudaOps, RmsNorm) {
  TANDEM_SKIP_WITHOUT_CUDA();
  Backends be = make_backends();
  std::mt19937 rng(2);
  for (int hidden : {4096, 100, 8, 1000}) {
    const int n = 5;
    const float eps = 1e-5f;
    std::vector<float> x = random_bf16(static_cast<size_t>(n) * hidden, rng, 2.0f);
    std::vector<float> w = random_bf16(hidden, rng, 1.0f);
    auto d_x = upload_bf16(*be.gpu, x, {n, hidden});
    auto d_w = upload_bf16(*be.gpu, w, {hidden});
    auto d_out = device_tensor(*be.gpu, DType::kBF16, {n, hidden});

    poison(*be.gpu, d_out.view);
    be.gpu->rms_norm(d_x.view, d_w.view, eps, d_out.view);
    std::vector<float> ref(x.size());
    be.cpu->rms_norm(host_view(x, {n, hidden}), host_view(w, {hidden}), eps, host_view(ref, {n, hidden}));
    TANDEM_EXPECT_CLOSE(download(*be.gpu, d_out.view), ref, 1e-5, 0.05);

    // In place (x aliasing out).
    be.gpu->rms_norm(d_x.view, d_w.view, eps, d_x.view);
    TANDEM_EXPECT_CLOSE(download(*be.gpu, d_x.view), ref, 1e-5, 0.05);
  }
}

TEST(CudaOps, SiluMul) {
  TANDEM_SKIP_WITHOUT_CUDA();
  Backends be = make_backends();
  std::mt19937 rng(3);
  for (int inter : {136, 50, 14336}) {
    const int n = 7;
    std::vector<float> gu = random_bf16(static_cast<size_t>(n) * 2 * inter, rng, 2.0f);
    auto d_gu = upload_bf16(*be.gpu, gu, {n, 2 * inter});
    auto d_out = device_tensor(*be.gpu, DType::kBF16, {n, inter});
    poison(*be.gpu, d_out.view);
    be.gpu->silu_mul(d_gu.view, d_out.view);
    std::vector<float> ref(static_cast<size_t>(n) * inter);
    be.cpu->silu_mul(host_view(gu, {n, 2 * inter}), host_view(ref, {n, inter}));
    // Products reach ~50, where a bf16 half-ulp is 0.125: bound max-abs by 2^-8 of the largest |ref|.
    float ref_max = 0.0f;
    for (float r : ref) ref_max = std::max(ref_max, std::fabs(r));
    TANDEM_EXPECT_CLOSE(download(*be.gpu, d_out.view), ref, 1e-5, ref_max / 256.0f);
  }
}

TEST(CudaOps, GatherRows) {
  TANDEM_SKIP_WITHOUT_CUDA();
  Backends be = make_backends();
  std::mt19937 rng(4);
  std::vector<int32_t> ids = {19, 0, 7, 7, 3};
  const int m = static_cast<int>(ids.size());
  auto d_ids = upload_raw(*be.gpu, ids, DType::kI32, {m});
  for (int width : {136, 37}) {
    std::vector<float> x = random_bf16(20 * static_cast<size_t>(width), rng);
    // bf16 rows (16-byte path when width % 8 == 0) and f32 rows (the logits gather).
    auto d_x = upload_bf16(*be.gpu, x, {20, width});
    auto d_out = device_tensor(*be.gpu, DType::kBF16, {m, width});
    poison(*be.gpu, d_out.view);
    be.gpu->gather_rows(d_x.view, d_ids.view, d_out.view);
    std::vector<float> ref(static_cast<size_t>(m) * width);
    be.cpu->gather_rows(host_view(x, {20, width}), host_view_i32(ids, {m}), host_view(ref, {m, width}));
    EXPECT_EQ(download(*be.gpu, d_out.view), ref);

    auto d_xf = upload_raw(*be.gpu, x, DType::kF32, {20, width});
    auto d_outf = device_tensor(*be.gpu, DType::kF32, {m, width});
    poison(*be.gpu, d_outf.view);
    be.gpu->gather_rows(d_xf.view, d_ids.view, d_outf.view);
    EXPECT_EQ(download(*be.gpu, d_outf.view), ref);
  }
}

struct MatmulCase {
  int m, n, k;
  DType out;
};

TEST(CudaOps, Matmul) {
  TANDEM_SKIP_WITHOUT_CUDA();
  Backends be = make_backends();
  std::mt19937 rng(5);
  const MatmulCase cases[] = {{1, 4096, 4096, DType::kBF16}, {7, 50, 136, DType::kBF16}, {33, 1000, 24, DType::kBF16},
                              {130, 264, 1000, DType::kBF16}, {3, 30, 40, DType::kBF16},  {5, 32003, 136, DType::kF32},
                              {1, 128256, 64, DType::kF32}, {257, 96, 4104, DType::kBF16}};
  for (const MatmulCase& c : cases) {
    SCOPED_TRACE(::testing::Message() << "m=" << c.m << " n=" << c.n << " k=" << c.k << " out=" << dtype_name(c.out));
    const float ws = 1.0f / std::sqrt(static_cast<float>(c.k));
    std::vector<float> x = random_bf16(static_cast<size_t>(c.m) * c.k, rng);
    std::vector<float> w = random_bf16(static_cast<size_t>(c.n) * c.k, rng, ws);
    auto d_x = upload_bf16(*be.gpu, x, {c.m, c.k});
    auto d_w = upload_bf16(*be.gpu, w, {c.n, c.k});
    auto d_out = device_tensor(*be.gpu, c.out, {c.m, c.n});
    poison(*be.gpu, d_out.view);
    be.gpu->matmul(d_x.view, d_w.view, d_out.view);
    std::vector<float> ref(static_cast<size_t>(c.m) * c.n);
    be.cpu->matmul(host_view(x, {c.m, c.k}), host_view(w, {c.n, c.k}), host_view(ref, {c.m, c.n}));
    // Outputs are ~N(0, 1): bf16 rounding gives ~2^-9 relative; fp32 output only summation order.
    if (c.out == DType::kBF16) TANDEM_EXPECT_CLOSE(download(*be.gpu, d_out.view), ref, 1e-5, 0.04);
    else TANDEM_EXPECT_CLOSE(download(*be.gpu, d_out.view), ref, 1e-9, 1e-3);
  }
}

TEST(CudaOps, MemoryAndCopies) {
  TANDEM_SKIP_WITHOUT_CUDA();
  Backends be = make_backends();
  size_t free_b = 0, total_b = 0;
  be.gpu->memory_info(&free_b, &total_b);
  EXPECT_GT(total_b, 0u);
  EXPECT_LE(free_b, total_b);
  EXPECT_EQ(be.gpu->device(), Device::kCuda);
  EXPECT_EQ(be.gpu->compute_dtype(), DType::kBF16);
  std::vector<int32_t> src(1000);
  std::iota(src.begin(), src.end(), -3);
  auto a = upload_raw(*be.gpu, src, DType::kI32, {1000});
  auto b = device_tensor(*be.gpu, DType::kI32, {1000});
  be.gpu->copy_device(b.view.data, a.view.data, 4000);
  std::vector<int32_t> back(1000);
  be.gpu->copy_to_host(back.data(), b.view.data, 4000);
  EXPECT_EQ(back, src);
  // An impossible allocation is an error, not a crash.
  auto huge = be.gpu->allocate(size_t{1} << 50);
  EXPECT_FALSE(huge.ok());
}

TEST(CudaOps, NoDeviceGivesError) {
  // Runs everywhere: a device id past the count must be refused with a Status.
  auto r = make_cuda_backend(cuda_device_count() + 3);
  EXPECT_FALSE(r.ok());
}

}  // namespace
}  // namespace tandem
