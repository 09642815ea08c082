// The register-blocked inner loops, written once over GCC vector types and
// compiled for three instruction sets by function target attributes (no
// -march flag: the library runs on any x86-64, and elsewhere on the baseline).
// Blocks (rows x vectors of accumulators) are sized to the register file of
// each instruction set. ROWCONV_DEFINE_ISA instantiates them for one set:
// one translation unit a set (microkernels_<set>.cpp), so that a build
// compiles the three side by side; microkernels.cpp picks one at run time.
#pragma once

#include "microkernels.h"
#include "update_depthwise_run.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

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
  // store, non-temporal where p is on a vector boundary (AVX2 and AVX-512:
  // vmovntps moves the bits, float or double)
  static ROWCONV_INLINE void store_streaming(T* p, V v) {
#if defined(__x86_64__)
    if constexpr (Bytes >= 32) {
      if ((reinterpret_cast<uintptr_t>(p) & (Bytes - 1)) == 0) {
        asm("vmovntps {%1, %0|%0, %1}" : "=m"(*reinterpret_cast<V*>(p)) : "v"(v));
        return;
      }
    }
#endif
    store(p, v);
  }
  // A whole vector from p with the lanes from `count` on set to zero (a
  // select: an inf past the end does not turn into a NaN).
  static ROWCONV_INLINE V load_first(const T* p, int64_t count) {
    using I = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
    typedef I IV __attribute__((vector_size(Bytes)));
    IV lane{};
    for (int i = 0; i < kWidth; ++i) lane[i] = i;
    return (lane < static_cast<I>(count)) ? load(p) : V{};
  }
  static ROWCONV_INLINE V splat(T x) { return V{} + x; }
  // *p in every lane. On AVX2 and AVX-512 one load that broadcasts (a load
  // port only): GCC lowers splat to an addition of +0.0 (-0.0 + 0.0 is
  // +0.0) and a register broadcast, two uops on the FP pipes that the
  // multiply-adds need, for every A element of a gemm_rows block.
  static ROWCONV_INLINE V splat_load(const T* p) {
#if defined(__x86_64__)
    if constexpr (Bytes >= 32) {
      V v;
      if constexpr (sizeof(T) == 4) {
        asm("vbroadcastss {%1, %0|%0, %1}" : "=v"(v) : "m"(*p));
      } else {
        asm("vbroadcastsd {%1, %0|%0, %1}" : "=v"(v) : "m"(*p));
      }
      return v;
    }
#endif
    return splat(*p);
  }
  // *p in every lane, -0.0 included (splat's addition turns it into +0.0):
  // splat_load where it is one instruction, else through memory (a lane
  // loop on the vector itself would make GCC keep it, and whatever it is
  // stored into, in memory).
  static ROWCONV_INLINE V splat_exact(const T* p) {
    if constexpr (Bytes >= 32) {
      return splat_load(p);
    } else {
      T lanes[kWidth];
      for (int i = 0; i < kWidth; ++i) lanes[i] = *p;
      return load(lanes);
    }
  }
  // Sum of the lanes by halving: a fixed order, and log2(width) dependent
  // adds instead of width.
  static ROWCONV_INLINE T sum(V v) {
    if constexpr (kWidth == 1) {
      return v[0];
    } else {
      typename Vec<T, Bytes / 2>::V lo, hi;
      std::memcpy(&lo, &v, Bytes / 2);
      std::memcpy(&hi, reinterpret_cast<const char*>(&v) + Bytes / 2, Bytes / 2);
      return Vec<T, Bytes / 2>::sum(lo + hi);
    }
  }
  // out[i] = sum(v[i]) for i < N, the same bits, kWidth vectors at a time:
  // at every halving two vectors' halves share one vector (two shuffles and
  // an add a pair), where sum() spends a shuffle and an add a vector at
  // each (a decode step's dot products of 45 terms spent as much on their
  // sums as on their multiply-adds).
  template <int N>
  static ROWCONV_INLINE void sums(const V* v, T* out) {
    if constexpr (kWidth == 1) {
      for (int i = 0; i < N; ++i) out[i] = v[i][0];
    } else {
      for (int g = 0; g < N; g += kWidth) {
        const int n = std::min(kWidth, N - g);
        if (n == 1) {
          out[g] = sum(v[g]);
          continue;
        }
        V level[kWidth];
        for (int i = 0; i < kWidth; ++i) level[i] = i < n ? v[g + i] : V{};
        halve<kWidth>(level, std::make_integer_sequence<int, kWidth>{});
        constexpr std::array<int, kWidth> owner = sum_owners();
        for (int l = 0; l < kWidth; ++l)
          if (owner[l] < n) out[g + owner[l]] = level[0][l];
      }
    }
  }

 private:
  // Lane l of the vector made of P and Q at the halving of blocks of s
  // lanes: in block l / s, the low half from P's block and the high half
  // from Q's, each the low (kHigh false) or high half of its own block.
  static constexpr int halving_lane(int s, bool high, int l) {
    const int block = l / s * s, o = l % s, half = s / 2, pick = high ? half : 0;
    return o < half ? block + pick + o : kWidth + block + pick + (o - half);
  }
  // v[0 .. S) pairwise into v[0 .. S / 2), blocks of S
  // lanes halved, down to blocks of 2 (one lane a vector's sum).
  template <int S, int... Is>
  static ROWCONV_INLINE void halve(V* v, std::integer_sequence<int, Is...> lanes) {
    if constexpr (S >= 2) {
      constexpr int n = S;  // vectors in: kWidth at the first halving
      for (int j = 0; j < n / 2; ++j) {
        const V p = v[2 * j], q = v[2 * j + 1];
        v[j] = __builtin_shufflevector(p, q, halving_lane(S, false, Is)...) +
               __builtin_shufflevector(p, q, halving_lane(S, true, Is)...);
      }
      halve<S / 2>(v, lanes);
    }
  }
  // which input vector's sum each lane of sums()'s last vector holds
  static constexpr std::array<int, kWidth> sum_owners() {
    std::array<std::array<int, kWidth>, kWidth> own{};
    for (int i = 0; i < kWidth; ++i)
      for (int l = 0; l < kWidth; ++l) own[i][l] = i;
    for (int s = kWidth, n = kWidth; s >= 2; s /= 2, n /= 2)
      for (int j = 0; j < n / 2; ++j) {
        std::array<int, kWidth> r{};
        for (int l = 0; l < kWidth; ++l) {
          const int src = halving_lane(s, false, l);
          r[l] = src < kWidth ? own[2 * j][src] : own[2 * j + 1][src - kWidth];
        }
        own[j] = r;
      }
    return own[0];
  }
};

// How a gemm_rows block starts and ends: adding to C (whole vectors, into
// the row slack), or setting C to init[m] (zero where init is null) plus the
// products, storing the columns below N only (whole vectors non-temporally
// where kStreaming).
struct AddToC {
  static constexpr bool kSet = false;
  static constexpr bool kStreaming = false;
  static constexpr bool kFetch = false;
};
// (Fetch: each block fetches its share of `fetch`'s lines at its start;
// compiled apart, so that the products that fetch nothing are the code
// they were: with a run-time check the narrow forward took 1.1x the time,
// alternating processes)
template <typename T, bool Streaming = false, bool Fetch = false>
struct SetC {
  static constexpr bool kSet = true;
  static constexpr bool kStreaming = Streaming;
  static constexpr bool kFetch = Fetch;
  const T* init;
  int64_t N;                    // columns [0, N) wanted
  int64_t col0 = 0;             // column n at C + n - col0 (a buffer holding columns from col0)
  LineFetch* fetch = nullptr;  // (Fetch only)
};

// The next `count` lines of a LineFetch (its cursor: row, offset, in registers).
template <bool kIntoL2>
ROWCONV_INLINE void fetch_lines_to(const char* const*& row, int64_t& offset, const LineFetch& f, int64_t count) {
  for (int64_t i = 0; i < count && row < f.rows_end; ++i) {
    prefetch_line<kIntoL2>(*row + offset);
    offset += 64;
    if (offset >= f.row_bytes) offset = 0, ++row;
  }
}
// (where they go checked once a call, not once a line)
ROWCONV_INLINE void fetch_lines(const char* const*& row, int64_t& offset, const LineFetch& f, int64_t count) {
  if (f.into_l2)
    fetch_lines_to<true>(row, offset, f, count);
  else
    fetch_lines_to<false>(row, offset, f, count);
}

static constexpr LineFetch kFetchNothing{nullptr, nullptr, 0, 0, 0, 1};

// The first `columns` of each of `rows` rows of `block` (block_ld apart)
// into C's rows (ldc apart): the whole 64-byte lines of each destination row
// non-temporally (in 16-byte pieces: any instruction set), the partial
// lines at its ends plainly. A row's last block of a result stored past the
// caches: through a buffer with plain stores only, up to 127 columns a row
// were each line read from memory first (a 509-wide depthwise forward from
// memory took 2x the time an output of a 512-wide one, Zen 5). Out of line:
// the micro-kernels that inline store_block run it once a row.
template <typename T>
__attribute__((noinline)) void store_rows_partly_streaming(const T* block, int64_t rows, int64_t block_ld, T* C,
                                                           int64_t ldc, int64_t columns) {
  for (int64_t m = 0; m < rows; ++m) {
    const char* src = reinterpret_cast<const char*>(block + m * block_ld);
    char* dst = reinterpret_cast<char*>(C + m * ldc);
    const int64_t bytes = columns * int64_t{sizeof(T)};
    const int64_t head = std::min<int64_t>(bytes, (64 - reinterpret_cast<uintptr_t>(dst) % 64) % 64);
    const int64_t lines_end = head + (bytes - head) / 64 * 64;
    std::memcpy(dst, src, head);
#if defined(__x86_64__)
    for (int64_t i = head; i < lines_end; i += 16)
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
#else
    std::memcpy(dst + head, src + head, lines_end - head);
#endif
    std::memcpy(dst + lines_end, src + lines_end, bytes - lines_end);
  }
}

