// The register-blocked inner loops that every CPU kernel reduces to, in
// AVX-512, AVX2 and baseline builds chosen at run time (microkernels.cpp).
// The products read their operands through arrays of row pointers, so that shifted
// views of one input window serve as the rows of an im2col matrix that is
// never built.
#pragma once

#include <cstdint>

namespace rowconv::cpu {

// gemm_rows reads and writes whole vector blocks past N: rows of B and C must
// hold N + kRowSlack readable (and, for C, writable) elements. The columns
// past N are junk: computed on lane by lane and never mixed into the first
// N, so any values may stand there (a neighbouring row's, an earlier call's),
// as long as the memory is initialised.
constexpr int64_t kRowSlack = 128;

// add_partials16's blocks (a multiple of 32)
constexpr int64_t kPartialsBlock = 256;

// How far ahead of its block taps_row_set_streaming fetches x (fetch_ahead
// in microkernels_impl.h): past the row's end, the lines that follow it in memory.
constexpr int64_t kTapsFetchAheadBytes = 2048;

// Fetches the line of p into L1 (prefetcht0), or into L2 only (kIntoL2:
// prefetcht1). (An asm statement, not __builtin_prefetch: GCC deleted
// prefetch_run's loop of nothing but __builtin_prefetch calls as a loop
// without side effects.)
template <bool kIntoL2 = false>
inline void prefetch_line(const void* p) {
#if defined(__x86_64__) || defined(__i386__)
  if constexpr (kIntoL2)
    asm volatile("prefetcht1 %0" : : "m"(*static_cast<const char*>(p)));
  else
    asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 0, kIntoL2 ? 2 : 3);
#endif
}

// Lines that a product fetches into L1 while it computes (the next step's
// operands, where they come from memory): the first `row_bytes` of each row
// from `row` to `rows_end` (`offset` bytes into the first). dot_rows
// fetches `per_step` lines each step of its loop (a step: 16 multiply-adds;
// a loop compiled apart from the one that fetches nothing);
// gemm_rows_set's blocks and taps_dot_row's groups fetch a line per
// `terms_per_line` vector multiply-adds of theirs, all at their start. The
// product moves `row` and `offset` on. A null LineFetch fetches nothing,
// and the code that fetches nothing is the code it was before (a check in
// the loop cost those products 1.05-1.1x the time). `into_l2`: the lines go
// to L2 only (prefetcht1; fetches_into_l2 in cpu_tiling.h).
struct LineFetch {
  const char* const* row;
  const char* const* rows_end;
  int64_t offset;
  int64_t row_bytes;
  int64_t per_step;
  int64_t terms_per_line;
  bool into_l2 = false;
};

