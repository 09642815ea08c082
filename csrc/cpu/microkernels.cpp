// The register-blocked inner loops, written once over GCC vector types and
// compiled for three instruction sets by function target attributes (no
// -march flag: the library runs on any x86-64, and elsewhere on the baseline).
// Blocks (rows x vectors of accumulators) are sized to the register file of
// each instruction set.
#include "microkernels.h"

#include <c10/util/Exception.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace rowconv::cpu {
namespace {

#define ROWCONV_INLINE inline __attribute__((always_inline))

template <typename T, int Bytes>
struct Vec {
  static constexpr int kWidth = Bytes / static_cast<int>(sizeof(T));
  typedef T V __attribute__((vector_size(Bytes)));
  static ROWCONV_INLINE V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));  // an unaligned vector load
    return v;
  }
  static ROWCONV_INLINE void store(T* p, V v) { std::memcpy(p, &v, sizeof(V)); }
  static ROWCONV_INLINE V splat(T x) { return V{} + x; }
  static ROWCONV_INLINE T sum(V v) {  // lanes in a fixed order
    T s = 0;
    for (int i = 0; i < kWidth; ++i) s += v[i];
    return s;
  }
};

// One MR x (NV vectors) block of C for the columns from n0.
template <typename T, int Bytes, int MR, int NV>
ROWCONV_INLINE void gemm_rows_block(int64_t R, const T* A, int64_t lda, const T* const* B_rows,
                                    int64_t n0, T* C, int64_t ldc) {
  using X = Vec<T, Bytes>;
  typename X::V acc[MR][NV];
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) acc[m][v] = X::load(C + m * ldc + n0 + v * X::kWidth);
  for (int64_t r = 0; r < R; ++r) {
    const T* b = B_rows[r] + n0;
    typename X::V bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = X::load(b + v * X::kWidth);
    for (int m = 0; m < MR; ++m) {
      const typename X::V a = X::splat(A[m * lda + r]);
      for (int v = 0; v < NV; ++v) acc[m][v] += a * bv[v];
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) X::store(C + m * ldc + n0 + v * X::kWidth, acc[m][v]);
}

// The last M % MR rows, with a block of exactly that many rows.
template <typename T, int Bytes, int MR, int NV>
ROWCONV_INLINE void gemm_rows_tail(int64_t rows, int64_t R, const T* A, int64_t lda,
                                   const T* const* B_rows, int64_t n0, T* C, int64_t ldc) {
  if constexpr (MR > 0) {
    if (rows == MR)
      gemm_rows_block<T, Bytes, MR, NV>(R, A, lda, B_rows, n0, C, ldc);
    else
      gemm_rows_tail<T, Bytes, MR - 1, NV>(rows, R, A, lda, B_rows, n0, C, ldc);
  }
}

template <typename T, int Bytes, int MR, int NV>
ROWCONV_INLINE void gemm_rows_impl(int64_t M, int64_t N, int64_t R, const T* A, int64_t lda,
                                   const T* const* B_rows, T* C, int64_t ldc) {
  constexpr int64_t step = NV * Vec<T, Bytes>::kWidth;
  static_assert(step <= kRowSlack, "a column block must fit in the row slack");
  for (int64_t n0 = 0; n0 < N; n0 += step) {
    int64_t m0 = 0;
    for (; m0 + MR <= M; m0 += MR)
      gemm_rows_block<T, Bytes, MR, NV>(R, A + m0 * lda, lda, B_rows, n0, C + m0 * ldc, ldc);
    gemm_rows_tail<T, Bytes, MR - 1, NV>(M - m0, R, A + m0 * lda, lda, B_rows, n0, C + m0 * ldc,
                                         ldc);
  }
}

// One MR x NR block of dot products.
template <typename T, int Bytes, int MR, int NR>
ROWCONV_INLINE void dot_rows_block(int64_t N, const T* const* A_rows, const T* const* B_rows,
                                   T* C, int64_t ldc) {
  using X = Vec<T, Bytes>;
  typename X::V acc[MR][NR];
  for (int m = 0; m < MR; ++m)
    for (int r = 0; r < NR; ++r) acc[m][r] = typename X::V{};
  int64_t n = 0;
  for (; n + X::kWidth <= N; n += X::kWidth) {
    typename X::V a[MR], b[NR];
    for (int m = 0; m < MR; ++m) a[m] = X::load(A_rows[m] + n);
    for (int r = 0; r < NR; ++r) b[r] = X::load(B_rows[r] + n);
    for (int m = 0; m < MR; ++m)
      for (int r = 0; r < NR; ++r) acc[m][r] += a[m] * b[r];
  }
  for (int m = 0; m < MR; ++m) {
    for (int r = 0; r < NR; ++r) {
      T s = X::sum(acc[m][r]);
      for (int64_t i = n; i < N; ++i) s += A_rows[m][i] * B_rows[r][i];
      C[m * ldc + r] += s;
    }
  }
}