// Stores an MR x (NV vectors) block of results at C (rows ldc apart), of
// whose columns the first `columns` are wanted: whole vectors (non-temporal
// ones where Streaming) when they all are, else through a buffer, the first
// `columns` of each row only (C has no slack; where Streaming, their whole
// lines non-temporally).
template <typename T, int Bytes, int MR, int NV, bool Streaming>
ROWCONV_INLINE void store_block(const typename Vec<T, Bytes>::V (&acc)[MR][NV], T* C, int64_t ldc,
                                int64_t columns) {
  using X = Vec<T, Bytes>;
  constexpr int64_t kCols = NV * X::kWidth;
  if (columns < kCols) {
    T block[MR][kCols];
    for (int m = 0; m < MR; ++m)
      for (int v = 0; v < NV; ++v) X::store(block[m] + v * X::kWidth, acc[m][v]);
    if constexpr (Streaming) return store_rows_partly_streaming(&block[0][0], MR, kCols, C, ldc, columns);
    for (int m = 0; m < MR; ++m) std::memcpy(C + m * ldc, block[m], columns * sizeof(T));
    return;
  }
  for (int m = 0; m < MR; ++m) {
    for (int v = 0; v < NV; ++v) {
      if constexpr (Streaming) {
        X::store_streaming(C + m * ldc + v * X::kWidth, acc[m][v]);
      } else {
        X::store(C + m * ldc + v * X::kWidth, acc[m][v]);
      }
    }
  }
}

// One MR x (NV vectors) block of C for the columns from n0 (rows from m0 of
// a SetC's init).
template <typename T, int Bytes, int MR, int NV, typename Mode>
ROWCONV_INLINE void gemm_rows_block(int64_t R, const T* const* A_rows, const T* const* B_rows,
                                    int64_t n0, T* C, int64_t ldc, const Mode& mode, int64_t m0) {
  using X = Vec<T, Bytes>;
  typename X::V acc[MR][NV];
  for (int m = 0; m < MR; ++m) {
    for (int v = 0; v < NV; ++v) {
      if constexpr (Mode::kSet) {
        acc[m][v] = mode.init ? X::splat_exact(mode.init + m0 + m) : typename X::V{};
      } else {
        acc[m][v] = X::load(C + m * ldc + n0 + v * X::kWidth);
      }
    }
  }
  if constexpr (Mode::kFetch) {
    LineFetch& f = *mode.fetch;
    fetch_lines(f.row, f.offset, f, (R * MR * NV + f.terms_per_line - 1) / f.terms_per_line);
  }
  for (int64_t r = 0; r < R; ++r) {
    const T* b = B_rows[r] + n0;
    // b in a register of its own, the vectors at constant offsets from it:
    // GCC would otherwise address every vector as B_rows[r] + (a register
    // per vector holding n0 + v * width), and those indexed loads, with the
    // loop bound spilled for want of registers, made one row's block
    // (depthwise) 1.2x slower (Zen 3: 1 x 512 x 4 taps 94 -> 78 ns, 2 rows
    // 0.90x the time, 4 rows or more unchanged)
    asm("" : "+r"(b));
    typename X::V bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = X::load(b + v * X::kWidth);
    for (int m = 0; m < MR; ++m) {
      const typename X::V a = X::splat_load(A_rows[m] + r);
      for (int v = 0; v < NV; ++v) acc[m][v] += a * bv[v];
    }
  }
  if constexpr (Mode::kSet) {
    store_block<T, Bytes, MR, NV, Mode::kStreaming>(acc, C + (n0 - mode.col0), ldc, mode.N - n0);
  } else {
    for (int m = 0; m < MR; ++m)
      for (int v = 0; v < NV; ++v) X::store(C + m * ldc + n0 + v * X::kWidth, acc[m][v]);
  }
}

// The block at n0 of the last columns, N - n0 < NV vectors of them: only the
// vectors those columns need (the forum shape's 98 columns, in blocks of 32,
// computed 128 and now 112).
template <typename T, int Bytes, int MR, int NV, typename Mode>
ROWCONV_INLINE void gemm_rows_last_block(int64_t N, int64_t R, const T* const* A_rows, const T* const* B_rows,
                                         int64_t n0, T* C, int64_t ldc, const Mode& mode, int64_t m0) {
  if constexpr (NV > 1) {
    if (N - n0 <= (NV - 1) * Vec<T, Bytes>::kWidth) {
      gemm_rows_last_block<T, Bytes, MR, NV - 1>(N, R, A_rows, B_rows, n0, C, ldc, mode, m0);
      return;
    }
  }
  gemm_rows_block<T, Bytes, MR, NV>(R, A_rows, B_rows, n0, C, ldc, mode, m0);
}

// Rows [0, M) of C (rows from m_first of a SetC's init), MR at a time, for
// the column block at n0 of NV vectors (fewer at the last columns).
template <typename T, int Bytes, int MR, int NV, typename Mode>
ROWCONV_INLINE void gemm_rows_column_block(int64_t M, int64_t N, int64_t R, const T* const* A_rows,
                                           const T* const* B_rows, int64_t n0, T* C, int64_t ldc,
                                           const Mode& mode, int64_t m_first) {
  constexpr int64_t step = NV * Vec<T, Bytes>::kWidth;
  static_assert(step <= kRowSlack, "a column block must fit in the row slack");
  for (int64_t m0 = 0; m0 < M; m0 += MR) {
    if (N - n0 >= step)
      gemm_rows_block<T, Bytes, MR, NV>(R, A_rows + m0, B_rows, n0, C + m0 * ldc, ldc, mode, m_first + m0);
    else
      gemm_rows_last_block<T, Bytes, MR, NV>(N, R, A_rows + m0, B_rows, n0, C + m0 * ldc, ldc, mode,
                                             m_first + m0);
  }
}

// Vectors a block of a short strip's `rows` spans. AVX2 (16 registers): at
// least 8 accumulators, the FMA latency (4) times its pipes (2). AVX-512 (32
// registers; Zen 5: two full-width pipes): at least 16 where the registers
// hold them with the block's B vectors and its broadcast A value, doubling
// (a power of two: the unit of gemm_rows_streaming_impl's stretches). Zen 5,
// 2 threads, forwards from L2 against 8: 4 rows x 28 terms 0.86x the time
// ((64,4,64,512) K 7 from memory 0.91x), 5 rows 0.87x, 3 rows 0.94x, 6 rows
// 0.94x, 2 rows 0.97x (7 rows: 2 vectors as before, 1.0x); their backwards
// 0.97-1.0x. Not measured on Zen 4 (one 512-bit FMA a cycle: its latency
// needs 4 of them; more only lower the loads per FMA).
constexpr int short_strip_vectors(int bytes, int rows, int nv) {
  if (bytes < 64) return std::max(nv, std::min(8, (8 + rows - 1) / rows));
  int v = nv;
  while (v < 8 && rows * v < 16 && rows * 2 * v + 2 * v + 1 <= 32) v *= 2;
  return v;
}

// A strip of `rows` < MR rows over all N, as blocks of exactly that many
// rows. Few rows get more vectors per block, so that enough independent
// accumulators hide the FMA latency (short_strip_vectors; one row: a
// depthwise convolution).
template <typename T, int Bytes, int MR, int NV, typename Mode>
ROWCONV_INLINE void gemm_rows_short_strip(int64_t rows, int64_t N, int64_t R, const T* const* A_rows,
                                          const T* const* B_rows, T* C, int64_t ldc, const Mode& mode,
                                          int64_t m0, int64_t n_begin) {
  if constexpr (MR > 0) {
    if (rows != MR) {
      gemm_rows_short_strip<T, Bytes, MR - 1, NV>(rows, N, R, A_rows, B_rows, C, ldc, mode, m0, n_begin);
      return;
    }
    constexpr int kNV = short_strip_vectors(Bytes, MR, NV);
    constexpr int64_t step = kNV * Vec<T, Bytes>::kWidth;
    for (int64_t n0 = n_begin; n0 < N; n0 += step)
      gemm_rows_column_block<T, Bytes, MR, kNV>(MR, N, R, A_rows, B_rows, n0, C, ldc, mode, m0);
  }
}

