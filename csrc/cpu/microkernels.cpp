// The micro-kernels picked at run time (ROWCONV_CPU_ISA, or the best the CPU
// runs), and the kernels of one instruction set only (bfloat16 pairs, half
// conversions, the decode step's packing). The loops shared by every set:
// microkernels_impl.h, compiled once a set (microkernels_<set>.cpp).
#include "microkernels_impl.h"
#include "microkernels_isa.h"

#include <cctype>

namespace rowconv::cpu {
namespace {

#if defined(__x86_64__)
#define ROWCONV_TARGET_BF16 __attribute__((target("arch=x86-64-v4,avx512bf16")))
// Where a gemm_pairs block starts and ends: from init[m] (zero where null),
// stored rounded to bfloat16 below N only (gemm_pairs_set); or added to the
// float C, whole vectors into the row slack (gemm_pairs_add).
struct PairsToBf16 {
  static constexpr bool kAdd = false;
  const float* init;
  uint16_t* C;
  int64_t ldc, N;
  int64_t row_bytes() const { return ldc * int64_t{sizeof(uint16_t)}; }
};
struct PairsAddFloat {
  static constexpr bool kAdd = true;
  float* C;
  int64_t ldc;
};

// One MR x (NV vectors of 16 columns) block from column n0 and row m0:
// gemm_rows_block's loop with a pair of terms per multiply-add. A's pairs
// are read unaligned (a pair row may start at any bf16).
template <int MR, int NV, typename Out>
ROWCONV_TARGET_BF16 ROWCONV_INLINE void gemm_pairs_block(int64_t P, const uint32_t* const* A_rows,
                                                         const uint32_t* const* B_rows, int64_t n0, int64_t m0,
                                                         const Out& out) {
  __m512 acc[MR][NV];
  for (int m = 0; m < MR; ++m) {
    for (int v = 0; v < NV; ++v) {
      if constexpr (Out::kAdd) {
        acc[m][v] = _mm512_loadu_ps(out.C + (m0 + m) * out.ldc + n0 + v * 16);
      } else {
        acc[m][v] = out.init ? _mm512_set1_ps(out.init[m0 + m]) : _mm512_setzero_ps();
      }
    }
  }
  for (int64_t p = 0; p < P; ++p) {
    const uint32_t* b = B_rows[p] + n0;
    __m512bh bv[NV];
    for (int v = 0; v < NV; ++v) {
      const __m512i bits = _mm512_loadu_si512(b + v * 16);
      bv[v] = reinterpret_cast<const __m512bh&>(bits);
    }
    for (int m = 0; m < MR; ++m) {
      uint32_t a_pair;
      std::memcpy(&a_pair, A_rows[m] + p, sizeof(a_pair));
      const __m512i pair = _mm512_set1_epi32(static_cast<int>(a_pair));
      const __m512bh a = reinterpret_cast<const __m512bh&>(pair);
      for (int v = 0; v < NV; ++v) acc[m][v] = _mm512_dpbf16_ps(acc[m][v], a, bv[v]);
    }
  }
  if constexpr (Out::kAdd) {
    for (int m = 0; m < MR; ++m)
      for (int v = 0; v < NV; ++v) _mm512_storeu_ps(out.C + (m0 + m) * out.ldc + n0 + v * 16, acc[m][v]);
    return;
  } else {
    constexpr int64_t kCols = NV * 16;
    uint16_t* C = out.C + m0 * out.ldc;
    const int64_t ldc = out.ldc;
    // rounded to bfloat16 as c10::BFloat16 rounds (to nearest even; NaN: 0x7FC0)
    __m256i r16[MR][NV];
    const __m512i one = _mm512_set1_epi32(1), half = _mm512_set1_epi32(0x7FFF), nan = _mm512_set1_epi32(0x7FC0);
    for (int m = 0; m < MR; ++m) {
      for (int v = 0; v < NV; ++v) {
        const __m512i bits = _mm512_castps_si512(acc[m][v]);
        const __m512i bias = _mm512_add_epi32(half, _mm512_and_si512(_mm512_srli_epi32(bits, 16), one));
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(bits, bias), 16);
        r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(acc[m][v], acc[m][v], _CMP_UNORD_Q), nan);
        r16[m][v] = _mm512_cvtepi32_epi16(r);
      }
    }
    if (out.N - n0 < kCols) {  // C's last columns: through a buffer, the first N - n0 of each row
      uint16_t block[MR][kCols];
      for (int m = 0; m < MR; ++m)
        for (int v = 0; v < NV; ++v) _mm256_storeu_si256(reinterpret_cast<__m256i*>(block[m] + v * 16), r16[m][v]);
      for (int m = 0; m < MR; ++m) std::memcpy(C + m * ldc + n0, block[m], (out.N - n0) * sizeof(uint16_t));
      return;
    }
    for (int m = 0; m < MR; ++m)
      for (int v = 0; v < NV; ++v)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(C + m * ldc + n0 + v * 16), r16[m][v]);
  }
}

