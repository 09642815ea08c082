// The two register-blocked inner loops that every CPU kernel reduces to, in
// AVX-512, AVX2 and baseline builds chosen at run time (microkernels.cpp).
// Both read their operands through arrays of row pointers, so that shifted
// views of one input window serve as the rows of an im2col matrix that is
// never built.
#pragma once

#include <cstdint>

namespace rowconv::cpu {

// gemm_rows reads and writes whole vector blocks past N: rows of B and C must
// hold N + kRowSlack elements (finite values; the extra columns are junk).
constexpr int64_t kRowSlack = 64;

template <typename T>
struct MicroKernels {
  // C[m * ldc + n] += sum_{r < R} A[m * lda + r] * B_rows[r][n]     for m < M, n < N
  // (vectorised over n; forward and grad-input).
  void (*gemm_rows)(int64_t M, int64_t N, int64_t R, const T* A, int64_t lda,
                    const T* const* B_rows, T* C, int64_t ldc);
  // C[m * ldc + r] += sum_{n < N} A_rows[m][n] * B_rows[r][n]       for m < M, r < R
  // (dot products vectorised over n, in a fixed order; grad-weight).
  void (*dot_rows)(int64_t M, int64_t R, int64_t N, const T* const* A_rows,
                   const T* const* B_rows, T* C, int64_t ldc);
};

// The kernels of the instruction set in use (float and double).
template <typename T>
const MicroKernels<T>& micro_kernels();

// "avx512", "avx2" or "baseline": the best the CPU runs, unless the
// environment variable ROWCONV_CPU_ISA names a lower one.
const char* cpu_isa();

}  // namespace rowconv::cpu