template <typename T>
struct MicroKernels {
  // C[m * ldc + n] += sum_{r < R} A_rows[m][r] * B_rows[r][n]     for m < M, n < N
  // (vectorised over n; forward, grad-input, grad-weight with many channels).
  void (*gemm_rows)(int64_t M, int64_t N, int64_t R, const T* const* A_rows,
                    const T* const* B_rows, T* C, int64_t ldc);
  // C[m * ldc + n] = init[m] + sum_{r < R} A_rows[m][r] * B_rows[r][n]   for m < M, n < N
  // (init null: 0), each output one chain of multiply-adds from init[m], as
  // gemm_rows from a C filled with init[m]; C is written below N only (no
  // slack: the rows of a result tensor), B read as gemm_rows reads it.
  // `fetch` (may be null): lines to fetch as it goes.
  void (*gemm_rows_set)(int64_t M, int64_t N, int64_t R, const T* const* A_rows,
                        const T* const* B_rows, const T* init, T* C, int64_t ldc, LineFetch* fetch);
  // gemm_rows_set with the whole vectors of C that start on a vector
  // boundary stored non-temporally: to memory past the caches, without first
  // reading the lines they fill (the same values; plain stores where the
  // instruction set has none). For results too large to stay in cache
  // (streams_to_memory); the writing thread calls store_fence() before
  // another thread may read C.
  void (*gemm_rows_set_streaming)(int64_t M, int64_t N, int64_t R, const T* const* A_rows,
                                  const T* const* B_rows, const T* init, T* C, int64_t ldc, LineFetch* fetch);
  // One row of K taps, `step` apart along one row x (a depthwise
  // convolution at stride 1):
  //   y[n] = init[0] + sum_{k < K} w[k] * x[n + k * step]     for n < N
  // (init null: 0), read and written as gemm_rows_set of one row with
  // B_rows[k] = x + k * step reads and writes them; and with whole vectors
  // stored non-temporally, as gemm_rows_set_streaming. Each output adds its
  // taps in one fixed order: class by class, k % P for P = (vector width) /
  // |step| where |step| divides the width and K > P, k upwards within a
  // class; in k's order otherwise, as gemm_rows_set. The same bits for a
  // row whatever its N, its blocks, its alignment and the thread running it.
  void (*taps_row_set)(int64_t N, int64_t K, int64_t step, const T* w, const T* x, const T* init, T* y);
  void (*taps_row_set_streaming)(int64_t N, int64_t K, int64_t step, const T* w, const T* x, const T* init, T* y);
  // taps_row_set_streaming without its fetches of x kTapsFetchAheadBytes
  // ahead: for a row whose next lines in memory are not read next (the
  // caller fetches the next row; kernel_fetches_next_input).
  void (*taps_row_set_streaming_unfetched)(int64_t N, int64_t K, int64_t step, const T* w, const T* x,
                                           const T* init, T* y);
  // Dot products sum_{n < N} A_rows[m][n] * B_rows[r][n] (m < M, r < R),
  // kept as `lanes` partial sums each: lane l of P[(m * ldp + r) * lanes + l]
  // accumulates the terms with n % lanes == l, so that long reductions made
  // of many calls (grad-weight over batch and tiles) sum their lanes once,
  // with reduce_lanes. Rows are read up to N rounded up to `lanes` (the terms
  // past N are masked out, not multiplied by zero).
  // `fetch` (may be null): lines to fetch as it goes.
  void (*dot_rows)(int64_t M, int64_t R, int64_t N, const T* const* A_rows,
                   const T* const* B_rows, T* P, int64_t ldp, LineFetch* fetch);
  // The same dot products from zero, each with its lanes summed as
  // reduce_lanes sums them: out[m * ldo + r * ldr] (one call a reduction).
  void (*dot_rows_sums)(int64_t M, int64_t R, int64_t N, const T* const* A_rows,
                        const T* const* B_rows, T* out, int64_t ldo, int64_t ldr);
  // dot_rows(1, K, N, {a}, B_rows, P, K) where B_rows[k] = B_rows[0] + k *
  // step (a depthwise grad-weight at stride 1), the same bits; the taps a
  // whole vector apart share their loads where there are many of them.
  void (*taps_dot_row)(int64_t N, int64_t K, int64_t step, const T* a, const T* const* B_rows, T* P,
                       LineFetch* fetch);
  // out[i] = the sum of the lanes of P[i * lanes ...], in a fixed order.
  void (*reduce_lanes)(int64_t count, const T* P, T* out);
  // dst[c * dst_ld + r] = src[r * src_ld + c]     for r < rows, c < cols
  // (square blocks of 32-byte vectors shuffled in registers; grad-weight's
  // tile of grad_out, output channels along its rows). dst's rows are dst_ld
  // long: where dst_ld leaves room, the lanes from `rows` up to a whole
  // vector may be written too (zeros). With fetch_ahead, each strip of rows
  // fetches the next strip's (after the last, the strip `cols` further along
  // the same rows) into L1: for src coming from memory.
  void (*transpose)(int64_t rows, int64_t cols, const T* src, int64_t src_ld, T* dst, int64_t dst_ld,
                    bool fetch_ahead);
  // grad-bias's partial sums, part[j] for the elements t % 16 == j, in a
  // fixed order: per block of kPartialsBlock elements (from row[0]), lane j's
  // elements summed in T (the even chunks of 16 and the odd ones apart, then
  // together) and that sum added to part[j] in double; the last n % 16
  // elements added one by one in double. So float's rounding grows with a
  // block's 16 terms a lane, not with all B * W terms, and nothing is read
  // past row[n - 1].
  void (*add_partials16)(int64_t n, const T* row, double* part);
  // Sums of complex products, vectors over frequencies (the FFT method's
  // channel mix: spectrum_mix_kernel.h): complex numbers as pairs of T
  // (real part first), F of them a row, and
  //   out[m * o_m + n * o_n + f] = sum_{r < R} A_rows[r][m * a_m + f] * B_rows[r][n * b_n + f]
  // for m < M, n < N, f < F (offsets in complex numbers, the products
  // complex). Each sum in a fixed order (r upwards, the real parts' and the
  // imaginary parts' products apart, then combined); rows read and written
  // up to F exactly.
  void (*complex_products)(int64_t M, int64_t N, int64_t R, int64_t F, const T* const* A_rows, int64_t a_m,
                           const T* const* B_rows, int64_t b_n, T* out, int64_t o_m, int64_t o_n);
  int64_t lanes;
  int64_t dot_rows_block;   // dot_rows is fastest on a multiple of this many rows
  int64_t gemm_rows_block;  // gemm_rows reads B once (per column block) for M up to this
  int64_t gemm_rows_columns;  // ... in column blocks of this many (full strips of gemm_rows_block rows)
};