// Strips of MR rows (then of fewer: one block shape per remaining count, with
// more vectors each) inside column blocks, as gemm_rows_impl; with Panels,
// in block_panel's order (gemm_rows_panels_impl: a function of its own).
template <int MR, int NV, bool Panels, typename Out>
ROWCONV_TARGET_BF16 ROWCONV_INLINE void gemm_pairs_strips(int64_t M, int64_t N, int64_t P,
                                                          const uint32_t* const* A_rows,
                                                          const uint32_t* const* B_rows, int64_t m0,
                                                          const Out& out) {
  if constexpr (MR > 0) {
    const int64_t full = M / MR * MR;
    constexpr int64_t step = NV * 16;
    static_assert(step <= kRowSlack, "a column block must fit in the row slack");
    if constexpr (Panels) {
      const int64_t panel = block_panel(full, MR, step, P * int64_t{sizeof(uint32_t)}, out.row_bytes());
      for (int64_t p0 = 0; p0 < N; p0 += panel)
        for (int64_t m = 0; m < full; m += MR)
          for (int64_t n0 = p0; n0 < std::min(N, p0 + panel); n0 += step)
            gemm_pairs_block<MR, NV>(P, A_rows + m, B_rows, n0, m0 + m, out);
    } else if (full > 0) {
      for (int64_t n0 = 0; n0 < N; n0 += step)
        for (int64_t m = 0; m < full; m += MR) gemm_pairs_block<MR, NV>(P, A_rows + m, B_rows, n0, m0 + m, out);
    }
    if (full == M) return;
    // what is left (< MR rows): blocks of half the rows and twice the vectors, down to one row
    gemm_pairs_strips<MR / 2, std::min(8, NV * 2), Panels>(M - full, N, P, A_rows + full, B_rows, m0 + full, out);
  }
}

ROWCONV_TARGET_BF16 __attribute__((noinline)) void gemm_pairs_set_panels_avx512(
    int64_t M, int64_t N, int64_t P, const uint32_t* const* A_rows, const uint32_t* const* B_rows, const float* init,
    uint16_t* C, int64_t ldc) {
  gemm_pairs_strips<8, 2, true>(M, N, P, A_rows, B_rows, 0, PairsToBf16{init, C, ldc, N});
}

ROWCONV_TARGET_BF16 void gemm_pairs_set_avx512(int64_t M, int64_t N, int64_t P, const uint32_t* const* A_rows,
                                              const uint32_t* const* B_rows, const float* init, uint16_t* C,
                                              int64_t ldc) {
  constexpr int64_t kStep = 2 * 16;  // gemm_pairs_strips<8, 2>'s column block
  const PairsToBf16 out{init, C, ldc, N};
  if (block_panel(M / 8 * 8, 8, kStep, P * int64_t{sizeof(uint32_t)}, out.row_bytes()) != kStep)
    return gemm_pairs_set_panels_avx512(M, N, P, A_rows, B_rows, init, C, ldc);
  gemm_pairs_strips<8, 2, false>(M, N, P, A_rows, B_rows, 0, out);
}

ROWCONV_TARGET_BF16 void gemm_pairs_add_avx512(int64_t M, int64_t N, int64_t P, const uint32_t* const* A_rows,
                                              const uint32_t* const* B_rows, float* C, int64_t ldc) {
  gemm_pairs_strips<8, 2, false>(M, N, P, A_rows, B_rows, 0, PairsAddFloat{C, ldc});
}

