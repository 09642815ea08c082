// The measured FMA peak (fma_peak.h): `kChains` independent accumulators per
// thread, each updated by one FMA per iteration, enough to cover the FMA
// latency on both pipes (4 cycles x 2 pipes = 8 in flight on Zen 3-5) while
// staying in registers (32 zmm on AVX-512, 16 ymm/xmm otherwise).
#include "fma_peak.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <vector>

namespace rowconv::cpu {
namespace {

#define ROWCONV_INLINE inline __attribute__((always_inline))

// Runs `iters` rounds of acc[c] = acc[c] * a + b over Chains vectors of
// Bytes; returns a sum of the accumulators, so that none is dead code.
template <typename T, int Bytes, int Chains>
ROWCONV_INLINE double fma_chains(int64_t iters) {
  typedef T V __attribute__((vector_size(Bytes)));
  V acc[Chains];
  for (int c = 0; c < Chains; ++c) acc[c] = V{} + static_cast<T>(c + 1) * static_cast<T>(1e-3);
  // a < 1: the chains converge to b / (1 - a) = 1, no overflow, no subnormals.
  const V a = V{} + static_cast<T>(0.999), b = V{} + static_cast<T>(0.001);
  for (int64_t i = 0; i < iters; ++i) {
    // Without -ffast-math the compiler may not merge or reorder the rounds.
    for (int c = 0; c < Chains; ++c) acc[c] = acc[c] * a + b;
  }
  double sum = 0;
  for (int c = 0; c < Chains; ++c)
    for (int l = 0; l < Bytes / static_cast<int>(sizeof(T)); ++l) sum += acc[c][l];
  return sum;
}

struct Probe {
  double (*run)(int64_t iters);
  double flops_per_iter;  // per thread
};

template <typename T, int Bytes, int Chains>
constexpr double flops_of() {
  return 2.0 * Chains * (Bytes / static_cast<int>(sizeof(T)));
}

template <typename T>
double fma_baseline(int64_t iters) { return fma_chains<T, 16, 8>(iters); }

#if defined(__x86_64__)
template <typename T>
__attribute__((target("avx2,fma"))) double fma_avx2(int64_t iters) {
  return fma_chains<T, 32, 12>(iters);
}
template <typename T>
__attribute__((target("avx512f"))) double fma_avx512(int64_t iters) {
  return fma_chains<T, 64, 16>(iters);
}

// 16 chains of vdpbf16ps: each adds 16 lanes x 2 bf16 products (64 flops).
__attribute__((target("avx512f,avx512bf16"))) double dpbf16_avx512(int64_t iters) {
  constexpr int kChains = 16;
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(1e-3f * static_cast<float>(c + 1));
  // bf16 pairs of 2^-10: the sums grow by 2^-19 per round, far from overflow.
  const __m512i bits = _mm512_set1_epi32(0x3a803a80);
  const __m512bh a = reinterpret_cast<const __m512bh&>(bits), b = a;
  for (int64_t i = 0; i < iters; ++i) {
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
  }
  double sum = 0;
  for (int c = 0; c < kChains; ++c) sum += _mm512_reduce_add_ps(acc[c]);
  return sum;
}
#endif

// The widest probe the CPU runs for dtype; run == nullptr where there is none.
Probe probe_for(const std::string& dtype) {
  TORCH_CHECK_VALUE(dtype == "float32" || dtype == "float64" || dtype == "bfloat16",
                    "fma_peak_gflops: dtype must be float32, float64 or bfloat16, got '", dtype, "'");
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (dtype == "bfloat16") {
    if (avx512 && __builtin_cpu_supports("avx512bf16")) return {&dpbf16_avx512, 16 * 64.0};
    return {nullptr, 0};
  }
  if (dtype == "float32") {
    if (avx512) return {&fma_avx512<float>, flops_of<float, 64, 16>()};
    if (avx2) return {&fma_avx2<float>, flops_of<float, 32, 12>()};
  } else {
    if (avx512) return {&fma_avx512<double>, flops_of<double, 64, 16>()};
    if (avx2) return {&fma_avx2<double>, flops_of<double, 32, 12>()};
  }
#endif
  if (dtype == "bfloat16") return {nullptr, 0};
  if (dtype == "float32") return {&fma_baseline<float>, flops_of<float, 16, 8>()};
  return {&fma_baseline<double>, flops_of<double, 16, 8>()};
}

// Seconds for every thread to run `iters` rounds, side by side.
double time_threads(const Probe& probe, int64_t threads, int64_t iters, std::vector<double>& sink) {
  const auto start = std::chrono::steady_clock::now();
  at::parallel_for(0, threads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) sink[t] = probe.run(iters);
  });
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

double fma_peak_gflops(const std::string& dtype, double seconds) {
  const Probe probe = probe_for(dtype);
  if (probe.run == nullptr) return 0;
  const int64_t threads = at::get_num_threads();
  std::vector<double> sink(threads);
  constexpr int kTrials = 5;
  // Rounds for one trial of about seconds / kTrials (starting small, doubling).
  int64_t iters = 1 << 12;
  while (time_threads(probe, threads, iters, sink) < seconds / kTrials / 4 && iters < (int64_t{1} << 40))
    iters *= 2;
  iters *= 4;
  double best = 1e300;
  for (int trial = 0; trial < kTrials; ++trial)
    best = std::min(best, time_threads(probe, threads, iters, sink));
  return probe.flops_per_iter * static_cast<double>(iters) * static_cast<double>(threads) / best / 1e9;
}

}  // namespace rowconv::cpu