// The order of a product's blocks (MR rows by `step` columns, over its
// full strips of rows): panels of columns outer; in each, the strips, each
// along its blocks. The panel is one column block (gemm_rows_impl's order:
// column blocks outer, strips inner, a block of B in L1 while every strip
// uses it), except where C's rows are a multiple of 2 KiB apart (a power-of-two
// H * W: 'same' and causal convolutions of rows of 256, 512, 1024, ...):
// their lines at one column fall into one or two sets of the L1 cache, and
// all strips storing one column block's lines in turn filled those sets
// with more lines than they have ways. There a panel is as many columns as
// keep their B block in L1 (16 KiB: all of B where its columns are short,
// one column block where they are long), so a strip's stores move from set
// to set along its rows. The same sums: the same bits. Zen 5, 2 threads,
// float forwards, in-process A/B, panels over column blocks: (8,2,4,2048)
// Cout 64 K 3 'same' 0.40x the time, (8,1,4,1024) Cout 32 K 4 0.42x,
// (16,4,8,512) Cout 24 K 3 causal 0.66x, (4,1,8,4096) Cout 16 K 3 causal
// 0.67x, (8,8,16,1024) Cout 32 K 3 0.91x, (8,4,16,1024) Cout 32 K 5 0.90x,
// (8,16,16,1024) Cout 16 K 5 1.00x, rows of 256 0.71-1.03x; rows 1 KiB or
// 3 KiB apart lost (1.04-1.30x), so panels are kept to multiples of 2 KiB.
inline int64_t block_panel(int64_t full, int64_t MR, int64_t step, int64_t b_column_bytes, int64_t c_row_bytes) {
  constexpr int64_t kPanelBytes = 16384;
  if (full <= MR || c_row_bytes % 2048 != 0) return step;
  return std::max<int64_t>(1, kPanelBytes / std::max<int64_t>(b_column_bytes, 1) / step) * step;
}

// Column blocks outer, strips of MR rows inner: a block of B stays in L1
// while every strip uses it. Columns [n_begin, N).
template <typename T, int Bytes, int MR, int NV, typename Mode>
ROWCONV_INLINE void gemm_rows_impl(int64_t M, int64_t N, int64_t R, const T* const* A_rows,
                                   const T* const* B_rows, T* C, int64_t ldc, const Mode& mode,
                                   int64_t n_begin = 0) {
  constexpr int64_t step = NV * Vec<T, Bytes>::kWidth;
  const int64_t full = M / MR * MR;
  if (full > 0) {
    for (int64_t n0 = n_begin; n0 < N; n0 += step)
      gemm_rows_column_block<T, Bytes, MR, NV>(full, N, R, A_rows, B_rows, n0, C, ldc, mode, 0);
  }
  gemm_rows_short_strip<T, Bytes, MR - 1, NV>(M - full, N, R, A_rows + full, B_rows,
                                              C + full * ldc, ldc, mode, full, n_begin);
}

// gemm_rows_impl with its full strips in panels of `panel` columns
// (block_panel), each strip along its blocks within a panel. (gemm_rows_set
// calls it or gemm_rows_impl, each compiled as a function of its own: with
// both loop nests in one function, the compiler's registers and layout cost
// other shapes' blocks 5-6%: a causal (32,15,10,512) K 5 forward, the
// narrow one from memory.)
template <typename T, int Bytes, int MR, int NV, typename Mode>
ROWCONV_INLINE void gemm_rows_panels_impl(int64_t M, int64_t N, int64_t R, const T* const* A_rows,
                                          const T* const* B_rows, T* C, int64_t ldc, const Mode& mode,
                                          int64_t panel) {
  constexpr int64_t step = NV * Vec<T, Bytes>::kWidth;
  const int64_t full = M / MR * MR;
  for (int64_t p0 = 0; p0 < N; p0 += panel)
    for (int64_t m0 = 0; m0 < full; m0 += MR)
      for (int64_t n0 = p0; n0 < std::min(N, p0 + panel); n0 += step)
        gemm_rows_column_block<T, Bytes, MR, NV>(MR, N, R, A_rows + m0, B_rows, n0, C + m0 * ldc, ldc, mode, m0);
  gemm_rows_short_strip<T, Bytes, MR - 1, NV>(M - full, N, R, A_rows + full, B_rows, C + full * ldc, ldc, mode,
                                              full, 0);
}

// Stores a row's stretch of columns, count elements of src at dst, the
// whole 64-byte lines of dst non-temporally and a line only one way. A line
// that the stretch's end cuts waits, its first part in `carry` (`pending`
// elements, 0 where none), for the row's next stretch, which writes it
// whole; the row's first and last partial lines (at the stretch that starts
// the row, and at its `last`) are stored plainly. (Each stretch's partial
// lines stored plainly, both parts of a line one after the other, took
// 1.2x the time of a pointwise (32,16,7,4099) forward, whose rows of an
// odd H * W start at every place in a line, Zen 5: every stretch of every
// row had two.)
template <typename T, int Bytes>
ROWCONV_INLINE void stream_run(const T* src, int64_t count, T* dst, T* carry, int64_t& pending, bool last) {
  using X = Vec<T, Bytes>;
  constexpr int64_t kLine = 64 / sizeof(T);
  int64_t i = 0;
  if (pending > 0) {  // dst - pending is on a line
    i = std::min(count, kLine - pending);
    std::memcpy(carry + pending, src, i * sizeof(T));
    pending += i;
    T* line = dst + i - pending;
    if (pending == kLine) {
      for (int64_t v = 0; v < kLine; v += X::kWidth) X::store_streaming(line + v, X::load(carry + v));
      pending = 0;
    } else {  // the stretch ends inside the line
      if (last) std::memcpy(line, carry, pending * sizeof(T)), pending = 0;
      return;
    }
  } else {
    i = std::min(count, static_cast<int64_t>((64 - reinterpret_cast<uintptr_t>(dst) % 64) % 64 / sizeof(T)));
    std::memcpy(dst, src, i * sizeof(T));
  }
  const int64_t lines_end = i + (count - i) / kLine * kLine;
  for (; i < lines_end; i += X::kWidth) X::store_streaming(dst + i, X::load(src + i));
  const int64_t rest = count - lines_end;
  if (last) {
    std::memcpy(dst + lines_end, src + lines_end, rest * sizeof(T));
  } else {
    std::memcpy(carry, src + lines_end, rest * sizeof(T));
    pending = rest;
  }
}

// gemm_rows_set_streaming: the products of a stretch of columns into a
// buffer in L1, then each row's stretch stored non-temporally in one run.
// Non-temporal stores that alternate between rows (a block's 1-2 lines in
// each of its rows, then the next block's) ran 1.5-1.9x slower than plain
// stores on Zen 3 (standalone, one thread, 64 MB of results from blocks of
// 2 or 4 rows; blocks of one row, 4 lines a block, ran as fast, or faster
// from memory); runs of a row's lines take them at full speed. The same
// sums, so the same bits. More rows than the buffer holds a stretch of:
// the blocks' own stores.
template <typename T, int Bytes, int MR, int NV, bool Fetch>
ROWCONV_INLINE void gemm_rows_streaming_impl(int64_t M, int64_t N, int64_t R, const T* const* A_rows,
                                             const T* const* B_rows, const T* init, T* C, int64_t ldc,
                                             LineFetch* fetch) {
  constexpr int64_t kBufferElements = 16384 / sizeof(T);
  constexpr int64_t kUnit = 8 * Vec<T, Bytes>::kWidth;  // every block shape's column step divides it
  const int64_t stretch = kBufferElements / std::max<int64_t>(M, 1) / kUnit * kUnit;
  if (stretch == 0)
    return gemm_rows_impl<T, Bytes, MR, NV>(M, N, R, A_rows, B_rows, C, ldc, SetC<T, true, Fetch>{init, N, 0, fetch});
  alignas(64) T buffer[kBufferElements];
  constexpr int64_t kMaxRows = kBufferElements / kUnit, kLine = 64 / sizeof(T);  // (stretch >= kUnit)
  alignas(64) T carry[kMaxRows][kLine];
  int64_t pending[kMaxRows];
  std::fill_n(pending, M, int64_t{0});
  for (int64_t c0 = 0; c0 < N; c0 += stretch) {
    const int64_t end = std::min(N, c0 + stretch);
    gemm_rows_impl<T, Bytes, MR, NV>(M, end, R, A_rows, B_rows, buffer, stretch, SetC<T, false, Fetch>{init, end, c0, fetch}, c0);
    for (int64_t m = 0; m < M; ++m)
      stream_run<T, Bytes>(buffer + m * stretch, end - c0, C + m * ldc + c0, carry[m], pending[m], end == N);
  }
}

// Keeps v in a register: each load of an operand used by several
// multiply-adds then happens once (GCC would otherwise fold it into every
// multiply-add as a memory operand, and the loads, not the multiply-adds,
// would bound the loop).
template <typename V>
ROWCONV_INLINE void in_register(V& v) {
#if defined(__x86_64__)
  asm("" : "+v"(v));
#endif
}