template <typename T, int Bytes, int MR, int NR>
ROWCONV_INLINE void dot_rows_impl(int64_t M, int64_t R, int64_t N, const T* const* A_rows,
                                  const T* const* B_rows, T* C, int64_t ldc) {
  int64_t m0 = 0;
  for (; m0 + MR <= M; m0 += MR) {
    int64_t r0 = 0;
    for (; r0 + NR <= R; r0 += NR)
      dot_rows_block<T, Bytes, MR, NR>(N, A_rows + m0, B_rows + r0, C + m0 * ldc + r0, ldc);
    for (; r0 < R; ++r0)
      dot_rows_block<T, Bytes, MR, 1>(N, A_rows + m0, B_rows + r0, C + m0 * ldc + r0, ldc);
  }
  for (; m0 < M; ++m0) {
    int64_t r0 = 0;
    for (; r0 + NR <= R; r0 += NR)
      dot_rows_block<T, Bytes, 1, NR>(N, A_rows + m0, B_rows + r0, C + m0 * ldc + r0, ldc);
    for (; r0 < R; ++r0)
      dot_rows_block<T, Bytes, 1, 1>(N, A_rows + m0, B_rows + r0, C + m0 * ldc + r0, ldc);
  }
}

// One instantiation per instruction set: vector bytes and block shapes fitted
// to its registers (AVX-512: 32 vector registers; AVX2 and SSE2: 16).
#define ROWCONV_DEFINE_ISA(NAME, TARGET, BYTES, MR, NV, DOT_MR, DOT_NR)                         \
  template <typename T>                                                                       \
  TARGET void gemm_rows_##NAME(int64_t M, int64_t N, int64_t R, const T* A, int64_t lda,      \
                               const T* const* B_rows, T* C, int64_t ldc) {                   \
    gemm_rows_impl<T, BYTES, MR, NV>(M, N, R, A, lda, B_rows, C, ldc);                       \
  }                                                                                           \
  template <typename T>                                                                       \
  TARGET void dot_rows_##NAME(int64_t M, int64_t R, int64_t N, const T* const* A_rows,        \
                              const T* const* B_rows, T* C, int64_t ldc) {                    \
    dot_rows_impl<T, BYTES, DOT_MR, DOT_NR>(M, R, N, A_rows, B_rows, C, ldc);                \
  }

ROWCONV_DEFINE_ISA(baseline, , 16, 6, 2, 2, 4)
#if defined(__x86_64__)
ROWCONV_DEFINE_ISA(avx2, __attribute__((target("arch=x86-64-v3"))), 32, 6, 2, 2, 4)
ROWCONV_DEFINE_ISA(avx512, __attribute__((target("arch=x86-64-v4"))), 64, 8, 2, 4, 4)
#endif

enum class Isa { baseline, avx2, avx512 };

Isa best_supported() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v4")) return Isa::avx512;
  if (__builtin_cpu_supports("x86-64-v3")) return Isa::avx2;
#endif
  return Isa::baseline;
}

Isa parse_isa(const std::string& name) {
  if (name == "avx512") return Isa::avx512;
  if (name == "avx2") return Isa::avx2;
  TORCH_CHECK_VALUE(name == "baseline", "ROWCONV_CPU_ISA must be avx512, avx2 or baseline, got '",
                    name, "'");
  return Isa::baseline;
}

Isa selected_isa() {
  static const Isa isa = [] {
    const Isa best = best_supported();
    const char* env = std::getenv("ROWCONV_CPU_ISA");
    if (env == nullptr || *env == '\0') return best;
    const Isa asked = parse_isa(env);
    TORCH_CHECK_VALUE(asked <= best, "ROWCONV_CPU_ISA=", env,
                      " asks for instructions this CPU does not run");
    return asked;
  }();
  return isa;
}

template <typename T>
MicroKernels<T> make_kernels(Isa isa) {
  switch (isa) {
#if defined(__x86_64__)
    case Isa::avx512:
      return {&gemm_rows_avx512<T>, &dot_rows_avx512<T>};
    case Isa::avx2:
      return {&gemm_rows_avx2<T>, &dot_rows_avx2<T>};
#endif
    default:
      return {&gemm_rows_baseline<T>, &dot_rows_baseline<T>};
  }
}

}  // namespace

template <typename T>
const MicroKernels<T>& micro_kernels() {
  static const MicroKernels<T> kernels = make_kernels<T>(selected_isa());
  return kernels;
}
template const MicroKernels<float>& micro_kernels<float>();
template const MicroKernels<double>& micro_kernels<double>();

const char* cpu_isa() {
  switch (selected_isa()) {
    case Isa::avx512:
      return "avx512";
    case Isa::avx2:
      return "avx2";
    default:
      return "baseline";
  }
}

}  // namespace rowconv::cpu