// bfloat16 products by AVX-512 BF16's vdpbf16ps, summed in float: every
// uint32_t element of A_rows[m] and B_rows[p] holds two bf16 values (low half
// first), a pair of terms of the reduction (A_rows may start at any 2-byte
// boundary), and
//   C[m * ldc + n] = init[m] + sum_{p < P} (lo(A[m][p]) * lo(B[p][n]) + hi(A[m][p]) * hi(B[p][n]))
// for m < M, n < N (init null: 0), the pairs added in order of p; within a
// pair the instruction's own order and rounding apply (Intel adds the high
// product first; the last bit of a sum may differ between CPU makers, never
// between thread counts). bf16 denormals read as zero, float denormal sums
// flushed. Each sum stored rounded to bfloat16 bits as c10::BFloat16 rounds
// it. C is written below N only; B is read as gemm_rows reads it.
struct Bf16PairKernels {
  void (*gemm_pairs_set)(int64_t M, int64_t N, int64_t P, const uint32_t* const* A_rows,
                         const uint32_t* const* B_rows, const float* init, uint16_t* C, int64_t ldc);
  // C[m * ldc + n] += the same pair sums, in float (whole vectors past N into
  // the row slack, as gemm_rows: C's rows hold N + kRowSlack elements)
  void (*gemm_pairs_add)(int64_t M, int64_t N, int64_t P, const uint32_t* const* A_rows,
                         const uint32_t* const* B_rows, float* C, int64_t ldc);
  // out[u] = even[u] | odd[u] << 16 for u < count: two rows of bf16 bits as one row of pairs
  void (*interleave_pairs)(int64_t count, const uint16_t* even, const uint16_t* odd, uint32_t* out);
};
// Null where the CPU lacks AVX-512 BF16, or ROWCONV_CPU_ISA asks for less than avx512.
const Bf16PairKernels* bf16_pair_kernels();

// float16 <-> float in vectors by F16C: to_float (vcvtph2ps, exact) and
// to_half (vcvtps2ph, to nearest even: c10::Half's rounding, which c10
// itself does by F16C where it is compiled for it), n elements each.
struct HalfConversions {
  void (*to_float)(int64_t n, const uint16_t* src, float* dst);
  void (*to_half)(int64_t n, const float* src, uint16_t* dst);
};
// Null on the baseline instruction set (AVX2 and AVX-512 imply F16C).
const HalfConversions* half_conversions();

// Copies n bytes from src to dst (not overlapping) in 32-byte vectors, the
// tail by an AVX-512 mask: runs of a few hundred bytes (one window of a
// row) without memcpy's size dispatch, which picks `rep movsb` from 2 KiB.
// (64-byte vectors were 1.26-1.53x slower on a memory-bound depthwise
// forward, Zen 4.) Null below AVX-512: the callers' cast loops serve there.
using CopyBytes = void (*)(int64_t n, const void* src, void* dst);
CopyBytes copy_bytes();

