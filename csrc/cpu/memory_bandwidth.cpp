// The measured memory bandwidth (memory_bandwidth.h): a copy between two
// buffers of 4x the last-level cache (at least 256 MiB each), so that
// neither stays in a cache; SSE2 loads and non-temporal stores (16 bytes
// are enough to reach the memory's rate, and every x86-64 CPU has them),
// each thread its own contiguous part.
#include "memory_bandwidth.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "microkernels.h"  // l3_cache_bytes

namespace rowconv::cpu {
namespace {

// dst[i] = src[i] for i < count (a multiple of 16 floats, both 64-byte aligned).
void copy_streaming(const float* src, float* dst, int64_t count) {
#if defined(__x86_64__)
  for (int64_t i = 0; i < count; i += 16) {
    const __m128 a = _mm_load_ps(src + i), b = _mm_load_ps(src + i + 4);
    const __m128 c = _mm_load_ps(src + i + 8), d = _mm_load_ps(src + i + 12);
    _mm_stream_ps(dst + i, a);
    _mm_stream_ps(dst + i + 4, b);
    _mm_stream_ps(dst + i + 8, c);
    _mm_stream_ps(dst + i + 12, d);
  }
  _mm_sfence();
#else
  std::memcpy(dst, src, count * sizeof(float));
#endif
}

struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<float[], AlignedFree>;

Buffer aligned_buffer(int64_t count) {
  return Buffer(static_cast<float*>(std::aligned_alloc(64, count * sizeof(float))));
}

// Seconds for the threads to copy src to dst, each thread a contiguous part.
double time_copy(const float* src, float* dst, int64_t count, int64_t threads) {
  const int64_t part = (count / threads) / 16 * 16;
  const auto start = std::chrono::steady_clock::now();
  at::parallel_for(0, threads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t + 1 == threads ? count - t * part : part;
      copy_streaming(src + t * part, dst + t * part, n);
    }
  });
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

double memory_bandwidth_gbps(double seconds) {
  const int64_t threads = at::get_num_threads();
  const int64_t bytes = std::max<int64_t>(int64_t{256} << 20, 4 * l3_cache_bytes());
  const int64_t count = bytes / sizeof(float) / 16 * 16;
  Buffer src = aligned_buffer(count), dst = aligned_buffer(count);
  TORCH_CHECK(src && dst, "memory_bandwidth_gbps: could not allocate 2 x ", bytes, " bytes");
  // values that are not zeros in the source; writing both buffers once maps
  // their pages before the timing
  at::parallel_for(0, count, 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      src[i] = static_cast<float>((i * 2654435761u) % 1000003) * 1e-6f;
      dst[i] = 0.f;
    }
  });
  double best = time_copy(src.get(), dst.get(), count, threads);  // (a warm-up, kept if the best)
  const int trials = static_cast<int>(std::clamp(seconds / std::max(best, 1e-6), 2.0, 20.0));
  for (int trial = 0; trial < trials; ++trial) best = std::min(best, time_copy(src.get(), dst.get(), count, threads));
  TORCH_CHECK(dst[count - 1] == src[count - 1], "memory_bandwidth_gbps: the copy went wrong");
  return 2.0 * static_cast<double>(count * sizeof(float)) / best / 1e9;
}

}  // namespace rowconv::cpu