ROWCONV_TARGET_BF16 void interleave_pairs_avx512(int64_t count, const uint16_t* even, const uint16_t* odd,
                                                uint32_t* out) {
  for (int64_t u = 0; u < count; ++u) out[u] = static_cast<uint32_t>(even[u]) | static_cast<uint32_t>(odd[u]) << 16;
}
#endif

#if defined(__x86_64__)
// 16 (AVX-512) or 8 (AVX2) a vector; the AVX-512 tail by masks, the AVX2
// tail one at a time
__attribute__((target("arch=x86-64-v4"))) void half_to_float_avx512(int64_t n, const uint16_t* src, float* dst) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mask = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(dst + i, mask, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, src + i)));
  }
}
__attribute__((target("arch=x86-64-v4"))) void float_to_half_avx512(int64_t n, const float* src, uint16_t* dst) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 mask = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(mask, src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_mask_storeu_epi16(dst + i, mask, h);
  }
}
__attribute__((target("arch=x86-64-v3"))) void half_to_float_avx2(int64_t n, const uint16_t* src, float* dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
}
__attribute__((target("arch=x86-64-v3"))) void float_to_half_avx2(int64_t n, const float* src, uint16_t* dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; ++i) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
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
      return isa_kernels_avx512<T>();
    case Isa::avx2:
      return isa_kernels_avx2<T>();
#endif
    default:
      return isa_kernels_baseline<T>();
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

namespace {
// Whether this CPU runs AVX-512 on 256-bit units: AMD family 0x19 (Zen 4;
// Zen 3, the same family, has no AVX-512).
bool avx512_on_256_bit_units() {
#if defined(__x86_64__)
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d) || !(b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163))
    return false;  // (not "AuthenticAMD")
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const unsigned base_family = (a >> 8) & 0xf;
  return base_family + (base_family == 0xf ? (a >> 20) & 0xff : 0) == 0x19;
#else
  return false;
#endif
}
}  // namespace

// Depthwise rows on Zen 4. A row of taps (TapClasses) shares a loaded
// vector among the taps a whole vector apart; with 16 float lanes a class
// holds K / 16 taps (unit steps), and below two a class nothing is shared:
// one unaligned 64-byte load a multiply-add, which spans two lines at 15
// offsets of 16 and takes both of a cycle's load slots on Zen 4. dw-many-
// rows (1,1,4096,1024) K 20 ran at 44% of the FMA peak (forward), 40%
// (grad-input), 36% (grad-weight). AVX2's kernels, with 8 lanes, hold twice
// the taps a class. In-process, 2 threads, Zen 4, float, AVX2's time over
// AVX-512's (forward / grad-input / grad-weight):
//   K 8     0.92-0.94 / 0.97-1.01 / 0.88       K 16   0.74 / 0.82-0.85 / 0.62-0.64
//   K 20    0.66-0.68 / 0.74-0.77 / 0.68       K 31   0.61-0.62 / 0.66-0.67 / 0.75-0.79
//   K 32    0.73 / 0.73 / 0.81                 K 36   0.81 / 0.80 / 0.83
//   K 40    0.88-0.91 / 0.85-0.86 / 1.18-1.19  K 44   0.86 / 0.88 / 1.18
//   K 56    0.92 / 0.93 / 1.06                 K 63   0.91 / 0.91 / 1.06
//   dw-long (16,1,256,8192) K 64: 1.04 / 1.02 / 0.96;  K 128: 1.02 / 0.93 / 1.10
//   dilation 2: K 8 0.82 / 0.86 / 0.83, K 15 0.66 / 0.73 / 0.75, K 20 0.89 / 0.93 / 1.16
//   K 4 (64,1,1024,4096) causal: 0.99-1.04 / 1.00-1.08 / 1.08-1.09
// double (8 lanes against 4): K 12 0.76 / 0.82 / 0.90, K 16 0.91 / 0.84 /
// 0.86, K 20 0.96 / 0.97 / 1.13, K 28 1.02 / 0.98 / 1.07. So AVX2's rows
// from K 8 on where AVX-512's classes hold fewer than 4 taps (forward,
// grad-input: K < 64 for unit steps), and AVX2's dot products (grad-weight,
// whose groups of taps take other shapes) where they hold fewer than 2.5
// (K < 40). (Found by running the whole library with ROWCONV_CPU_ISA=avx2:
// depthwise rows of K 16-31 ran 1.4-1.7x faster; the other shapes measured
// ran slower, wide forward 201 against 210 GFLOP/s.)
template <typename T>
const MicroKernels<T>& depthwise_micro_kernels(int64_t K, int64_t step, DepthwiseTaps taps) {
  static const std::optional<MicroKernels<T>> narrow =
      selected_isa() == Isa::avx512 && avx512_on_256_bit_units() ? std::optional(make_kernels<T>(Isa::avx2))
                                                                 : std::nullopt;
  const MicroKernels<T>& wide = micro_kernels<T>();
  const int64_t d = step < 0 ? -step : step;
  if (!narrow || K < 8 || d == 0 || narrow->lanes % d != 0) return wide;  // (no classes in either)
  // AVX-512's taps a class, K / (its classes), below 4 (rows) or 2.5 (dot products)
  const int64_t classes = wide.lanes / d, twice_limit = taps == DepthwiseTaps::rows ? 8 : 5;
  return 2 * K < twice_limit * classes ? *narrow : wide;
}
template const MicroKernels<float>& depthwise_micro_kernels<float>(int64_t, int64_t, DepthwiseTaps);
template const MicroKernels<double>& depthwise_micro_kernels<double>(int64_t, int64_t, DepthwiseTaps);