// One row of taps: y[n] = init + sum_{k < K} w[k] * x[n + k * step].
//
// Where |step| divides the vector width W, the taps fall into P = W / |step|
// classes by k % P, and the taps of one class are whole vectors apart:
// tap c + P * q of output vector j reads the vector at
// x + n0 + c * step + W * (j + q) (step > 0; j - q for step < 0). So a
// loaded vector serves every (output vector, tap) pair of its class whose
// j +- q it is: a block of NV output vectors and a group of TG taps of one
// class loads NV + TG - 1 vectors for NV * TG multiply-adds, where a tap at
// a time loads NV (and, at odd offsets, half of them split across cache
// lines: one row of 64 taps was bound by its loads at 57% of the FMA peak).
// Other steps, and K <= P, make classes of one tap each (the taps in k's
// order). Blocks share a class's loads where every class has two taps or
// more (standalone, Zen 3, one thread, a row of 1024 from L1: K 12 shared
// 0.6-0.85x the speed of a tap at a time, K 16 1.1x, 20 1.2x, 64 1.5x).
//
// Every output sums its taps in the same order whatever its block: class
// by class, q upwards within a class (the blocks that take a tap at a time
// keep it), so a row's bits do not depend on where its blocks start or end.
struct TapClasses {
  int64_t P;          // classes, tap k in class k % P (P == K: one tap each, no sharing)
  int64_t big;        // classes [0, big) hold `taps + 1` taps, the others `taps`
  int64_t taps;
  int64_t per_group[2];  // taps a group: [0] for the big classes, [1] for the others
  // (divisions once a call, not once a class a block)
  template <int TG>
  static TapClasses of(int64_t K, int64_t step, int64_t W) {
    const int64_t d = step < 0 ? -step : step;
    const auto even_groups = [](int64_t taps) {
      const int64_t groups = std::max<int64_t>(1, (taps + TG - 1) / TG);
      return (taps + groups - 1) / groups;
    };
    // taps within a vector (every class of one tap, the usual short row)
    // without a division: a causal chunk's row calls the kernel twice (its
    // head from a copied window, then in place), and the divisions cost
    // rows of 256-512 2-3% of their time (Zen 4, in-process, 1 thread)
    if (K * d <= W) return {K, 0, 1, {even_groups(2), even_groups(1)}};
    const int64_t P = d > 0 && W % d == 0 ? std::min(W / d, K) : K;
    const int64_t taps = K / P, big = K % P;
    return {P, big, taps, {even_groups(taps + 1), even_groups(taps)}};
  }
};

// acc[j] += w[q * P] * x_q(j) for the TG taps q of one class from w, the
// vectors loaded once each: the s-th from `first` (W * s on, or back where
// Down, step < 0) serves output vector j' = s - t and tap t (j' counted from
// the block's last vector where Down), so that each output still adds its
// taps q upwards.
template <typename T, int Bytes, int NV, int TG, bool Down>
ROWCONV_INLINE void taps_class_group(typename Vec<T, Bytes>::V (&acc)[NV], const T* first, const T* w,
                                     int64_t P) {
  using X = Vec<T, Bytes>;
  typename X::V wq[TG];
  for (int t = 0; t < TG; ++t) wq[t] = X::splat_load(w + t * P);
  asm("" : "+r"(first));  // (gemm_rows_block: constant offsets from one register)
  // constant bounds, fully unrolled: GCC keeps a loop whose bounds depend on
  // another loop's index, and its accumulators then live on the stack
#pragma GCC unroll 64
  for (int s = 0; s < NV + TG - 1; ++s) {
    typename X::V xs = X::load(first + (Down ? -s : s) * X::kWidth);
    in_register(xs);
#pragma GCC unroll 64
    for (int jj = 0; jj < NV; ++jj) {
      if (jj >= s - TG + 1 && jj <= s) acc[Down ? NV - 1 - jj : jj] += wq[s - jj] * xs;
    }
  }
}
// taps_class_group of tg <= TG taps
template <typename T, int Bytes, int NV, int TG, bool Down>
ROWCONV_INLINE void taps_class_group_of(int64_t tg, typename Vec<T, Bytes>::V (&acc)[NV], const T* first,
                                        const T* w, int64_t P) {
  if constexpr (TG > 1) {
    if (tg < TG) return taps_class_group_of<T, Bytes, NV, TG - 1, Down>(tg, acc, first, w, P);
  }
  taps_class_group<T, Bytes, NV, TG, Down>(acc, first, w, P);
}

// The block of NV vectors of outputs at n0, its taps shared by class
// (TapClasses), in groups of at most TG taps (as even as they come) that
// the registers hold next to the NV accumulators.
template <typename T, int Bytes, int NV, int TG, bool Down, bool Streaming>
ROWCONV_INLINE void taps_row_block(int64_t n0, int64_t N, int64_t step, const TapClasses& tc, const T* w,
                                   const T* x, typename Vec<T, Bytes>::V from, T* y) {
  using X = Vec<T, Bytes>;
  constexpr int64_t W = X::kWidth;
  typename X::V acc[NV];
  for (int v = 0; v < NV; ++v) acc[v] = from;
  for (int64_t c = 0; c < tc.P; ++c) {
    const bool big = c < tc.big;
    const int64_t taps = tc.taps + big, per_group = tc.per_group[big ? 0 : 1];
    const T* base = x + n0 + c * step;
    for (int64_t q0 = 0; q0 < taps; q0 += per_group) {
      const T* first = Down ? base + W * (NV - 1 - q0) : base + W * q0;
      taps_class_group_of<T, Bytes, NV, TG, Down>(std::min(per_group, taps - q0), acc, first, w + c + q0 * tc.P,
                                                  tc.P);
    }
  }
  typename X::V block[1][NV];
  for (int v = 0; v < NV; ++v) block[0][v] = acc[v];
  store_block<T, Bytes, 1, NV, Streaming>(block, y + n0, 0, N - n0);
}
// A block of up to NV vectors, N - n0 columns of it wanted, a tap at a time
// in the same order (class by class): the last block, only the vectors its
// columns need; and every block where no class has two taps. One loop over
// the taps (session 35, Zen 4, in-process, same bits, against the nested
// loops: forward time 0.89-0.97x for depthwise K 3-8 at dilations 1-3,
// float and double; grad-input 0.93-0.99x; where classes hold several taps,
// the same). What bounds it then is the loads: a 64-byte load
// that splits a line takes two of Zen 4's load slots, and the three of
// every four taps that start off a line cost 1.7 cycles a multiply-add
// (standalone, K 4, from L1). Cutting each tap's view out of two aligned
// vectors by valignd instead (a switch over its offset in the line) took
// 0.83-0.86x the time standalone: not built; vpermt2ps lost (session 34).
template <typename T, int Bytes, int NV, bool Streaming>
ROWCONV_INLINE void taps_row_block_by_tap(int64_t n0, int64_t N, int64_t K, int64_t step, int64_t P,
                                          const T* w, const T* x, typename Vec<T, Bytes>::V from, T* y) {
  using X = Vec<T, Bytes>;
  if constexpr (NV > 1) {
    if (N - n0 <= (NV - 1) * X::kWidth)
      return taps_row_block_by_tap<T, Bytes, NV - 1, Streaming>(n0, N, K, step, P, w, x, from, y);
  }
  typename X::V acc[1][NV];
  for (int v = 0; v < NV; ++v) acc[0][v] = from;
  // class by class (k = c, c + P, ...; k's order where P == K) in one loop:
  // nested loops over the classes and their taps kept the counters on the
  // stack, a store and a reload a tap
  for (int64_t i = 0, c = 0, k = 0; i < K; ++i) {
    const T* b = x + n0 + k * step;
    asm("" : "+r"(b));  // (gemm_rows_block: constant offsets from one register)
    const typename X::V a = X::splat_load(w + k);
    for (int v = 0; v < NV; ++v) acc[0][v] += a * X::load(b + v * X::kWidth);
    k += P;
    if (k >= K) k = ++c;
  }
  store_block<T, Bytes, 1, NV, Streaming>(acc, y + n0, 0, N - n0);
}
// The streaming variant's prefetch: an output for memory has an input from
// memory (depthwise: as large), its lines fetched 2 KiB ahead, sooner than
// the hardware's prefetchers fetch them (Zen 3, 2 threads, a
// (64,1,1024,4096) forward: about 0.8x the time, one pass and chunks of
// 512; from L1 1.05-1.07x, so only there). Every block fetches, the row's
// last one too (until session 26 it did not: on rows of 512 a quarter of the
// next row's lines came unfetched; Zen 5, (64,1,1024,512) K 4 chunks with
// carried state, in-process: 0.90-0.92x the time on 2 threads, 0.78x on one).
template <typename T, int64_t Cols>
ROWCONV_INLINE void fetch_ahead(const T* x) {
  const char* line = reinterpret_cast<const char*>(x) + kTapsFetchAheadBytes;
  for (int64_t l = 0; l < Cols * static_cast<int64_t>(sizeof(T)); l += 64) prefetch_line(line + l);
}
// NVS x TG: the shared blocks' accumulators and the taps a group holds in
// registers next to them and the loaded vector.
template <typename T, int Bytes, int NVS, int TG, bool Down, bool Streaming, bool Fetch>
ROWCONV_INLINE void taps_row_blocks(int64_t N, int64_t K, int64_t step, const T* w, const T* x, const T* init,
                                    T* y) {
  using X = Vec<T, Bytes>;
  constexpr int NV = 8;
  constexpr int64_t kCols = NV * X::kWidth, kSharedCols = NVS * X::kWidth;
  static_assert(kCols <= kRowSlack, "a block must fit in the row slack");
  const TapClasses tc = TapClasses::of<TG>(K, step, X::kWidth);
  const typename X::V from = init ? X::splat_exact(init) : typename X::V{};
  int64_t n0 = 0;
  if (tc.taps >= 2) {
    for (; n0 + kSharedCols <= N; n0 += kSharedCols) {
      if constexpr (Fetch) fetch_ahead<T, kSharedCols>(x + n0);
      taps_row_block<T, Bytes, NVS, TG, Down, Streaming>(n0, N, step, tc, w, x, from, y);
    }
  }
  for (; n0 + kCols <= N; n0 += kCols) {
    if constexpr (Fetch) fetch_ahead<T, kCols>(x + n0);
    taps_row_block_by_tap<T, Bytes, NV, Streaming>(n0, N, K, step, tc.P, w, x, from, y);
  }
  if (n0 < N) {  // the last block fetches ahead too: the next row's input where rows are short
    if constexpr (Fetch) fetch_ahead<T, kCols>(x + n0);
    taps_row_block_by_tap<T, Bytes, NV, Streaming>(n0, N, K, step, tc.P, w, x, from, y);
  }
}
// (Fetch: a streaming row's fetches ahead, fetch_ahead)
template <typename T, int Bytes, bool Streaming, bool Fetch = Streaming>
ROWCONV_INLINE void taps_row_impl(int64_t N, int64_t K, int64_t step, const T* w, const T* x, const T* init,
                                  T* y) {
  // 16 registers: 10 accumulators (more than the 8 that hide the FMA
  // latency), 4 taps and the vector; standalone on Zen 3 (1024 columns, K
  // 16-128, one thread) 10 x 4 ran at 63-94 GFLOP/s, 8 x 6 at 41-88, 12 x 3
  // at 58-81, 11 x 4 at 53-84, 8 x 7 spilled. 32 registers (AVX-512): 16 x
  // 12 (29 registers, no spills); Zen 5 (two 512-bit FMA pipes, latency 4:
  // 8 accumulators left no slack), 2 threads, against 8 x 16: (1,1,256,8192)
  // K 64 from L2 0.69x the time (50% -> 72% of the FMA peak), (16,1,256,8192)
  // from memory 0.86x, its backward 0.90x; K 4-20 (a tap at a time) 1.0x.
  // Not measured on Zen 4. The shared blocks (256 columns) pass the row
  // slack: they run only where all their columns are wanted.
  constexpr int NVS = Bytes >= 64 ? 16 : 10;
  constexpr int TG = Bytes >= 64 ? 12 : 4;
  if (step < 0) return taps_row_blocks<T, Bytes, NVS, TG, true, Streaming, Fetch>(N, K, step, w, x, init, y);
  taps_row_blocks<T, Bytes, NVS, TG, false, Streaming, Fetch>(N, K, step, w, x, init, y);
}