// The usual decode step's packing (update_kernel.h), float, K the taps:
// per channel ci < cin_g (x_row, s_row and col advanced by x_stride_c,
// s_stride_c and K), the window of K - 1 held inputs s_row[0 .. K - 1) and
// the new input x_row[0] into col[0 .. K), and the state row moved down by
// one, the new input last: each row loaded once, in registers, stored twice
// (the scalar form loads its elements one by one to shift them). The state
// rows are read and written exactly; col's row may be written up to 8
// floats past its K (masked off, so never changed). Null below AVX-512 and
// for K other than 3 and 5 (K - 1 held floats in one 8- or 16-byte access;
// K = 4's 8 + 4 bytes measured slower than the scalar form).
using PackStepWindows = void (*)(int64_t cin_g, const float* x_row, int64_t x_stride_c, float* s_row,
                                 int64_t s_stride_c, float* col);
PackStepWindows pack_step_windows(int64_t K);

// The same for `rows` neighbouring rows at once (the state's rows exactly
// K - 1 floats and contiguous, x contiguous along rows), `group` rows a
// register (16 / (K - 1); 4 at K = 4) and `rows` a multiple of it: x_row,
// s_row and col at the first row, the rows' columns col_stride_h apart.
// Null below AVX-512 and for K outside 2..5.
struct PackStepWindowsRows {
  void (*pack)(int64_t cin_g, int64_t rows, const float* x_row, int64_t x_stride_c, float* s_row,
               int64_t s_stride_c, float* col, int64_t col_stride_h);
  int64_t group;
};
PackStepWindowsRows pack_step_windows_rows(int64_t K);

// update_depthwise_unit_run<K, bias> (update_depthwise_run.h) for float,
// compiled for the instruction set in use (the baseline build's SSE2 moves
// the state's rows of K - 1 one element at a time). Null on the baseline
// instruction set and for K outside 2..4.
using DepthwiseUnitRun = void (*)(int64_t n, const float* x, float* state, const float* w, const float* bias,
                                  float* y);
DepthwiseUnitRun depthwise_unit_run(int64_t K, bool bias);

// The kernels of the instruction set in use (float and double).
template <typename T>
const MicroKernels<T>& micro_kernels();

// The kernels for depthwise rows of K taps `step` apart: micro_kernels' own,
// but AVX2's where AVX-512 runs on 256-bit units (AMD family 0x19, Zen 4)
// and its classes of taps hold too few to share their loads (the limit
// depends on the kernel, `taps`; microkernels.cpp has the rule and the
// measurements). Every depthwise path of an op takes its taps kernels (and,
// for grad-weight's dot products, the lanes and reduce_lanes that go with
// them) from here, with the op's K and step, so a row's bits stay the same
// in every layout, tile and thread count.
enum class DepthwiseTaps {
  rows,  // taps_row_set*: forward, grad-input
  dots,  // taps_dot_row: grad-weight
};
template <typename T>
const MicroKernels<T>& depthwise_micro_kernels(int64_t K, int64_t step, DepthwiseTaps taps);

// "avx512", "avx2" or "baseline": the best the CPU runs, unless the
// environment variable ROWCONV_CPU_ISA names a lower one.
const char* cpu_isa();

// The cache sizes below are read once at run time; the environment variable
// ROWCONV_CPU_CACHES ("l1d=48K,l2=1M,l3=4M", any of them) overrides them, so
// that tests run other machines' tilings and fetch rules.
//
// The per-core L2 cache of the CPU it runs on, in bytes (read once at run
// time; 512 KiB where the system does not say): cache blocking that must
// hold on 512 KiB (Zen 3) and 1 MiB (Zen 4, Zen 5) alike.
int64_t l2_cache_bytes();

// The per-core L1 data cache, in bytes (read once at run time; 32 KiB where
// the system does not say): 32 KiB on Zen 3 and Zen 4, 48 KiB on Zen 5.
int64_t l1d_cache_bytes();

// The last-level cache that CPU 0 shares, in bytes (read once at run time
// from sysfs; 32 MiB where the system does not say).
int64_t l3_cache_bytes();

// Orders the calling thread's non-temporal stores (gemm_rows_set_streaming)
// before its later stores, so that a join publishes them: sfence on x86-64.
void store_fence();

}  // namespace rowconv::cpu