const Bf16PairKernels* bf16_pair_kernels() {
#if defined(__x86_64__)
  static const Bf16PairKernels kernels{&gemm_pairs_set_avx512, &gemm_pairs_add_avx512, &interleave_pairs_avx512};
  static const bool usable = selected_isa() == Isa::avx512 && __builtin_cpu_supports("avx512bf16");
  return usable ? &kernels : nullptr;
#else
  return nullptr;
#endif
}

#if defined(__x86_64__)
__attribute__((target("arch=x86-64-v4"))) void copy_bytes_avx512(int64_t n, const void* src, void* dst) {
  const auto* s = static_cast<const char*>(src);
  auto* d = static_cast<char*>(dst);
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i + 32));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), a);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i + 32), b);
  }
  for (; i < n; i += 32) {
    const __mmask32 m = n - i >= 32 ? ~__mmask32(0) : _bzhi_u32(~uint32_t(0), static_cast<unsigned>(n - i));
    _mm256_mask_storeu_epi8(d + i, m, _mm256_maskz_loadu_epi8(m, s + i));
  }
}
#endif

#if defined(__x86_64__)
// S = K - 1 floats at p (S = 2 or 4), read or written exactly: the state
// rows of two threads may share a cache line, and a wider access, even one
// masked off past the row, made the lines travel between the cores (the
// wide decode step 1.44x slower on Zen 5)
template <int S>
__attribute__((target("arch=x86-64-v4"))) ROWCONV_INLINE __m128 load_held(const float* p) {
  static_assert(S == 2 || S == 4);
  if constexpr (S == 4) return _mm_loadu_ps(p);
  return _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(p)));
}
template <int S>
__attribute__((target("arch=x86-64-v4"))) ROWCONV_INLINE void store_held(float* p, __m128 v) {
  static_assert(S == 2 || S == 4);
  if constexpr (S == 4) {
    _mm_storeu_ps(p, v);
  } else {
    _mm_store_sd(reinterpret_cast<double*>(p), _mm_castps_pd(v));
  }
}