// One MR x NR block of dot products, added to its lane partials in P
// (kSums: from zero, and their lanes summed into P[m * ldp + r * ldr] instead).
// (kFetch: fetch's lines as it goes; compiled apart, so that the products
// that fetch nothing have no code for it in their loop: its check alone
// cost the in-cache dot form 1.08x the time)
template <typename T, int Bytes, int MR, int NR, bool kSums = false, bool kFetch = false>
ROWCONV_INLINE void dot_rows_block(int64_t N, const T* const* A_rows, const T* const* B_rows,
                                   T* P, int64_t ldp, int64_t ldr, LineFetch* fetch) {
  using X = Vec<T, Bytes>;
  typename X::V acc[MR][NR];
  for (int m = 0; m < MR; ++m)
    for (int r = 0; r < NR; ++r) acc[m][r] = kSums ? typename X::V{} : X::load(P + (m * ldp + r) * X::kWidth);
  const LineFetch& f = kFetch ? *fetch : kFetchNothing;
  const char* const* f_row = f.row;
  int64_t f_offset = f.offset;
  int64_t n = 0;
  for (; n + X::kWidth <= N; n += X::kWidth) {
    if constexpr (kFetch) fetch_lines(f_row, f_offset, f, f.per_step);
    typename X::V a[MR], b[NR];
    for (int m = 0; m < MR; ++m) a[m] = X::load(A_rows[m] + n);
    for (int r = 0; r < NR; ++r) {
      b[r] = X::load(B_rows[r] + n);
      if constexpr (MR > 1) in_register(b[r]);  // (one row: a memory operand of its one multiply-add)
    }
    for (int m = 0; m < MR; ++m)
      for (int r = 0; r < NR; ++r) acc[m][r] += a[m] * b[r];
  }
  if (n < N) {
    typename X::V a[MR], b[NR];
    for (int m = 0; m < MR; ++m) a[m] = X::load_first(A_rows[m] + n, N - n);
    for (int r = 0; r < NR; ++r) b[r] = X::load_first(B_rows[r] + n, N - n);
    for (int m = 0; m < MR; ++m)
      for (int r = 0; r < NR; ++r) acc[m][r] += a[m] * b[r];
  }
  if constexpr (kFetch) fetch->row = f_row, fetch->offset = f_offset;
  if constexpr (kSums) {
    T sum[MR * NR];
    X::template sums<MR * NR>(&acc[0][0], sum);
    for (int m = 0; m < MR; ++m)
      for (int r = 0; r < NR; ++r) P[m * ldp + r * ldr] = sum[m * NR + r];
  } else {
    for (int m = 0; m < MR; ++m)
      for (int r = 0; r < NR; ++r) X::store(P + (m * ldp + r) * X::kWidth, acc[m][r]);
  }
}

// The R columns of a strip of MR rows, as blocks of NR columns, the rest
// in blocks of NR / 2, NR / 4, ..., 1: as many independent accumulators as
// the columns allow, to hide the multiply-add latency.
template <typename T, int Bytes, int MR, int NR, bool kSums, bool kFetch>
ROWCONV_INLINE void dot_rows_strip(int64_t R, int64_t N, const T* const* A_rows, const T* const* B_rows, T* P,
                                   int64_t ldp, int64_t ldr, LineFetch* fetch, int64_t r0 = 0) {
  const int64_t W = kSums ? ldr : Vec<T, Bytes>::kWidth;
  for (; r0 + NR <= R; r0 += NR)
    dot_rows_block<T, Bytes, MR, NR, kSums, kFetch>(N, A_rows, B_rows + r0, P + r0 * W, ldp, ldr, fetch);
  if constexpr (NR > 1)
    dot_rows_strip<T, Bytes, MR, NR / 2, kSums, kFetch>(R, N, A_rows, B_rows, P, ldp, ldr, fetch, r0);
}

// A strip of `rows` < MR rows (the last of M) at once. One row (a
// depthwise grad-weight, an output channel a group) takes blocks of 8
// columns: 8 accumulators, where NR alone would leave 4 dependent chains
// to share two multiply-add pipes of latency 4 (half their rate on Zen 3's
// AVX2).
template <typename T, int Bytes, int MR, int NR, bool kSums, bool kFetch>
ROWCONV_INLINE void dot_rows_short_strip(int64_t rows, int64_t R, int64_t N, const T* const* A_rows,
                                         const T* const* B_rows, T* P, int64_t ldp, int64_t ldr, LineFetch* fetch) {
  if constexpr (MR > 0) {
    if (rows != MR)
      return dot_rows_short_strip<T, Bytes, MR - 1, NR, kSums, kFetch>(rows, R, N, A_rows, B_rows, P, ldp, ldr, fetch);
    dot_rows_strip<T, Bytes, MR, MR == 1 ? std::max(NR, 8) : NR, kSums, kFetch>(R, N, A_rows, B_rows, P, ldp, ldr,
                                                                                 fetch);
  }
}

// kSums: P holds sums (rows ldp apart, columns ldr), not lane partials
// (ldp * lanes apart).
// Fewer than NR columns (a decode step of one or two batch entries): blocks
// of twice the rows and half the columns, the same number of accumulators,
// so that each loaded B vector still serves several multiply-adds. (Each dot
// product is summed alike in every block shape: the results do not change.)
template <typename T, int Bytes, int MR, int NR, bool kSums = false, bool kFetch = false>
ROWCONV_INLINE void dot_rows_impl(int64_t M, int64_t R, int64_t N, const T* const* A_rows,
                                  const T* const* B_rows, T* P, int64_t ldp, int64_t ldr = 1,
                                  LineFetch* fetch = nullptr) {
  if constexpr (NR > 1) {
    if (R < NR)
      return dot_rows_impl<T, Bytes, MR * 2, NR / 2, kSums, kFetch>(M, R, N, A_rows, B_rows, P, ldp, ldr, fetch);
  }
  constexpr int64_t W = kSums ? 1 : Vec<T, Bytes>::kWidth;
  int64_t m0 = 0;
  for (; m0 + MR <= M; m0 += MR)
    dot_rows_strip<T, Bytes, MR, NR, kSums, kFetch>(R, N, A_rows + m0, B_rows, P + m0 * ldp * W, ldp, ldr, fetch);
  dot_rows_short_strip<T, Bytes, MR - 1, NR, kSums, kFetch>(M - m0, R, N, A_rows + m0, B_rows, P + m0 * ldp * W, ldp,
                                                            ldr, fetch);
}

// One row's lane partials against K taps of x `step` apart (a depthwise
// grad-weight at stride 1): dot_rows(1, K, N, {a}, B_rows, P, K) with
// B_rows[k] = B_rows[0] + k * step, the same bits (each tap's lanes add
// their terms n upwards, in one chain from P, whatever group serves it).
// The taps of a class (TapClasses) share each loaded vector of x: a group
// of TC taps in each of G classes over NA vectors of `a` loads
// NA + G * (NA + TC - 1) vectors for NA * G * TC multiply-adds, where
// dot_rows loads 9 for 8 (its one row bound by its loads, as the forward's
// was); G * TC accumulators, 8 or more (chains of latency 4 on two pipes)
// wherever the classes have 2 taps or more. Else dot_rows.
// G for TC taps a class: G * TC accumulators, 8-12 of them (a template
// argument and the schedule's count alike). AVX-512 with 4 taps a class (64
// taps at dilation 1, 16 classes): 4 classes, 16 accumulators (Zen 5's two
// 512-bit pipes of latency 4 left 8 no slack; 32 registers hold them, the 8
// vectors of `a` and the loaded one). Same bits. Zen 5, 2 threads,
// in-process A/B against 2 classes: (1,1,256,8192) K 64 0.94x the time,
// (16,1,256,8192) 0.96x, K 66 0.98x, K 32 dilation 2 0.92x. (Every count
// doubled, for every tap count, took the compiler past the machine's memory.)
constexpr int taps_dot_classes(int64_t tc, int bytes) {
  if (bytes >= 64 && tc == 4) return 4;
  return tc == 1 ? 8 : tc == 2 ? 4 : tc == 3 ? 3 : tc <= 6 ? 2 : 1;
}

