// The small-M GEMV kernel (backend/cuda/gemv_kernels.h) against the CPU reference matmul, every M it
// handles, bf16 and fp32 outputs, ragged N and K tails; plus a DISABLED_ benchmark against cuBLASLt at
// Llama-3.1-8B decode shapes:
//   test_cuda --gtest_also_run_disabled_tests --gtest_filter='CudaGemvBench.*'
// Calls the kernels directly (CUDA runtime headers): built only with the CUDA backend.
#ifdef TANDEM_HAVE_CUDA
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "backend/cuda/cublaslt_gemm.h"
#include "backend/cuda/gemv_kernels.h"
#include "cuda/cuda_test_util.h"

namespace tandem {
namespace {

using namespace cuda_test;

struct GemvCase {
  int n, k;
};

TEST(CudaGemv, MatchesCpuReferenceForEveryM) {
  TANDEM_SKIP_WITHOUT_CUDA();
  Backends be = make_backends();
  std::mt19937 rng(11);
  // K: one partial warp step (8), several unrolled steps with a tail (4104 = 16 * 256 + 8), Llama-ish.
  const GemvCase cases[] = {{37, 8}, {1001, 4104}, {130, 136}, {515, 2048}};
  for (const GemvCase& c : cases) {
    for (int m = 1; m <= cuda::kGemvMaxM; ++m) {
      for (bool f32 : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "m=" << m << " n=" << c.n << " k=" << c.k << " f32=" << f32);
        const float ws = 1.0f / std::sqrt(static_cast<float>(c.k));
        std::vector<float> x = random_bf16(static_cast<size_t>(m) * c.k, rng);
        std::vector<float> w = random_bf16(static_cast<size_t>(c.n) * c.k, rng, ws);
        auto d_x = upload_bf16(*be.gpu, x, {m, c.k});
        auto d_w = upload_bf16(*be.gpu, w, {c.n, c.k});
        auto d_out = device_tensor(*be.gpu, f32 ? DType::kF32 : DType::kBF16, {m, c.n});
        poison(*be.gpu, d_out.view);
        ASSERT_TRUE(cuda::gemv_supported(d_x.view.data, d_w.view.data, m, c.k));
        cuda::launch_gemv(d_x.view.data, d_w.view.data, d_out.view.data, f32, /*accumulate=*/false, m, c.n, c.k,
                          nullptr);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        ASSERT_EQ(cudaGetLastError(), cudaSuccess);
        std::vector<float> ref(static_cast<size_t>(m) * c.n);
        be.cpu->matmul(host_view(x, {m, c.k}), host_view(w, {c.n, c.k}), host_view(ref, {m, c.n}));
        if (f32) TANDEM_EXPECT_CLOSE(download(*be.gpu, d_out.view), ref, 1e-9, 1e-3);
        else TANDEM_EXPECT_CLOSE(download(*be.gpu, d_out.view), ref, 1e-5, 0.04);
      }
    }
  }
}

TEST(CudaGemv, SupportRules) {
  alignas(16) static char buf[64];
  EXPECT_TRUE(cuda::gemv_supported(buf, buf, 1, 8));
  EXPECT_FALSE(cuda::gemv_supported(buf, buf, 0, 8));
  EXPECT_FALSE(cuda::gemv_supported(buf, buf, cuda::kGemvMaxM + 1, 8));
  EXPECT_FALSE(cuda::gemv_supported(buf, buf, 1, 12));       // K not a multiple of 8
  EXPECT_FALSE(cuda::gemv_supported(buf + 2, buf, 1, 8));    // misaligned x
}

// Backend::matmul at small M (GEMV for M <= 2 by default, cuBLASLt above): same answers as the CPU.
TEST(CudaGemv, BackendMatmulSmallM) {
  TANDEM_SKIP_WITHOUT_CUDA();
  Backends be = make_backends();
  std::mt19937 rng(12);
  for (int m : {1, 4, 8, 9}) {
    SCOPED_TRACE(::testing::Message() << "m=" << m);
    const int n = 3072, k = 1024;
    std::vector<float> x = random_bf16(static_cast<size_t>(m) * k, rng);
    std::vector<float> w = random_bf16(static_cast<size_t>(n) * k, rng, 1.0f / 32);
    auto d_x = upload_bf16(*be.gpu, x, {m, k});
    auto d_w = upload_bf16(*be.gpu, w, {n, k});
    auto d_out = device_tensor(*be.gpu, DType::kF32, {m, n});
    poison(*be.gpu, d_out.view);
    be.gpu->matmul(d_x.view, d_w.view, d_out.view);
    std::vector<float> ref(static_cast<size_t>(m) * n);
    be.cpu->matmul(host_view(x, {m, k}), host_view(w, {n, k}), host_view(ref, {m, n}));
    TANDEM_EXPECT_CLOSE(download(*be.gpu, d_out.view), ref, 1e-9, 1e-3);
  }
}

// Backend::matmul_add (the residual add folded into o_proj / down_proj): GEMV rows (M <= 2), cuBLASLt
// with beta 1 in place (M 3 .. 300), against the CPU reference's matmul_add on the same bf16 inputs.
// Residual and product are of similar size, so a dropped or doubled add shows in the NMSE.
TEST(CudaGemv, BackendMatmulAddAccumulatesInPlace) {
  TANDEM_SKIP_WITHOUT_CUDA();
  Backends be = make_backends();
  std::mt19937 rng(14);
  // n x k: odd sizes, then the tiny test model's o_proj (64 x 64) and down_proj (64 x 128).
  for (auto [n, k] : {std::pair{1000, 520}, {64, 64}, {64, 128}}) {
    for (int m : {1, 2, 3, 64, 300}) {
      SCOPED_TRACE(::testing::Message() << "m=" << m << " n=" << n << " k=" << k);
      std::vector<float> x = random_bf16(static_cast<size_t>(m) * k, rng);
      std::vector<float> w = random_bf16(static_cast<size_t>(n) * k, rng, 1.0f / 16);
      std::vector<float> residual = random_bf16(static_cast<size_t>(m) * n, rng, 2.0f);
      auto d_x = upload_bf16(*be.gpu, x, {m, k});
      auto d_w = upload_bf16(*be.gpu, w, {n, k});
      auto d_out = upload_bf16(*be.gpu, residual, {m, n});
      be.gpu->matmul_add(d_x.view, d_w.view, d_out.view);
      std::vector<float> ref = residual;
      be.cpu->matmul_add(host_view(x, {m, k}), host_view(w, {n, k}), host_view(ref, {m, n}));
      // Sums have std ~2.5 (residual 2, product 1.4), |max| < 16: half a bf16 ulp is at most 2^-5 there;
      // cuBLASLt rounds the product to bf16 before adding C (0.045 seen at m 64 / 300): two roundings.
      TANDEM_EXPECT_CLOSE(download(*be.gpu, d_out.view), ref, 1e-5, 0.07);
    }
  }
}

TEST(CudaGemvBench, DISABLED_GemvVsCublasLt) {
  TANDEM_SKIP_WITHOUT_CUDA();
  Backends be = make_backends();
  std::mt19937 rng(13);
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  cuda::CublasLtGemm lt;
  ASSERT_TRUE(lt.init(32u << 20).ok());
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  // Llama-3.1-8B: qkv, o_proj, gate_up, down_proj, lm_head.
  const GemvCase shapes[] = {{6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}, {128256, 4096}};
  std::printf("%8s %6s %3s %12s %9s %12s %9s\n", "N", "K", "M", "gemv_us", "gemv_TB/s", "cublaslt_us", "lt_TB/s");
  for (const GemvCase& c : shapes) {
    // Several weight copies (> L2) rotated so each run streams from HBM.
    const size_t wbytes = static_cast<size_t>(c.n) * c.k * 2;
    const int copies = static_cast<int>(std::max<size_t>(2, (200u << 20) / wbytes + 1));
    std::vector<DeviceTensor> ws;
    std::vector<float> w = random_bf16(static_cast<size_t>(c.n) * c.k, rng, 0.02f);
    for (int i = 0; i < copies; ++i) ws.push_back(upload_bf16(*be.gpu, w, {c.n, c.k}));
    for (int m : {1, 2, 4, 8}) {
      std::vector<float> x = random_bf16(static_cast<size_t>(m) * c.k, rng);
      auto d_x = upload_bf16(*be.gpu, x, {m, c.k});
      auto d_out = device_tensor(*be.gpu, DType::kBF16, {m, c.n});
      auto time_us = [&](auto&& fn) {
        for (int i = 0; i < 3; ++i) fn(ws[i % copies].view.data);
        std::vector<float> t;
        for (int r = 0; r < 5; ++r) {
          const int iters = 20;
          cudaEventRecord(e0, stream);
          for (int i = 0; i < iters; ++i) fn(ws[i % copies].view.data);
          cudaEventRecord(e1, stream);
          cudaEventSynchronize(e1);
          float ms = 0;
          cudaEventElapsedTime(&ms, e0, e1);
          t.push_back(ms * 1000.0f / iters);
        }
        std::sort(t.begin(), t.end());
        return t[t.size() / 2];
      };
      const float g = time_us([&](void* wp) {
        cuda::launch_gemv(d_x.view.data, wp, d_out.view.data, false, false, m, c.n, c.k, stream);
      });
      const float l = time_us([&](void* wp) {
        lt.run(d_x.view.data, wp, d_out.view.data, m, c.n, c.k, CUDA_R_16BF, false, stream);
      });
      ASSERT_EQ(cudaGetLastError(), cudaSuccess);
      std::printf("%8d %6d %3d %12.1f %9.2f %12.1f %9.2f\n", c.n, c.k, m, g, wbytes / (g * 1e6), l,
                  wbytes / (l * 1e6));
    }
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaStreamDestroy(stream);
}

}  // namespace
}  // namespace tandem

#endif  // TANDEM_HAVE_CUDA