template <int K>
__attribute__((target("arch=x86-64-v4"))) void pack_step_windows_avx512(int64_t cin_g, const float* x_row,
                                                                      int64_t x_stride_c, float* s_row,
                                                                      int64_t s_stride_c, float* col) {
  constexpr int S = K - 1;
  for (int64_t ci = 0; ci < cin_g; ++ci, col += K, x_row += x_stride_c, s_row += s_stride_c) {
    // the window [held..., new] in lanes 0..K-1 of v (the lanes past it unused)
    const __m128 held = load_held<S>(s_row);
    __m256 v;
    if constexpr (S == 4) {
      v = _mm256_insertf128_ps(_mm256_castps128_ps256(held), _mm_load_ss(x_row), 1);
    } else {
      v = _mm256_castps128_ps256(_mm_insert_ps(held, _mm_load_ss(x_row), S << 4));
    }
    _mm256_mask_storeu_ps(col, static_cast<__mmask8>((1u << K) - 1), v);  // col: this thread's buffer
    const __m256 moved = _mm256_permutexvar_ps(_mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0), v);
    store_held<S>(s_row, _mm256_castps256_ps128(moved));
  }
}
// n floats (4, 8, 12 or 16) at p into the low lanes of a register, and
// back: exact accesses, as load_held (a state's rows of two threads).
template <int n>
__attribute__((target("arch=x86-64-v4"))) ROWCONV_INLINE __m512 load_exact(const float* p) {
  static_assert(n == 4 || n == 8 || n == 12 || n == 16);
  if constexpr (n == 16) return _mm512_loadu_ps(p);
  if constexpr (n == 8) return _mm512_castps256_ps512(_mm256_loadu_ps(p));
  if constexpr (n == 4) return _mm512_castps128_ps512(_mm_loadu_ps(p));
  return _mm512_insertf32x4(_mm512_castps256_ps512(_mm256_loadu_ps(p)), _mm_loadu_ps(p + 8), 2);
}
template <int n>
__attribute__((target("arch=x86-64-v4"))) ROWCONV_INLINE void store_exact(float* p, __m512 v) {
  static_assert(n == 4 || n == 8 || n == 12 || n == 16);
  if constexpr (n == 16) {
    _mm512_storeu_ps(p, v);
  } else if constexpr (n == 4) {
    _mm_storeu_ps(p, _mm512_castps512_ps128(v));
  } else {
    _mm256_storeu_ps(p, _mm512_castps512_ps256(v));
    if constexpr (n == 12) _mm_storeu_ps(p + 8, _mm512_extractf32x4_ps(v, 2));
  }
}

// pack_step_windows over neighbouring rows: per channel, the held inputs of
// G rows (16 / S of them; 4 for S = 3), one run of G * S floats in the state
// (a state of exactly S = K - 1 a row, rows contiguous), are loaded at once,
// as are those rows' new inputs (x contiguous along rows); each row's window
// is permuted out of the two and stored with a K-lane mask into its own
// column (col_stride_h apart), and the rows moved down by one are stored
// back as one run. `rows`: a multiple of G.
template <int K>
__attribute__((target("arch=x86-64-v4"))) void pack_step_windows_rows_avx512(
    int64_t cin_g, int64_t rows, const float* x_row, int64_t x_stride_c, float* s_row, int64_t s_stride_c,
    float* col, int64_t col_stride_h) {
  constexpr int S = K - 1, G = S == 3 ? 4 : 16 / S;
  constexpr __mmask8 kWindow = static_cast<__mmask8>((1u << K) - 1);
  // lanes of the held run (< 16) and of the new inputs (16 + row)
  alignas(64) int32_t moved_lanes[16] = {};  // lane S*j + k: S*j + k + 1, a row's last its new input
  alignas(64) int32_t window_lanes[G][16] = {};  // the window of row j in lanes 0..K-1
  for (int j = 0; j < G; ++j) {
    for (int k = 0; k < S; ++k) moved_lanes[S * j + k] = k + 1 < S ? S * j + k + 1 : 16 + j;
    for (int k = 0; k < K; ++k) window_lanes[j][k] = k < S ? S * j + k : 16 + j;
  }
  const __m512i moved_index = _mm512_load_si512(moved_lanes);
  // a group of rows over every channel, then the next group: one line of
  // each channel's state at a time (with a channel's two lines in turn, the
  // wide step took 1.23x the time on 2 threads, Zen 5: the neighbouring
  // lines of the other thread's rows are then fetched)
  for (int64_t h = 0; h < rows; h += G) {
    const float* x_c = x_row + h;
    float* s_c = s_row + h * S;
    float* c_c = col + h * col_stride_h;
    for (int64_t ci = 0; ci < cin_g; ++ci, x_c += x_stride_c, s_c += s_stride_c, c_c += K) {
      const __m512 held = load_exact<G * S>(s_c), fresh = load_exact<G>(x_c);
      float* c = c_c;
      for (int j = 0; j < G; ++j, c += col_stride_h)
        _mm256_mask_storeu_ps(
            c, kWindow, _mm512_castps512_ps256(_mm512_permutex2var_ps(held, _mm512_load_si512(window_lanes[j]), fresh)));
      store_exact<G * S>(s_c, _mm512_permutex2var_ps(held, moved_index, fresh));
    }
  }
}
#endif