// Taps q0 .. q0 + TC - 1 of classes c .. c + G - 1 (x_c: class c's row,
// partials_c: class c's tap 0): tap q0 + t of class c + g reads, for a's
// vector i, the vector i + t of x_c + g * step + q0 * W.
template <typename T, int Bytes, int NA, int G, int TC>
ROWCONV_INLINE void taps_dot_group(int64_t N, const T* a, const T* x_c, int64_t step, int64_t q0, int64_t P,
                                   T* partials_c, LineFetch* fetch) {
  using X = Vec<T, Bytes>;
  constexpr int64_t W = X::kWidth;
  typename X::V acc[G][TC];
  const auto tap_partials = [&](int g, int t) { return partials_c + (g + (q0 + t) * P) * W; };
  for (int g = 0; g < G; ++g)
    for (int t = 0; t < TC; ++t) acc[g][t] = X::load(tap_partials(g, t));
  const T* x[G];
  for (int g = 0; g < G; ++g) x[g] = x_c + g * step + q0 * W;
  const int64_t full = N / W;
  // its share of the lines at its start (none in the loop: its check cost
  // the products that fetch nothing 1.06x the time)
  if (fetch)
    fetch_lines(fetch->row, fetch->offset, *fetch, (full * G * TC + fetch->terms_per_line - 1) / fetch->terms_per_line);
  int64_t i0 = 0;
  for (; i0 + NA <= full; i0 += NA) {
    typename X::V av[NA];
    for (int i = 0; i < NA; ++i) av[i] = X::load(a + (i0 + i) * W);
#pragma GCC unroll 64
    for (int s = 0; s < NA + TC - 1; ++s) {
#pragma GCC unroll 16
      for (int g = 0; g < G; ++g) {
        typename X::V xs = X::load(x[g] + (i0 + s) * W);
        in_register(xs);
#pragma GCC unroll 64
        for (int i = 0; i < NA; ++i)
          if (s - i >= 0 && s - i < TC) acc[g][s - i] += av[i] * xs;
      }
    }
  }
  for (; i0 < full; ++i0) {
    const typename X::V av = X::load(a + i0 * W);
    for (int g = 0; g < G; ++g)
      for (int t = 0; t < TC; ++t) acc[g][t] += av * X::load(x[g] + (i0 + t) * W);
  }
  if (full * W < N) {
    const int64_t left = N - full * W;
    const typename X::V av = X::load_first(a + full * W, left);
    for (int g = 0; g < G; ++g)
      for (int t = 0; t < TC; ++t) acc[g][t] += av * X::load_first(x[g] + (full + t) * W, left);
  }
  for (int g = 0; g < G; ++g)
    for (int t = 0; t < TC; ++t) X::store(tap_partials(g, t), acc[g][t]);
}
// taps_dot_group of tc <= TC taps in g <= taps_dot_classes(tc, Bytes) classes
template <typename T, int Bytes, int NA, int TC, int G = taps_dot_classes(TC, Bytes)>
ROWCONV_INLINE void taps_dot_group_of(int64_t tc, int64_t g, int64_t N, const T* a, const T* x_c, int64_t step,
                                      int64_t q0, int64_t P, T* partials_c, LineFetch* fetch) {
  if constexpr (TC > 1) {
    if (tc < TC) return taps_dot_group_of<T, Bytes, NA, TC - 1>(tc, g, N, a, x_c, step, q0, P, partials_c, fetch);
  }
  if constexpr (G > 1) {
    if (g < G) return taps_dot_group_of<T, Bytes, NA, TC, G - 1>(tc, g, N, a, x_c, step, q0, P, partials_c, fetch);
  }
  taps_dot_group<T, Bytes, NA, G, TC>(N, a, x_c, step, q0, P, partials_c, fetch);
}
template <typename T, int Bytes, int NA, int TG, int DOT_MR, int DOT_NR>
ROWCONV_INLINE void taps_dot_row_impl(int64_t N, int64_t K, int64_t step, const T* a, const T* const* B_rows,
                                      T* P, LineFetch* fetch) {
  using X = Vec<T, Bytes>;
  constexpr int64_t W = X::kWidth;
  const TapClasses tc = TapClasses::of<TG>(K, step, W);
  if (step <= 0 || tc.taps < 2) {
    if (fetch) return dot_rows_impl<T, Bytes, DOT_MR, DOT_NR, false, true>(1, K, N, &a, B_rows, P, K, 1, fetch);
    return dot_rows_impl<T, Bytes, DOT_MR, DOT_NR>(1, K, N, &a, B_rows, P, K, 1);
  }
  const T* x = B_rows[0];
  if (tc.taps >= 8) {  // a class at a time, in groups of up to TG taps
    for (int64_t c = 0; c < tc.P; ++c) {
      const bool big = c < tc.big;
      const int64_t taps = tc.taps + big, per_group = tc.per_group[big ? 0 : 1];
      for (int64_t q0 = 0; q0 < taps; q0 += per_group)
        taps_dot_group_of<T, Bytes, NA, TG>(std::min(per_group, taps - q0), 1, N, a, x + c * step, step, q0, tc.P,
                                            P + c * W, fetch);
    }
    return;
  }
  // the first tc.taps taps of every class, several classes a group; then
  // the big classes' last tap, up to 8 classes a group
  const int64_t classes = taps_dot_classes(tc.taps, Bytes);
  for (int64_t c = 0; c < tc.P; c += classes)
    taps_dot_group_of<T, Bytes, NA, 7>(tc.taps, std::min(classes, tc.P - c), N, a, x + c * step, step, 0, tc.P,
                                       P + c * W, fetch);
  for (int64_t c = 0; c < tc.big; c += 8)
    taps_dot_group_of<T, Bytes, NA, 1>(1, std::min<int64_t>(8, tc.big - c), N, a, x + c * step, step, tc.taps,
                                       tc.P, P + c * W, fetch);
}

template <typename T, int Bytes>
ROWCONV_INLINE void reduce_lanes_impl(int64_t count, const T* P, T* out) {
  using X = Vec<T, Bytes>;
  for (int64_t i = 0; i < count; ++i) out[i] = X::sum(X::load(P + i * X::kWidth));
}

template <typename T, int Bytes>
ROWCONV_INLINE void add_partials16_impl(int64_t n, const T* row, double* part) {
  using X = Vec<T, Bytes>;
  constexpr int kVectors = 16 / X::kWidth;  // 16 lanes of T
  static_assert(kVectors * X::kWidth == 16);
  constexpr int kWide = Bytes / static_cast<int>(sizeof(double));  // doubles a vector
  typedef double D __attribute__((vector_size(Bytes)));
  typedef T S __attribute__((vector_size(kWide * sizeof(T))));  // the Ts widened into one D
  D wide[16 / kWide];
  std::memcpy(wide, part, sizeof(wide));
  const int64_t whole = n / 16 * 16;
  int64_t t = 0;
  while (t < whole) {
    const int64_t end = std::min(whole, t + kPartialsBlock);
    typename X::V even[kVectors] = {}, odd[kVectors] = {};  // two chains of adds, not one
    for (; t + 32 <= end; t += 32) {
      for (int v = 0; v < kVectors; ++v) {
        even[v] += X::load(row + t + v * X::kWidth);
        odd[v] += X::load(row + t + 16 + v * X::kWidth);
      }
    }
    if (t < end) {
      for (int v = 0; v < kVectors; ++v) even[v] += X::load(row + t + v * X::kWidth);
      t += 16;
    }
    T lanes[16];
    for (int v = 0; v < kVectors; ++v) X::store(lanes + v * X::kWidth, even[v] + odd[v]);
    for (int v = 0; v < 16 / kWide; ++v) {
      S s;
      std::memcpy(&s, lanes + v * kWide, sizeof(S));
      wide[v] += __builtin_convertvector(s, D);
    }
  }
  std::memcpy(part, wide, sizeof(wide));
  for (; t < n; ++t) part[t % 16] += static_cast<double>(row[t]);
}

// The transpose of one square tile of 32-byte vectors: v[i] (row i) becomes
// column i. float: 8 x 8 in three rounds of shuffles, pairs, then pairs of
// pairs within 16-byte halves, then halves (vunpck*, vshufps, vperm2f128 on
// AVX2); double: 4 x 4 in two. GCC lowers the same code to 16-byte
// shuffles on the baseline.
template <typename T>
ROWCONV_INLINE void transpose_tile(typename Vec<T, 32>::V* v) {
  using V = typename Vec<T, 32>::V;
  if constexpr (sizeof(T) == 4) {
    V t[8], s[8];
    for (int i = 0; i < 8; i += 2) {
      t[i] = __builtin_shufflevector(v[i], v[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
      t[i + 1] = __builtin_shufflevector(v[i], v[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int i = 0; i < 8; i += 4) {
      for (int j = 0; j < 2; ++j) {
        s[i + 2 * j] = __builtin_shufflevector(t[i + j], t[i + j + 2], 0, 1, 8, 9, 4, 5, 12, 13);
        s[i + 2 * j + 1] = __builtin_shufflevector(t[i + j], t[i + j + 2], 2, 3, 10, 11, 6, 7, 14, 15);
      }
    }
    for (int j = 0; j < 4; ++j) {
      v[j] = __builtin_shufflevector(s[j], s[j + 4], 0, 1, 2, 3, 8, 9, 10, 11);
      v[j + 4] = __builtin_shufflevector(s[j], s[j + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
  } else {
    V t[4];
    for (int i = 0; i < 4; i += 2) {
      t[i] = __builtin_shufflevector(v[i], v[i + 1], 0, 4, 2, 6);
      t[i + 1] = __builtin_shufflevector(v[i], v[i + 1], 1, 5, 3, 7);
    }
    for (int j = 0; j < 2; ++j) {
      v[j] = __builtin_shufflevector(t[j], t[j + 2], 0, 1, 4, 5);
      v[j + 2] = __builtin_shufflevector(t[j], t[j + 2], 2, 3, 6, 7);
    }
  }
}

// Whole tiles through registers, the ragged edges element by element. The
// last rows short of a vector go as a tile too, zero rows below them, where
// dst's rows have room for a whole vector (the lanes past `rows` written
// zero): element by element, the 7 last of 15 rows took more time than the
// 8 before them and the product after.
template <typename T>
ROWCONV_INLINE void transpose_impl(int64_t rows, int64_t cols, const T* src, int64_t src_ld, T* dst,
                                   int64_t dst_ld, bool fetch_ahead) {
  using X = Vec<T, 32>;
  constexpr int64_t L = X::kWidth;
  const int64_t full_cols = cols / L * L;
  const int64_t tiled_rows = dst_ld >= (rows + L - 1) / L * L ? rows : rows / L * L;
  for (int64_t r0 = 0; r0 < tiled_rows; r0 += L) {
    const int64_t tile_rows = std::min(L, tiled_rows - r0);
    // The rows of the next strip (after the last, the next tile's first
    // strip of the same rows, `cols` on), fetched a strip ahead: a strip's
    // rows are streams the hardware's prefetchers meet cold, and the loads
    // waited on memory (grad-weight's transpose of grad_out, wide shape:
    // 9-10% as many samples as its products, 7-8% with the fetches; Zen 5).
    // From the caches they cost up to 1.04x (same-pow2 grad-weight).
    const T* next = r0 + L < tiled_rows ? src + (r0 + L) * src_ld : src + cols;
    for (int64_t c0 = 0; c0 < full_cols; c0 += L) {
      if (fetch_ahead && c0 % (64 / static_cast<int64_t>(sizeof(T))) == 0)
        for (int64_t i = 0; i < L; ++i) prefetch_line(next + i * src_ld + c0);
      typename X::V v[L];
      for (int64_t i = 0; i < L; ++i) v[i] = i < tile_rows ? X::load(src + (r0 + i) * src_ld + c0) : typename X::V{};
      transpose_tile<T>(v);
      for (int64_t j = 0; j < L; ++j) X::store(dst + (c0 + j) * dst_ld + r0, v[j]);
    }
    // the edges element by element, copied as bytes (callers move other
    // 4-byte data through the float transpose: bits, never values)
    for (int64_t c = full_cols; c < cols; ++c)
      for (int64_t r = r0; r < r0 + tile_rows; ++r) std::memcpy(dst + c * dst_ld + r, src + r * src_ld + c, sizeof(T));
  }
  for (int64_t c = 0; c < cols; ++c)
    for (int64_t r = tiled_rows; r < rows; ++r) std::memcpy(dst + c * dst_ld + r, src + r * src_ld + c, sizeof(T));
}

// complex_products: an MB x NB block of sums of complex products over
// one vector of frequencies. P collects re*re and im*im lane by lane, Q
// re*im and im*re (B's pairs swapped): a sum's real part is P's even lane
// minus its odd one, its imaginary part Q's two lanes added. Two
// multiply-adds a complex product, and one shuffle per loaded vector of B.
template <typename V, int... Is>
ROWCONV_INLINE V swap_pairs(V v, std::integer_sequence<int, Is...>) {
  return __builtin_shufflevector(v, v, (Is ^ 1)...);
}
template <typename V, int W, int... Is>
ROWCONV_INLINE V complex_sums(V P, V Q, std::integer_sequence<int, Is...> lanes) {
  const V re = P - swap_pairs(P, lanes), im = Q + swap_pairs(Q, lanes);
  return __builtin_shufflevector(re, im, (Is % 2 == 0 ? Is : W + Is)...);
}

// Sums at out + m * o_m + n * o_n (m < MB, n < NB), one vector from A's rows
// at a_at + m * a_m and B's at b_at + n * b_n.
template <typename T, int Bytes, int MB, int NB>
ROWCONV_INLINE void complex_products_block(int64_t R, const T* const* A_rows, int64_t a_at, int64_t a_m,
                                           const T* const* B_rows, int64_t b_at, int64_t b_n, T* out,
                                           int64_t o_m, int64_t o_n) {
  using X = Vec<T, Bytes>;
  using V = typename X::V;
  constexpr auto lanes = std::make_integer_sequence<int, X::kWidth>{};
  V P[MB][NB] = {}, Q[MB][NB] = {};
  for (int64_t r = 0; r < R; ++r) {
    const T* a = A_rows[r] + a_at;
    const T* b = B_rows[r] + b_at;
    V bv[NB], bs[NB];
    for (int n = 0; n < NB; ++n) {
      bv[n] = X::load(b + n * b_n);
      bs[n] = swap_pairs(bv[n], lanes);
    }
    for (int m = 0; m < MB; ++m) {
      const V av = X::load(a + m * a_m);
      for (int n = 0; n < NB; ++n) {
        P[m][n] += av * bv[n];
        Q[m][n] += av * bs[n];
      }
    }
  }
  for (int m = 0; m < MB; ++m)
    for (int n = 0; n < NB; ++n) X::store(out + m * o_m + n * o_n, complex_sums<V, X::kWidth>(P[m][n], Q[m][n], lanes));
}

// The frequencies past the whole vectors, one complex number at a time,
// each sum formed as the vectors form theirs (re*re and im*im apart).
template <typename T>
ROWCONV_INLINE void complex_products_tail(int64_t M, int64_t N, int64_t R, int64_t from, int64_t to,
                                          const T* const* A_rows, int64_t a_m, const T* const* B_rows,
                                          int64_t b_n, T* out, int64_t o_m, int64_t o_n) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t f = from; f < to; f += 2) {
        T rr = 0, ii = 0, ri = 0, ir = 0;
        for (int64_t r = 0; r < R; ++r) {
          const T* a = A_rows[r] + m * a_m + f;
          const T* b = B_rows[r] + n * b_n + f;
          rr += a[0] * b[0];
          ii += a[1] * b[1];
          ri += a[0] * b[1];
          ir += a[1] * b[0];
        }
        out[m * o_m + n * o_n + f] = rr - ii;
        out[m * o_m + n * o_n + f + 1] = ri + ir;
      }
}

// Rows [m0, m0 + MB) of complex_products, every column: NB at a time, the
// last N % NB one at a time.
template <typename T, int Bytes, int MB, int NB>
ROWCONV_INLINE void complex_products_rows(int64_t m0, int64_t N, int64_t R, int64_t vector_floats,
                                          const T* const* A_rows, int64_t a_m, const T* const* B_rows,
                                          int64_t b_n, T* out, int64_t o_m, int64_t o_n) {
  constexpr int64_t kWidth = Vec<T, Bytes>::kWidth;
  int64_t n = 0;
  for (; n + NB <= N; n += NB)
    for (int64_t f = 0; f < vector_floats; f += kWidth)
      complex_products_block<T, Bytes, MB, NB>(R, A_rows, m0 * a_m + f, a_m, B_rows, n * b_n + f, b_n,
                                               out + m0 * o_m + n * o_n + f, o_m, o_n);
  for (; n < N; ++n)
    for (int64_t f = 0; f < vector_floats; f += kWidth)
      complex_products_block<T, Bytes, MB, 1>(R, A_rows, m0 * a_m + f, a_m, B_rows, n * b_n + f, b_n,
                                              out + m0 * o_m + n * o_n + f, o_m, o_n);
}

// complex_products with offsets in T (twice the complex numbers')
template <typename T, int Bytes, int MB, int NB>
ROWCONV_INLINE void complex_products_impl(int64_t M, int64_t N, int64_t R, int64_t F, const T* const* A_rows,
                                          int64_t a_m, const T* const* B_rows, int64_t b_n, T* out, int64_t o_m,
                                          int64_t o_n) {
  constexpr int64_t kWidth = Vec<T, Bytes>::kWidth;
  const int64_t floats = 2 * F, vector_floats = floats / kWidth * kWidth;
  int64_t m = 0;
  for (; m + MB <= M; m += MB)
    complex_products_rows<T, Bytes, MB, NB>(m, N, R, vector_floats, A_rows, a_m, B_rows, b_n, out, o_m, o_n);
  for (; m < M; ++m)  // (blocks of one row: the remainder is at most MB - 1 rows)
    complex_products_rows<T, Bytes, 1, NB>(m, N, R, vector_floats, A_rows, a_m, B_rows, b_n, out, o_m, o_n);
  complex_products_tail<T>(M, N, R, vector_floats, floats, A_rows, a_m, B_rows, b_n, out, o_m, o_n);
}

// One instantiation per instruction set: vector bytes and block shapes fitted
// to its registers (AVX-512: 32 vector registers; AVX2 and SSE2: 16).
#define ROWCONV_DEFINE_ISA(NAME, TARGET, BYTES, MR, NV, DOT_MR, DOT_NR, DOT_NA, DOT_TG)        \
  template <typename T>                                                                       \
  TARGET void gemm_rows_##NAME(int64_t M, int64_t N, int64_t R, const T* const* A_rows,      \
                               const T* const* B_rows, T* C, int64_t ldc) {                   \
    gemm_rows_impl<T, BYTES, MR, NV>(M, N, R, A_rows, B_rows, C, ldc, AddToC{});             \
  }                                                                                           \
  template <typename T>                                                                       \
  TARGET __attribute__((noinline)) void gemm_rows_set_panels_##NAME(                          \
      int64_t M, int64_t N, int64_t R, const T* const* A_rows, const T* const* B_rows,        \
      const T* init, T* C, int64_t ldc, int64_t panel) {                                      \
    gemm_rows_panels_impl<T, BYTES, MR, NV>(M, N, R, A_rows, B_rows, C, ldc, SetC<T>{init, N}, panel); \
  }                                                                                           \
  template <typename T>                                                                       \
  TARGET __attribute__((noinline)) void gemm_rows_set_columns_##NAME(                         \
      int64_t M, int64_t N, int64_t R, const T* const* A_rows, const T* const* B_rows,        \
      const T* init, T* C, int64_t ldc) {                                                     \
    gemm_rows_impl<T, BYTES, MR, NV>(M, N, R, A_rows, B_rows, C, ldc, SetC<T>{init, N});     \
  }                                                                                           \
  template <typename T>                                                                       \
  TARGET __attribute__((noinline)) void gemm_rows_set_columns_fetching_##NAME(                \
      int64_t M, int64_t N, int64_t R, const T* const* A_rows, const T* const* B_rows,        \
      const T* init, T* C, int64_t ldc, LineFetch* fetch) {                                   \
    gemm_rows_impl<T, BYTES, MR, NV>(M, N, R, A_rows, B_rows, C, ldc, SetC<T, false, true>{init, N, 0, fetch}); \
  }                                                                                           \
  template <typename T>                                                                       \
  TARGET void gemm_rows_set_##NAME(int64_t M, int64_t N, int64_t R, const T* const* A_rows,  \
                                   const T* const* B_rows, const T* init, T* C, int64_t ldc,   \
                                   LineFetch* fetch) {                                        \
    constexpr int64_t step = NV * (BYTES / static_cast<int64_t>(sizeof(T)));                  \
    const int64_t panel = block_panel(M / MR * MR, MR, step, R * int64_t{sizeof(T)}, ldc * int64_t{sizeof(T)}); \
    if (panel != step) /* (panels: never fetching) */                                         \
      return gemm_rows_set_panels_##NAME<T>(M, N, R, A_rows, B_rows, init, C, ldc, panel);    \
    if (fetch) return gemm_rows_set_columns_fetching_##NAME<T>(M, N, R, A_rows, B_rows, init, C, ldc, fetch); \
    gemm_rows_set_columns_##NAME<T>(M, N, R, A_rows, B_rows, init, C, ldc);                   \
  }                                                                                           \
  template <typename T>                                                                       \
  TARGET __attribute__((noinline)) void gemm_rows_set_streaming_fetching_##NAME(              \
      int64_t M, int64_t N, int64_t R, const T* const* A_rows, const T* const* B_rows,        \
      const T* init, T* C, int64_t ldc, LineFetch* fetch) {                                   \
    gemm_rows_streaming_impl<T, BYTES, MR, NV, true>(M, N, R, A_rows, B_rows, init, C, ldc, fetch); \
  }                                                                                           \
  template <typename T>                                                                       \
  TARGET void gemm_rows_set_streaming_##NAME(int64_t M, int64_t N, int64_t R, const T* const* A_rows, \
                                             const T* const* B_rows, const T* init, T* C, int64_t ldc, \
                                             LineFetch* fetch) {                              \
    if (fetch) return gemm_rows_set_streaming_fetching_##NAME<T>(M, N, R, A_rows, B_rows, init, C, ldc, fetch); \
    gemm_rows_streaming_impl<T, BYTES, MR, NV, false>(M, N, R, A_rows, B_rows, init, C, ldc, nullptr); \
  }                                                                                           \
  /* (the table's three taps kernels: set, streaming, streaming unfetched) */                \
  template <typename T, bool Streaming, bool Fetch>                                           \
  TARGET void taps_row_##NAME(int64_t N, int64_t K, int64_t step, const T* w, const T* x,    \
                              const T* init, T* y) {                                          \
    taps_row_impl<T, BYTES, Streaming, Fetch>(N, K, step, w, x, init, y);                     \
  }                                                                                           \
  template <typename T>                                                                       \
  TARGET void dot_rows_##NAME(int64_t M, int64_t R, int64_t N, const T* const* A_rows,        \
                              const T* const* B_rows, T* P, int64_t ldp, LineFetch* fetch) {  \
    if (fetch) return dot_rows_impl<T, BYTES, DOT_MR, DOT_NR, false, true>(M, R, N, A_rows, B_rows, P, ldp, 1, fetch); \
    dot_rows_impl<T, BYTES, DOT_MR, DOT_NR>(M, R, N, A_rows, B_rows, P, ldp);                \
  }                                                                                           \
  template <typename T>                                                                       \
  TARGET void dot_rows_sums_##NAME(int64_t M, int64_t R, int64_t N, const T* const* A_rows,   \
                                   const T* const* B_rows, T* out, int64_t ldo, int64_t ldr) { \
    dot_rows_impl<T, BYTES, DOT_MR, DOT_NR, true>(M, R, N, A_rows, B_rows, out, ldo, ldr);   \
  }                                                                                           \
  template <typename T>                                                                       \
  TARGET void taps_dot_row_##NAME(int64_t N, int64_t K, int64_t step, const T* a,            \
                                  const T* const* B_rows, T* P, LineFetch* fetch) {           \
    taps_dot_row_impl<T, BYTES, DOT_NA, DOT_TG, DOT_MR, DOT_NR>(N, K, step, a, B_rows, P, fetch); \
  }                                                                                           \
  template <typename T>                                                                       \
  TARGET void reduce_lanes_##NAME(int64_t count, const T* P, T* out) {                        \
    reduce_lanes_impl<T, BYTES>(count, P, out);                                               \
  }                                                                                           \
  template <typename T>                                                                       \
  TARGET void transpose_##NAME(int64_t rows, int64_t cols, const T* src, int64_t src_ld, T* dst, \
                               int64_t dst_ld, bool fetch_ahead) {                            \
    transpose_impl<T>(rows, cols, src, src_ld, dst, dst_ld, fetch_ahead);                    \
  }                                                                                           \
  template <typename T>                                                                       \
  TARGET void add_partials16_##NAME(int64_t n, const T* row, double* part) {                  \
    add_partials16_impl<T, BYTES>(n, row, part);                                              \
  }                                                                                           \
  template <typename T>                                                                       \
  TARGET void complex_products_##NAME(int64_t M, int64_t N, int64_t R, int64_t F,             \
                                      const T* const* A_rows, int64_t a_m, const T* const* B_rows, \
                                      int64_t b_n, T* out, int64_t o_m, int64_t o_n) {        \
    /* 4 x 2 blocks take 16 of AVX-512's 32 registers for sums, 2 x 2 8 of 16 */              \
    complex_products_impl<T, BYTES, BYTES == 64 ? 4 : 2, 2>(M, N, R, F, A_rows, 2 * a_m, B_rows, 2 * b_n, out, 2 * o_m, 2 * o_n); \
  }                                                                                           \
  template <typename T>                                                                       \
  MicroKernels<T> kernels_##NAME() {                                                          \
    return {&gemm_rows_##NAME<T>, &gemm_rows_set_##NAME<T>, &gemm_rows_set_streaming_##NAME<T>,         \
            &taps_row_##NAME<T, false, false>, &taps_row_##NAME<T, true, true>,               \
            &taps_row_##NAME<T, true, false>,                                                 \
            &dot_rows_##NAME<T>, &dot_rows_sums_##NAME<T>, &taps_dot_row_##NAME<T>,           \
            &reduce_lanes_##NAME<T>, &transpose_##NAME<T>, &add_partials16_##NAME<T>,         \
            &complex_products_##NAME<T>,                                                      \
            BYTES / static_cast<int64_t>(sizeof(T)), DOT_MR, MR, NV * BYTES / static_cast<int64_t>(sizeof(T))}; \
  }

}  // namespace
}  // namespace rowconv::cpu

// One translation unit's instruction set: the kernels of ROWCONV_DEFINE_ISA
// (its arguments), and their table as isa_kernels_<NAME> (microkernels_isa.h).
#define ROWCONV_COMPILE_ISA(NAME, ...)                     \
  namespace rowconv::cpu {                                 \
  namespace {                                              \
  ROWCONV_DEFINE_ISA(NAME, __VA_ARGS__)                    \
  }                                                        \
  template <typename T>                                    \
  MicroKernels<T> isa_kernels_##NAME() {                   \
    return kernels_##NAME<T>();                            \
  }                                                        \
  template MicroKernels<float> isa_kernels_##NAME<float>();   \
  template MicroKernels<double> isa_kernels_##NAME<double>(); \
  }