PackStepWindowsRows pack_step_windows_rows(int64_t K) {
#if defined(__x86_64__)
  if (selected_isa() == Isa::avx512) {
    switch (K) {
      case 2: return {&pack_step_windows_rows_avx512<2>, 16};
      case 3: return {&pack_step_windows_rows_avx512<3>, 8};
      case 4: return {&pack_step_windows_rows_avx512<4>, 4};
      case 5: return {&pack_step_windows_rows_avx512<5>, 4};
      default: break;
    }
  }
#endif
  return {nullptr, 0};
}

PackStepWindows pack_step_windows(int64_t K) {
#if defined(__x86_64__)
  if (selected_isa() == Isa::avx512) {
    switch (K) {
      case 3: return &pack_step_windows_avx512<3>;
      case 5: return &pack_step_windows_avx512<5>;
      default: break;
    }
  }
#endif
  return nullptr;
}

#if defined(__x86_64__)
// update_depthwise_unit_run's loop compiled for AVX2 and AVX-512
#define ROWCONV_DEPTHWISE_RUN(NAME, TARGET)                                                          \
  template <int kK, bool kBias>                                                                     \
  TARGET void depthwise_unit_run_##NAME(int64_t n, const float* x, float* state, const float* w,    \
                                        const float* bias, float* y) {                              \
    update_depthwise_unit_run<kK, kBias>(n, x, state, w, bias, y);                                  \
  }                                                                                                 \
  DepthwiseUnitRun depthwise_unit_run_##NAME##_of(int64_t K, bool bias) {                           \
    switch (K) {                                                                                    \
      case 2: return bias ? &depthwise_unit_run_##NAME<2, true> : &depthwise_unit_run_##NAME<2, false>; \
      case 3: return bias ? &depthwise_unit_run_##NAME<3, true> : &depthwise_unit_run_##NAME<3, false>; \
      case 4: return bias ? &depthwise_unit_run_##NAME<4, true> : &depthwise_unit_run_##NAME<4, false>; \
      default: return nullptr;                                                                      \
    }                                                                                               \
  }
ROWCONV_DEPTHWISE_RUN(avx2, __attribute__((target("arch=x86-64-v3"))))
ROWCONV_DEPTHWISE_RUN(avx512, __attribute__((target("arch=x86-64-v4"))))
#endif

DepthwiseUnitRun depthwise_unit_run(int64_t K, bool bias) {
#if defined(__x86_64__)
  switch (selected_isa()) {
    case Isa::avx512:
      return depthwise_unit_run_avx512_of(K, bias);
    case Isa::avx2:
      return depthwise_unit_run_avx2_of(K, bias);
    default:
      break;
  }
#endif
  return nullptr;
}

CopyBytes copy_bytes() {
#if defined(__x86_64__)
  if (selected_isa() == Isa::avx512) return &copy_bytes_avx512;
#endif
  return nullptr;
}

const HalfConversions* half_conversions() {
#if defined(__x86_64__)
  static const HalfConversions avx512{&half_to_float_avx512, &float_to_half_avx512};
  static const HalfConversions avx2{&half_to_float_avx2, &float_to_half_avx2};
  switch (selected_isa()) {
    case Isa::avx512:
      return &avx512;
    case Isa::avx2:
      return &avx2;
    default:
      return nullptr;
  }
#else
  return nullptr;
#endif
}

namespace {
// A cache's size as ROWCONV_CPU_CACHES gives it ("l1d=48K,l2=1M,l3=4M": any
// of the three, in K, M or bytes), -1 where it does not: tests run the
// tilings and fetch rules of other machines (Zen 3's L2, Zen 5's L1d) and,
// with a small L3, the paths of operands past the caches on small shapes.
// Sizes outside what such caches are, or a malformed entry, are an error.
struct CacheLevel {
  const char* name;
  int64_t min_bytes, max_bytes;
};
constexpr CacheLevel kL1d{"l1d", 16 * 1024, 256 * 1024}, kL2{"l2", 128 * 1024, 8 * 1024 * 1024},
    kL3{"l3", 1024 * 1024, int64_t{1024} * 1024 * 1024};

int64_t cache_bytes_asked(const CacheLevel& level) {
  const char* env = std::getenv("ROWCONV_CPU_CACHES");
  if (env == nullptr || *env == '\0') return -1;
  const auto bad = [&](const std::string& why) {
    TORCH_CHECK_VALUE(false, "ROWCONV_CPU_CACHES must be entries like l1d=48K,l2=1M,l3=32M (l1d 16K-256K, ",
                      "l2 128K-8M, l3 1M-1024M), got '", env, "': ", why);
  };
  int64_t asked = -1;
  std::string entries(env);
  for (size_t at = 0; at <= entries.size();) {
    const size_t end = std::min(entries.find(',', at), entries.size());
    const std::string entry = entries.substr(at, end - at);
    at = end + 1;
    const size_t eq = entry.find('=');
    if (eq == std::string::npos) bad("no '=' in '" + entry + "'");
    const std::string name = entry.substr(0, eq), value = entry.substr(eq + 1);
    const CacheLevel* found = nullptr;
    for (const CacheLevel* l : {&kL1d, &kL2, &kL3})
      if (name == l->name) found = l;
    if (found == nullptr) bad("unknown cache '" + name + "'");
    size_t digits = 0;
    while (digits < value.size() && digits < 12 && std::isdigit(static_cast<unsigned char>(value[digits]))) ++digits;
    const std::string unit = value.substr(digits);
    if (digits == 0 || !(unit.empty() || unit == "K" || unit == "M")) bad("bad size '" + value + "'");
    const int64_t bytes = std::stoll(value.substr(0, digits)) * (unit == "K" ? 1024 : unit == "M" ? 1024 * 1024 : 1);
    if (bytes < found->min_bytes || bytes > found->max_bytes) bad(name + " out of range");
    if (found == &level) asked = bytes;
  }
  return asked;
}
}  // namespace

int64_t l1d_cache_bytes() {
  static const int64_t bytes = [] {
    if (const int64_t asked = cache_bytes_asked(kL1d); asked > 0) return asked;
    constexpr int64_t kDefault = 32 * 1024;
#if defined(_SC_LEVEL1_DCACHE_SIZE)
    const long reported = sysconf(_SC_LEVEL1_DCACHE_SIZE);  // glibc: from cpuid; 0 or -1 where unknown
    if (reported >= kL1d.min_bytes && reported <= kL1d.max_bytes) return static_cast<int64_t>(reported);
#endif
    return kDefault;
  }();
  return bytes;
}

int64_t l2_cache_bytes() {
  static const int64_t bytes = [] {
    if (const int64_t asked = cache_bytes_asked(kL2); asked > 0) return asked;
    constexpr int64_t kDefault = 512 * 1024;
#if defined(_SC_LEVEL2_CACHE_SIZE)
    const long reported = sysconf(_SC_LEVEL2_CACHE_SIZE);  // glibc: from cpuid; 0 or -1 where unknown
    // (a VM may report nonsense: keep to what L2 caches are)
    if (reported >= kL2.min_bytes && reported <= kL2.max_bytes) return static_cast<int64_t>(reported);
#endif
    return kDefault;
  }();
  return bytes;
}

int64_t l3_cache_bytes() {
  static const int64_t bytes = [] {
    if (const int64_t asked = cache_bytes_asked(kL3); asked > 0) return asked;
    constexpr int64_t kDefault = 32 * 1024 * 1024;
    // Linux's sysfs: the L3 that CPU 0 shares with its neighbours (in a VM
    // here, glibc's sysconf reported 320 MiB, every L3 of the host, for 32)
    if (FILE* f = std::fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r")) {
      long kib = 0;
      char unit = 0;
      const int got = std::fscanf(f, "%ld%c", &kib, &unit);
      std::fclose(f);
      if (got == 2 && unit == 'K' && int64_t{kib} * 1024 >= kL3.min_bytes && int64_t{kib} * 1024 <= kL3.max_bytes)
        return int64_t{kib} * 1024;
    }
    return kDefault;
  }();
  return bytes;
}

void store_fence() {
#if defined(__x86_64__)
  __builtin_ia32_sfence();
#endif
}

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
