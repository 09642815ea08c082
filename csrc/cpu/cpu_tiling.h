// Tiling and input gathering shared by the CPU kernels.
//
// Every kernel works on tiles of positions of one (b, h, group): it loads the
// windows the tile reads (converted to the accumulation type, zero where they
// hang over the padding: no padded copy of the input is made) and hands the
// micro-kernels row pointers into them. Each output element is owned by one
// work item and reduced in an order fixed by the shape alone, so results do
// not depend on the number of threads.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "../row_conv1d_params.h"
#include "cache_residency.h"
#include "convert_runs.h"
#include "microkernels.h"

namespace rowconv::cpu {

// Tile width (a multiple of 64) such that `channels` rows of it hold about
// 32768 elements (128 KiB of float), and no wider than `length` rounded up.
inline int64_t tile_width(int64_t channels, int64_t length) {
  const int64_t target = 32768 / std::max<int64_t>(channels, 1);
  const int64_t tile = std::clamp<int64_t>(target, 64, 1024) / 64 * 64;
  return std::min(tile, std::max<int64_t>((length + 63) / 64 * 64, 64));
}

inline int64_t tile_count(int64_t length, int64_t tile) { return (length + tile - 1) / tile; }

// A work item of the forward and grad-input kernels: one (b, h, group) and
// positions [t0, t0 + n) of a row of `length`, items numbered with the tile
// fastest, then the group, h and b (neighbouring items: neighbouring memory).
struct TiledItem {
  int64_t b, h, g, t0, n;
};
inline TiledItem tiled_item(const RowConvParams& p, int64_t item, int64_t tiles, int64_t tile, int64_t length) {
  const int64_t t0 = item % tiles * tile;
  const int64_t rest = item / tiles;
  return {rest / p.groups / p.rows, rest / p.groups % p.rows, rest % p.groups, t0, std::min(tile, length - t0)};
}
// The item after `it` in that numbering, without tiled_item's divisions
// (a 512-wide chunk of depthwise rows is one item a row).
inline void next_tiled_item(const RowConvParams& p, int64_t tile, int64_t length, TiledItem& it) {
  it.t0 += tile;
  if (it.t0 >= length) {
    it.t0 = 0;
    if (++it.g == p.groups) {
      it.g = 0;
      if (++it.h == p.rows) it.h = 0, ++it.b;
    }
  }
  it.n = std::min(tile, length - it.t0);
}

// The chunks of items [0, items) that parallel_chunks hands out to one
// thread. Each thread owns a contiguous share of the items (thread t of T:
// [t * items / T, (t + 1) * items / T)) and takes its chunks from the
// front of its share, then from the fronts of the others' shares (t + 1,
// t + 2, ...) once its own is done: a thread's chunks follow each other in
// memory, where one counter for all had the threads' chunks alternate.
// Each call split into 8 chunks a thread, the chunks' starts cost: forum
// (32,15,10,8192) K 3 causal in 16 calls (of 512 columns, or of 2 batch
// entries) took 1.09-1.10x the time of one call, 1.02x with 2 chunks a
// thread (Zen 4, 2 threads, in-process). Owned shares with item_to_fetch,
// against one counter without it (in-process, 2 runs of 14 rounds): the 16
// calls 0.94-0.98x the time, one call 1.00-1.01x; bench_cpu's shapes
// 0.87-1.02x (pow2 'same' grad-input 0.87x; forum grad-input and narrow
// forward read 1.05-1.08x in a first run of 15 rounds, 0.95-1.00x in a
// second of 25).
// next(begin, end): the next chunk (false when none is left);
// next.upcoming(): the first item of the chunk that the next call would
// most likely hand out (-1 when none), for item_to_fetch.
class ItemChunks {
 public:
  ItemChunks(std::atomic<int64_t>* fronts, int64_t threads, int64_t thread, int64_t chunk, int64_t items)
      : fronts_(fronts), threads_(threads), thread_(thread), chunk_(chunk), items_(items) {}
  bool operator()(int64_t& begin, int64_t& end) {
    for (; visited_ < threads_; ++visited_) {
      const int64_t share = (thread_ + visited_) % threads_, share_end = share_end_of(share);
      begin = fronts_[share].fetch_add(chunk_, std::memory_order_relaxed);
      if (begin < share_end) {
        end = std::min(share_end, begin + chunk_);
        return true;
      }
    }
    return false;
  }
  int64_t upcoming() const {
    for (int64_t visited = visited_; visited < threads_; ++visited) {
      const int64_t share = (thread_ + visited) % threads_;
      const int64_t front = fronts_[share].load(std::memory_order_relaxed);
      if (front < share_end_of(share)) return front;
    }
    return -1;
  }

 private:
  int64_t share_end_of(int64_t share) const { return (share + 1) * items_ / threads_; }
  std::atomic<int64_t>* fronts_;
  int64_t threads_, thread_, chunk_, items_;
  int64_t visited_ = 0;
};

// Runs body(next) once on each thread of an at::parallel_for, next the
// thread's ItemChunks: threads take chunks as they finish them, so a thread
// that the host slows down (a core shared with another machine) takes fewer
// instead of holding up the others at the join. Items must be independent
// of each other's order (each owns its outputs): results do not depend on
// which thread took which chunk.
template <typename Body>
void parallel_chunks(int64_t items, int64_t grain, const Body& body) {
  if (items <= 0) return;
  const int64_t threads = std::clamp<int64_t>((items + grain - 1) / grain, 1, at::get_num_threads());
  const int64_t chunk = std::max<int64_t>(grain, items / (threads * 8));  // about 8 a thread
  std::unique_ptr<std::atomic<int64_t>[]> fronts(new std::atomic<int64_t>[threads]);
  for (int64_t t = 0; t < threads; ++t) fronts[t].store(t * items / threads, std::memory_order_relaxed);
  at::parallel_for(0, threads, 1, [&](int64_t first, int64_t last) {
    for (int64_t t = first; t < last; ++t) body(ItemChunks(fronts.get(), threads, t, chunk, items));
  });
}

// The item whose operands a kernel fetches while it computes item `item`
// (`it`) of its chunk [.., end): the chunk's next, and after the chunk's
// last, the first of the chunk that this thread will most likely take next
// (next.upcoming(); where another thread takes it first, only the fetch
// is lost), so that a chunk's first item does not come cold from memory.
// Sets `it` to that item; false where there is none.
inline bool item_to_fetch(const RowConvParams& p, const ItemChunks& next, int64_t item, int64_t end, int64_t tiles,
                          int64_t tile, int64_t length, TiledItem& it) {
  if (item + 1 < end) {
    next_tiled_item(p, tile, length, it);
    return true;
  }
  const int64_t upcoming = next.upcoming();
  if (upcoming < 0) return false;
  it = tiled_item(p, upcoming, tiles, tile, length);
  return true;
}

// Whether a kernel writes an output of `bytes` to memory past the caches
// (gemm_rows_set_streaming): from 3/4 of the last-level cache on, the size
// from which glibc's memcpy stores non-temporally. Such an output has left
// the cache before anyone reads it anyway, and plain stores would first read
// every line of it from memory (forward, Zen 4, 2 threads, causal padding:
// (64,1024,1,4096) depthwise 0.81-0.84x the time, (8,64,16,1024) C 64 K 5
// 0.91-0.93x).
inline bool streams_to_memory(int64_t bytes) { return bytes >= l3_cache_bytes() / 4 * 3; }

// The memory x (or grad_out) spans: from its first element to its last.
inline MemoryRange strided_range(const void* data, int64_t element_bytes, const int64_t (&sizes)[4],
                                 const int64_t (&strides)[4]) {
  int64_t last = 0;
  for (int d = 0; d < 4; ++d) {
    if (sizes[d] <= 0) return {static_cast<const char*>(data), 0};
    last += (sizes[d] - 1) * strides[d];
  }
  return {static_cast<const char*>(data), (last + 1) * element_bytes};
}
inline MemoryRange input_range(const RowConvParams& p, const void* x, int64_t element_bytes) {
  return strided_range(x, element_bytes, {p.batch, p.in_channels, p.rows, p.width},
                       {p.in_stride_b, p.in_stride_c, p.in_stride_h, p.in_stride_w});
}
inline MemoryRange grad_out_range(const RowConvParams& p, const void* grad_out, int64_t element_bytes) {
  return strided_range(grad_out, element_bytes, {p.batch, p.out_channels, p.rows, p.out_width},
                       {p.gout_stride_b, p.gout_stride_c, p.gout_stride_h, p.gout_stride_w});
}

// p with operands_from_memory decided for this call, whose kernel reads x,
// grad_out or both (a null one: not read). x and grad_out (or y), which
// each direction reads or writes, of 3/4 of the last-level cache or more
// together (streams_to_memory) come from memory. Below a quarter of it they
// are taken to be in the caches. Between, sizes cannot tell: a chunk of a long stream
// comes from memory, the same chunk just written by the layer before is in
// the cache, and how much of the cache a VM gets depends on its neighbours.
// There the sampled lines tell (sampled_lines_from_memory). Zen 4 VM, forum
// (B,15,10,512) K 3 causal, repeated, in an hour when they ran as from
// memory, fetching over not: x and y of 18.8 MB 0.82x the time, 23.4 MB
// 0.83x; from the cache 9.4 MB 1.03x, 4.7 MB 1.04x (the probe says cache
// there, and nothing is fetched). Chunks of 512 of (32,15,10,8192) with
// carried state, probe over the size rule: 0.81x.
template <typename T>
inline RowConvParams with_operand_residency(RowConvParams p, const T* x, const T* grad_out) {
  const int64_t element_bytes = sizeof(T);
  const int64_t bytes =
      p.batch * p.rows * (p.in_channels * p.width + p.out_channels * p.out_width) * element_bytes;
  MemoryRange reads[2];
  int count = 0;
  if (grad_out) reads[count++] = grad_out_range(p, grad_out, element_bytes);
  if (x) reads[count++] = input_range(p, x, element_bytes);
  p.operands_from_memory =
      streams_to_memory(bytes) || (bytes >= l3_cache_bytes() / 4 && sampled_lines_from_memory(reads, count));
  return p;
}

// Fetches the lines of a run of `count` elements (count >= 1) into L1, or
// into L2 only (kIntoL2).
template <bool kIntoL2, typename T>
inline void prefetch_run(const T* first, int64_t count) {
  for (int64_t i = 0; i < count; i += 64 / static_cast<int64_t>(sizeof(T))) prefetch_line<kIntoL2>(first + i);
  prefetch_line<kIntoL2>(first + count - 1);  // (the last line, where the run starts inside a line)
}

// The lines of `count` rows' first `elements` (every line they touch)
template <typename T>
inline int64_t lines_of_rows(int64_t count, int64_t elements) {
  return count * ((elements * static_cast<int64_t>(sizeof(T)) + 63) / 64);
}
// Whether the products' fetches ahead (LineFetch) go to L2 only
// (prefetcht1): where the L1d holds less than 48 KiB (Zen 4: 32 KiB). A
// product's next step (16-128 KiB of rows) fetched into such an L1 pushed
// out the lines it was about to read. Zen 4, in-process, 2 threads, same
// bits, grad-weight's dot form, into L2 (and no row of taps fetching, its
// rule) against into L1: (64,4,64,512) K 7 0.86x the time, (32,8,32,2048)
// K 9 0.87-0.93x, (32,15,10,4096) K 3 0.89-0.91x, (64,2,64,2048) Cout 4 K 5
// 0.65x, (32,4,64,2048) K 3 0.64x, (64,2,64,4096) K 7 0.72x, (32,5,64,2048)
// K 5 0.73x, (16,16,8,4096) Cout 16 K 5 groups 4 0.73x; the forward and
// grad-input: (16,8,32,1024) Cout 24 K 5 grad-input 0.82x, forum-long,
// (32,8,32,2048) K 9, (16,32,16,2048) K 3, K 33 1.00-1.01x. On Zen 5 (48
// KiB) prefetcht1 took 1.0-1.05x the time of prefetcht0 (session 29).
// (Decided once: fetch_window_ahead asks once a window, and l1d_cache_bytes
// is a call.)
inline bool fetches_into_l2() {
  static const bool into_l2 = l1d_cache_bytes() < 48 * 1024;
  return into_l2;
}

// Whether a product fetches the next item's (or step's) operands as it goes
// (the forward's and grad-input's next item, grad-weight's next step:
// LineFetch): only where the L2 holds 1 MiB or more (Zen 4, Zen 5; Zen 3:
// 512 KiB). On Zen 3 (AVX2), in-process against not fetching, same bits, 2
// threads, those fetches cost grad-weight's dot form 1.15-1.65x the time
// ((32,15,10,4096) K 3, (32,8,32,2048) K 9, (64,2,64,2048) Cout 4 K 5,
// narrow (64,4,64,512) K 7), the forward 1.06-1.17x (narrow, K 9, Cout 4
// K 5; forum-long 0.97-1.01x) and grad-input 1.0-1.11x; where they paid
// most on Zen 5 ((16,8,32,1024) Cout 24 K 5 grad-input 0.39x the time,
// (32,8,32,2048) K 9, (16,32,16,2048) Cout 32 K 3, (16,12,16,2048) K 7,
// (8,16,16,4096) K 5, padded forum-long) they bought nothing on Zen 3
// (forward and grad-input 0.97-1.02x without). Grad-weight's item
// holds up to half the L2 in accumulators (its runs) and a tile of about
// 128 KiB: with the next step's lines fetched beside them, a 512 KiB L2
// overflows. The forward's loss has no such count to explain it (its
// tiles and the next ones fit); AVX2's product steps of 8 lanes also let
// narrow and Cout 4 K 5 forwards fetch where AVX-512's do not. The copied
// windows' fetches (fetch_window_ahead) are kept there: without them the
// wide grad-weight took 1.15x the time, the others 0.97-1.04x.
inline bool products_fetch_ahead() {
  static const bool fetch = l2_cache_bytes() >= 1024 * 1024;
  return fetch;
}

// Fetches as a product goes (LineFetch) of the next product's `count` rows,
// the first `elements` of each, spread over the product's `steps` steps
// (product_steps).
template <typename T>
inline LineFetch spread_fetch(const char* const* rows, int64_t count, int64_t elements, int64_t steps) {
  const int64_t lines = lines_of_rows<T>(count, elements);
  return {rows, rows + count, 0, elements * static_cast<int64_t>(sizeof(T)) + 63, (lines + steps - 1) / steps,
          std::max<int64_t>(1, steps * 16 / std::max<int64_t>(lines, 1)), fetches_into_l2()};
}
// The steps of 16 multiply-adds of a product of `rows` rows of `terms`
// terms over n columns, `lanes` a vector.
inline int64_t product_steps(int64_t rows, int64_t terms, int64_t n, int64_t lanes) {
  return std::max<int64_t>(1, rows * terms * ((n + lanes - 1) / lanes) / 16);
}
// The positions [first, end) of x's row that outputs [t0, t0 + n) read at
// stride 1, within the row.
struct RowSpan {
  int64_t first, end;
};
inline RowSpan input_span(const RowConvParams& p, int64_t t0, int64_t n) {
  return {std::clamp<int64_t>(p.input_position(t0, 0), 0, p.width),
          std::clamp<int64_t>(p.input_position(t0 + n - 1, p.kernel_size - 1) + 1, 0, p.width)};
}

// The windows a tile copies (the forward's of x, grad-input's of grad_out)
// are one short run of each channel's row, each a stream that the
// hardware's prefetchers meet cold: where the operand comes from memory,
// each copy waited on it (copy_bytes: 11% of the wide forward's and of its
// grad-input's samples, Zen 5). So before copying channel c of [first, end),
// a kernel fetches the window kWindowsAhead channels on, past the last
// channel the next tile's (the same channels, one tile further along the
// row): row(channel) is a channel's row (unit steps along it), the window
// `count` elements from position `at`, the next tile's from `next_at`.
// Operands that stay in the caches are not fetched (operands_from_memory;
// the fetches' instructions took the forum grad-input 1.06x the time).
// Into L2 only where the products' fetches go there (fetches_into_l2: an
// L1d under 48 KiB, where 8 windows of 1-4 KiB push out the product's
// operands): Zen 4, in-process against into L1, same bits, 15-21 rounds:
// (32,15,10,4096) K 3 grad-input 0.85-0.88x the time, 'same' K 4
// grad-input 0.88-0.90x, stride 2 forward 0.86-0.87x and grad-input
// 0.88-0.90x; wide (8,64,16,1024) K 5 forward and grad-input 0.95-0.97x;
// grouped, causal, (32,8,32,2048) K 9 and the grad-weights 0.98-1.02x.
// Tried on Zen 4 and not kept: 16 or 4 channels ahead instead of 8
// (0.98-1.03x), grad-weight's transposed strips into L2 (0.99-1.01x), the
// depthwise kernels' fetch_ahead into L2 (1.13-1.16x slower).
constexpr int64_t kWindowsAhead = 8;
template <typename Row>
inline void fetch_window_ahead(int64_t c, int64_t first, int64_t end, int64_t at, int64_t next_at, int64_t count,
                               const Row& row) {
  int64_t ahead = c + std::min(kWindowsAhead, end - first);  // (few channels: the next tile's same channel)
  const bool next_tile = ahead >= end;
  if (next_tile) ahead = first + (ahead - end);
  if (ahead >= end) return;
  const auto* window = row(ahead) + std::max<int64_t>(0, next_tile ? next_at : at);
  if (fetches_into_l2())
    prefetch_run<true>(window, count);
  else
    prefetch_run<false>(window, count);
}

// Whether a kernel stores its result of `bytes` past the caches
// (streams_to_memory), given the products that write it: `rows` result rows
// of `terms` multiply-adds each (a row of taps: one row). Products of 3-15
// rows of 8 terms or more store plainly. Zen 3, 2 threads, forward, plain
// stores over streaming ones, alternated in one process (same bits), as
// (B,C,H,W) K, C in = out, rows x terms:
//   plainly: (64,4,64,512) K 7, 4 x 28: 0.73x the time (grad-input 0.82-0.90x
//   in alternating processes); (64,4,64,2048) K 2, 4 x 8: 0.81x; K 3, 4 x 12:
//   0.97x; (64,6,32,2048) K 2, 6 x 12: 0.92x; (32,8,64,2048) K 2, 8 x 16:
//   0.93x; (32,15,10,4096) K 3, 15 x 45: 0.90x;
//   streaming: (64,4,64,2048) K 1, 4 x 4: plainly 1.08x; (64,2,64,4096) K 3,
//   K 5, K 7, 2 rows: 1.03x, 1.08x, 1.01x; (32,8,64,2048) K 1, 8 x 8: 1.02x
//   (the one loss of the rule); 16 rows K 5 0.95-1.05x, 32 rows K 3
//   1.01-1.06x, 64 rows K 1 1.01-1.03x (alternating processes); a row of
//   taps (64,1,1024,4096) K 4 1.03-1.41x.
// On Zen 4 (session 13, paired, the former streaming stores) streaming had
// gained nothing on 4 x 28 (0.99x), 0.91-0.93x on 64 x 320.
// (split_at_first_line's limit, below)
constexpr int64_t kSplitMaxTerms = 32;
// Session 30 (Zen 5): one or two rows of many terms whose result rows do
// not start on 64-byte lines (a valid convolution's W - K + 1) store
// plainly too: a row of taps of kSplitMaxTerms terms or more (whose tiles'
// heads split_at_first_line leaves unsplit, so that most of its vectors
// were stored plainly anyway, inside the streaming kernel), two rows of 8
// or more. Forward, 2 threads, alternating processes against streaming (6
// rounds, same bits): (16,1,256,8192) K 64 (dw-long) 0.78-0.83x the time,
// K 32 0.91x, (64,1,512,2048) K 40 0.85x; (64,2,64,4096) Cout 2 K 7 0.68x,
// K 15 0.74x, (32,2,64,2048) K 5 0.93x; unchanged where they stream (K 3 of
// two rows, a row of K 8 or 24: 1.0x). Rows that start on lines keep
// streaming, where it still wins (in-process, plainly: a row of K 33 on
// rows of 8160 1.54x the time, K 24 'same' 1.11x, dw-long's grad-input on
// rows of 8192 1.34x; two rows of K 7 on rows of 4096: 1.07-1.10x, processes).
// Zen 3 had measured two rows (64,2,64,4096) K 3, 5, 7, rows off the lines,
// 1.03x, 1.08x, 1.01x slower plainly (above); not measured on Zen 4.
inline bool streams_result(int64_t bytes, int64_t rows, int64_t terms, int64_t row_bytes) {
  const bool few_rows_of_many_terms = rows > 2 && rows < 16 && terms >= 8;
  const bool off_lines_of_many_terms =
      row_bytes % 64 != 0 && ((rows == 1 && terms >= kSplitMaxTerms) || (rows == 2 && terms >= 8));
  return !few_rows_of_many_terms && !off_lines_of_many_terms && streams_to_memory(bytes);
}

// Smallest number of work items worth handing to a thread, given the
// multiply-adds of one item, so that tiny problems stay on one thread.
inline int64_t grain_for(int64_t madds_per_item) {
  constexpr int64_t kMinMaddsPerThread = 32768;  // a few microseconds of work
  return std::max<int64_t>(1, kMinMaddsPerThread / std::max<int64_t>(madds_per_item, 1));
}

// The first u in [0, span] whose position start + u * pos_step lies at or
// past a row's start (the window of load_window below).
inline int64_t window_first_in_row(int64_t start, int64_t span, int64_t pos_step = 1) {
  return std::clamp<int64_t>(ceil_div(-start, pos_step), 0, span);
}

// out[u] = src[2 * u] for u < n, reading nothing past src[2 * (n - 1)]:
// float and double in 16-byte vectors (two loads, the even lanes of both
// shuffled into one), the rest element by element. A stride-2 convolution's
// phases: element by element they took 29% of the forum shape's forward at
// stride 2 and 25% of its grad-weight; in vectors, in-process A/B on Zen 3
// (2 threads, same bits): forum at stride 2 forward 0.85x the time,
// grad-weight 0.87x, depthwise (16,1,64,4096) K 4 0.72x / 0.69x, (8,16,8,4096)
// K 5 0.89x / 0.91x, (8,64,16,1024) K 5 0.95x / 0.96x.
template <typename scalar_t, typename acc_t>
inline void copy_every_other(const scalar_t* src, int64_t n, acc_t* out) {
  int64_t u = 0;
  if constexpr (std::is_same_v<scalar_t, acc_t> && (std::is_same_v<acc_t, float> || std::is_same_v<acc_t, double>)) {
    typedef acc_t V __attribute__((vector_size(16)));
    constexpr int64_t kWidth = 16 / sizeof(acc_t);
    for (; u + kWidth < n; u += kWidth) {  // reads src[2u, 2u + 2 * kWidth), all <= 2(n - 1)
      V a, b, even;
      std::memcpy(&a, src + 2 * u, sizeof(V));
      std::memcpy(&b, src + 2 * u + kWidth, sizeof(V));
      if constexpr (kWidth == 4) {
        even = __builtin_shufflevector(a, b, 0, 2, 4, 6);
      } else {
        even = __builtin_shufflevector(a, b, 0, 2);
      }
      std::memcpy(out + u, &even, sizeof(V));
    }
  }
  for (; u < n; ++u) out[u] = static_cast<acc_t>(src[2 * u]);
}

// Whether load_window's positions [start, start + span) of a row of
// `length` (unit steps) lie inside it: then the window is the row itself,
// read in place (the bf16 pair forms: one copy of the input fewer; the wide
// bf16 forward 0.91x the time, its backward 0.95x, Zen 5).
inline bool window_in_row(int64_t step, int64_t start, int64_t span, int64_t length) {
  return step == 1 && start >= 0 && start + span <= length;
}

// dst[u] = row[(start + u * pos_step) * step] for u in [0, span), zero where
// the position falls outside [0, length): a window of a row of x or grad_out
// (every pos_step-th position), converted to the accumulation type. With a
// prefix row (x's carried state), positions [-prefix_length, 0) read
// prefix_row[prefix_position(pos) * prefix_step] instead of zeros
// (virtual_source in row_conv1d_params.h).
template <typename scalar_t, typename acc_t>
void load_window(const scalar_t* row, int64_t length, int64_t step, int64_t start, int64_t span,
                 acc_t* dst, int64_t pos_step = 1, const scalar_t* prefix_row = nullptr,
                 int64_t prefix_length = 0, int64_t prefix_step = 0) {
  // u in [lo, hi) have positions inside the row, u in [from_prefix, lo) inside the prefix
  const int64_t lo = window_first_in_row(start, span, pos_step);
  const int64_t hi = std::clamp<int64_t>(ceil_div(length - start, pos_step), lo, span);
  const int64_t from_prefix = std::clamp<int64_t>(ceil_div(-prefix_length - start, pos_step), 0, lo);
  std::fill(dst, dst + from_prefix, acc_t(0));
  for (int64_t u = from_prefix; u < lo; ++u)
    dst[u] = static_cast<acc_t>(
        prefix_row[prefix_position(start + u * pos_step, prefix_length) * prefix_step]);
  const scalar_t* src = row + (start + lo * pos_step) * step;
  acc_t* out = dst + lo;
  const int64_t src_step = step * pos_step;
  if (src_step == 1) {  // the common case: a vector conversion
    load_run(src, hi - lo, out);
  } else if (src_step == 2) {  // every other element (a stride-2 phase): in vectors
    copy_every_other(src, hi - lo, out);
  } else {
    for (int64_t u = 0; u < hi - lo; ++u) out[u] = static_cast<acc_t>(src[u * src_step]);
  }
  std::fill(dst + hi, dst + span, acc_t(0));
}

// Elements of acc_t in a 64-byte cache line: the room a window buffer keeps
// in front of a window for load_window_line_aligned.
template <typename acc_t>
constexpr int64_t kLineElements = 64 / static_cast<int64_t>(sizeof(acc_t));

// Where p lies on its 64-byte cache line, in elements of T (p on a T
// boundary): past the line's start, and up to the next line's (0 on a line).
template <typename T>
inline int64_t elements_past_line(const T* p) {
  return static_cast<int64_t>(reinterpret_cast<uintptr_t>(p) % 64 / sizeof(T));
}
template <typename T>
inline int64_t elements_to_next_line(const T* p) {
  return (kLineElements<T> - elements_past_line(p)) % kLineElements<T>;
}

// load_window_line_aligned for unit steps along the row and the prefix, one
// position a step and no conversion: plain loops inlined into the caller,
// without load_window's divisions, fills and calls (a tile's head, which
// reads the carried state, is 16-20 elements a row of a depthwise chunk:
// 0.98x the chunks' time; the same loops in the out-of-line load_window
// were 5-7% slower).
template <typename T>
inline __attribute__((always_inline)) T* load_unit_window_line_aligned(const T* row, int64_t length, int64_t start,
                                                                       int64_t span, T* room, const T* prefix_row,
                                                                       int64_t prefix_length) {
  const int64_t lo = std::clamp<int64_t>(-start, 0, span), hi = std::clamp<int64_t>(length - start, lo, span);
  T* dst = room + elements_to_next_line(room + lo);
  // the carried state is read a few elements a row: its lines fetched 4 ahead
  if (prefix_row) __builtin_prefetch(prefix_row + 256 / sizeof(T));
  for (int64_t u = 0; u < lo; ++u) {  // the prefix, or zeros before it
    const int64_t pos = start + u;
    dst[u] = pos >= -prefix_length ? prefix_row[prefix_position(pos, prefix_length)] : T(0);
  }
  const T* src = row + (start + lo);  // (no pointer before the row: positions from lo on)
  if (hi - lo <= 64) {
    for (int64_t u = 0; u < hi - lo; ++u) dst[lo + u] = src[u];
  } else {
    load_run(src, hi - lo, dst + lo);
  }
  for (int64_t u = hi; u < span; ++u) dst[u] = T(0);
  return dst;
}

// load_window into room + shift, shift in [0, kLineElements) such that the
// first element copied from the row (after any leading zeros or prefix)
// lands on a 64-byte boundary; returns room + shift, the window's u = 0.
// room holds span + kLineElements - 1 elements. Why: a copy whose stores
// straddle cache lines ran 1.3-1.6x slower on a memory-bound depthwise
// forward (Zen 4, 2 threads, rows of 512 or 1024 floats whose causal window
// began 3 zeros in: each row's copy stored 3 floats off the line), while
// loads off the line cost little.
template <typename scalar_t, typename acc_t>
acc_t* load_window_line_aligned(const scalar_t* row, int64_t length, int64_t step, int64_t start, int64_t span,
                                acc_t* room, int64_t pos_step = 1, const scalar_t* prefix_row = nullptr,
                                int64_t prefix_length = 0, int64_t prefix_step = 0) {
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    if (step == 1 && pos_step == 1 && (prefix_length == 0 || prefix_step == 1))
      return load_unit_window_line_aligned(row, length, start, span, room, prefix_row, prefix_length);
  }
  acc_t* dst = room + elements_to_next_line(room + window_first_in_row(start, span, pos_step));
  load_window(row, length, step, start, span, dst, pos_step, prefix_row, prefix_length, prefix_step);
  return dst;
}

// The `span` positions of x's row (b, c, h) from `start`, split into the
// dilation's phases: position start + q + dilation * i at dst[q * phase_len
// + i], read as load_window reads (zeros outside the row, the carried state
// before it). The windows of the forms with vectors over the taps
// (forward_taps_kernel.h, grad_weight_taps_kernel.h), whose K taps of an
// output are then a contiguous run of one phase.
template <typename scalar_t, typename acc_t>
inline void load_phase_windows(const RowConvParams& p, const scalar_t* x, int64_t b, int64_t c, int64_t h,
                               int64_t start, int64_t span, acc_t* dst, int64_t phase_len) {
  const int64_t d = p.dilation;
  for (int64_t q = 0; q < std::min(d, span); ++q)
    load_window(x + p.in_offset(b, c, h, 0), p.width, p.in_stride_w, start + q, ceil_div(span - q, d),
                dst + q * phase_len, d, p.prefix_row<scalar_t>(b, c, h), p.prefix_width, p.pre_stride_w);
}

// The columns [lo, hi) of a tile [t0, t0 + n) that the forward and
// grad-input read in place (rows pointing into x or grad_out, no copy):
// those whose windows lie inside the row, [inside_lo, inside_hi), where it
// pays: the whole tile, or its middle on whole 64-byte lines of the
// result's row (the ends then go through the copy; no line is stored by two
// products: a line stored in pieces, one of them past the caches, costs
// more than the copy saves), kMinInPlaceColumns or more (below, the three
// products cost more than the copy saves). Empty if none.
// Where the tile starts on a line, the left end is whole column blocks of
// the products (`block` columns: gemm_rows_columns), not one line: a left
// end of one line ran as blocks one vector wide (twice the loads per
// multiply-add of the full blocks), and so did the middle's last block
// when the tile is a whole number of blocks. Zen 4, 2 threads, chunks of
// 512 of the forum shape (32,15,10,8192) K 3 with carried state (every
// tile has a left end), from memory, in-process against one line: 0.95-0.97x
// the time; the shapes of bench_cpu with padding 0.95-1.02x (in the noise).
constexpr int64_t kMinInPlaceColumns = 128;
// ... and only for products of at most this many strips of the micro-kernel's
// rows: each strip reads the column block of every row again, from L1 when
// the rows are a copied window, from wherever x's rows are otherwise (Zen 3
// forward, 64 input channels 64 KiB apart: 4 strips 0.93x the time, 6
// 0.97x, 8 1.02x, 11 1.03x; forum, 3 strips, 0.85x).
constexpr int64_t kMaxInPlaceStrips = 4;
struct InPlaceColumns {
  int64_t lo, hi;  // none where hi <= lo
};
template <typename T>
inline InPlaceColumns in_place_columns(int64_t t0, int64_t n, int64_t inside_lo, int64_t inside_hi,
                                       const T* result_row, int64_t block) {
  int64_t lo = std::max(t0, inside_lo), hi = std::min(t0 + n, inside_hi);
  if (lo == t0 && hi == t0 + n) return {lo, hi};
  if (lo > t0) {
    lo += elements_to_next_line(result_row + lo);
    if (elements_to_next_line(result_row + t0) == 0) lo = t0 + ceil_div(lo - t0, block) * block;
  }
  if (hi < t0 + n) hi -= elements_past_line(result_row + hi);
  if (hi - lo < kMinInPlaceColumns) return {0, 0};
  return {lo, hi};
}

// f(c0, cn) for the columns [lo, hi) of a result row, in two parts where
// the result is stored non-temporally and an output has at most
// kSplitMaxTerms terms: the columns before the row's first line boundary
// (plain stores, less than a line), then the rest, whose vectors then start
// on lines. Non-temporal stores need whole aligned vectors: a tile starting
// off a line had every store plain, each line read from memory first (a
// depthwise forward from memory with rows of 4100, K 4: 1.75x the time of
// the split, Zen 5). The first part's vector is a chain of `terms`
// dependent multiply-adds: with many terms the product, not memory, bounds
// the row, and the split cost more than the stores saved (dw-long, K 64:
// 1.10x the time; K 8-32 0.86-0.98x). The sums do not depend on where the
// columns split.
template <typename T, typename F>
inline void split_at_first_line(int64_t lo, int64_t hi, const T* result_row, bool streaming, int64_t terms, F&& f) {
  const int64_t head = streaming && terms <= kSplitMaxTerms ? std::min(hi - lo, elements_to_next_line(result_row + lo)) : 0;
  if (head > 0) f(lo, head);
  if (hi > lo + head) f(lo + head, hi - lo - head);
}

// The input that output positions [t0, t0 + n) of one (b, h, group) read, as
// Cin_g * K rows contiguous in t (an im2col matrix that is never built):
//   rows[ci * K + k][t] = x[b, g * Cin_g + ci, h, (t0 + t) * stride - pad_left + k * dilation]
// (of the virtual row prefix ++ x where x has a prefix).
// Rows are shifted views of one buffer per channel and stride phase: phase q
// holds the positions start + q + stride * j, and tap k reads phase
// (k * dilation) % stride from j = (k * dilation) / stride on. Only the
// phases some tap reads are loaded (at most min(K, stride)), so memory does
// not grow with the stride. Each phase has kRowSlack elements of room past
// its window for the micro-kernels' whole-vector reads, and a line's worth in
// front: each gather places a phase's window where its copy from x stores
// whole lines (load_window_line_aligned) and points the rows there.
// Phases of this many positions or fewer are gathered by InputRows' inlined loops.
constexpr int64_t kShortPhase = 64;

template <typename acc_t>
struct InputRows {
  InputRows(const RowConvParams& p, int64_t tile)
      : p(p),
        reach((p.kernel_size - 1) * p.dilation / p.stride + 1),
        phase_len(tile + reach + kRowSlack + kLineElements<acc_t>),
        rows(p.in_per_group * p.kernel_size),
        tap_slot(p.kernel_size),
        tap_shift(p.kernel_size) {
    for (int64_t k = 0; k < p.kernel_size; ++k) {
      const int64_t q = k * p.dilation % p.stride;
      if (std::find(phases_used.begin(), phases_used.end(), q) == phases_used.end())
        phases_used.push_back(q);
      tap_slot[k] = std::find(phases_used.begin(), phases_used.end(), q) - phases_used.begin();
      tap_shift[k] = k * p.dilation / p.stride;
    }
    buffer.resize(p.in_per_group * phases_used.size() * phase_len);
    window.resize(phases_used.size());
  }

  // Fills the rows of channels [ci_begin, ci_end) of the group (all by default).
  template <typename scalar_t>
  void gather(const scalar_t* x, int64_t b, int64_t h, int64_t g, int64_t t0, int64_t n,
              int64_t ci_begin = 0, int64_t ci_end = -1) {
    const int64_t start = p.input_position(t0, 0);
    // positions of a phase that some tap reads for outputs [t0, t0 + n)
    const int64_t count = n + reach;
    if (ci_end < 0) ci_end = p.in_per_group;
    // (fetch_window_ahead: x's rows along unit steps, where they come from memory)
    const bool fetch = p.in_stride_w == 1 && p.operands_from_memory;
    const auto fetch_ahead_of = [&](int64_t ci) {
      fetch_window_ahead(ci, ci_begin, ci_end, start, start + n * p.stride, count * p.stride,
                         [&](int64_t ch) { return x + p.in_offset(b, g * p.in_per_group + ch, h, 0); });
    };
    if constexpr (std::is_same_v<scalar_t, acc_t>) {
      // (load_window_line_aligned's own test of this case, here once a tile:
      // through it, the copy of every channel was a call, 3% of the forum
      // forward)
      if (p.stride == 1 && p.in_stride_w == 1 && (p.prefix_width == 0 || p.pre_stride_w == 1)) {
        for (int64_t ci = ci_begin; ci < ci_end; ++ci) {
          const int64_t c = g * p.in_per_group + ci;
          if (fetch) fetch_ahead_of(ci);
          const acc_t* window = load_unit_window_line_aligned(x + p.in_offset(b, c, h, 0), p.width, start, count,
                                                              phase(ci, 0), p.prefix_row<scalar_t>(b, c, h),
                                                              p.prefix_width);
          for (int64_t k = 0; k < p.kernel_size; ++k) rows[ci * p.kernel_size + k] = window + tap_shift[k];
        }
        return;
      }
      // Stride 2, both phases, a short window (a tile of a short row):
      // plain loops inlined here, not two load_window calls a channel
      if (p.stride == 2 && phases_used.size() == 2 && p.in_stride_w == 1 && p.prefix_width == 0 &&
          count <= kShortPhase) {
        for (int64_t ci = ci_begin; ci < ci_end; ++ci) {
          if (fetch) fetch_ahead_of(ci);
          const acc_t* row = x + p.in_offset(b, g * p.in_per_group + ci, h, 0);
          for (size_t slot = 0; slot < 2; ++slot) {
            const int64_t first = start + phases_used[slot];  // the position of the phase's u = 0
            const int64_t lo = std::clamp<int64_t>(ceil_div(-first, 2), 0, count);
            const int64_t hi = std::clamp<int64_t>(ceil_div(p.width - first, 2), lo, count);
            acc_t* dst = phase(ci, slot);
            for (int64_t u = 0; u < lo; ++u) dst[u] = acc_t(0);
            for (int64_t u = lo; u < hi; ++u) dst[u] = row[first + 2 * u];
            for (int64_t u = hi; u < count; ++u) dst[u] = acc_t(0);
            window[slot] = dst;
          }
          for (int64_t k = 0; k < p.kernel_size; ++k)
            rows[ci * p.kernel_size + k] = window[tap_slot[k]] + tap_shift[k];
        }
        return;
      }
    }
    for (int64_t ci = ci_begin; ci < ci_end; ++ci) {
      const int64_t c = g * p.in_per_group + ci;
      if (fetch) fetch_ahead_of(ci);
      const scalar_t* row = x + p.in_offset(b, c, h, 0);
      const scalar_t* prefix_row = p.prefix_row<scalar_t>(b, c, h);
      // Past `count` a phase keeps what an earlier tile left (zeros at
      // first): only the discarded columns of whole-vector reads see it.
      for (size_t slot = 0; slot < phases_used.size(); ++slot)
        window[slot] = load_window_line_aligned(row, p.width, p.in_stride_w, start + phases_used[slot], count,
                                                phase(ci, slot), p.stride, prefix_row, p.prefix_width,
                                                p.pre_stride_w);
      for (int64_t k = 0; k < p.kernel_size; ++k)
        rows[ci * p.kernel_size + k] = window[tap_slot[k]] + tap_shift[k];
    }
  }

  // Points the rows straight into x, no copy, where the tile's window lies
  // inside the row and the micro-kernels' reads past it (kRowSlack) inside
  // x's first `extent` elements; for stride 1 and unit steps along the row,
  // x in the accumulation type. Returns false (rows untouched) otherwise.
  bool point_into(const acc_t* x, int64_t extent, int64_t b, int64_t h, int64_t g, int64_t t0, int64_t n) {
    const int64_t start = p.input_position(t0, 0), reach = (p.kernel_size - 1) * p.dilation + n;
    if (start < 0 || start + reach > p.width) return false;
    const int64_t c0 = g * p.in_per_group, c1 = c0 + p.in_per_group - 1;
    const int64_t last_read = std::max(p.in_offset(b, c0, h, start), p.in_offset(b, c1, h, start)) + reach + kRowSlack;
    if (last_read > extent) return false;
    for (int64_t ci = 0; ci < p.in_per_group; ++ci) {
      const acc_t* row = x + p.in_offset(b, c0 + ci, h, start);
      for (int64_t k = 0; k < p.kernel_size; ++k) rows[ci * p.kernel_size + k] = row + k * p.dilation;
    }
    return true;
  }

  acc_t* phase(int64_t ci, size_t slot) {
    return buffer.data() + (ci * static_cast<int64_t>(phases_used.size()) + slot) * phase_len;
  }

  const RowConvParams& p;
  const int64_t reach;  // positions of a phase past a tile's own that its taps read
  const int64_t phase_len;
  std::vector<int64_t> phases_used;
  std::vector<acc_t> buffer;
  std::vector<const acc_t*> rows;
  std::vector<int64_t> tap_slot;   // tap k reads phases_used[tap_slot[k]]
  std::vector<int64_t> tap_shift;  // ... from its element k * dilation / stride on
  std::vector<acc_t*> window;     // the current channel's phases, as gathered
};

// Grad-weight's running sums are added to their totals every this many
// positions of the reduction (why and what it costs: grad_weight_kernel.h;
// its short-rows form, short_rows_kernel.h, flushes at the same count).
constexpr int64_t kGradWeightFlushTerms = 4096;

// An item's running sums (`acc`, what its products add to) and their
// totals, for the grad-weight kernels that reduce in steps of whole
// columns (short_rows_kernel.h, grad_weight_taps_kernel.h): after a step
// that is not the item's last, once kGradWeightFlushTerms columns have gone
// into acc, acc is added to the totals and zeroed.
template <typename acc_t>
struct FlushedSums {
  explicit FlushedSums(int64_t size) : acc(size), total(size) {}
  void start() {
    std::fill(acc.begin(), acc.end(), acc_t(0));
    terms = 0;
    flushed = false;
  }
  void after_step(int64_t columns, bool last) {
    terms += columns;
    if (terms < kGradWeightFlushTerms || last) return;
    if (!flushed) std::fill(total.begin(), total.end(), acc_t(0));
    add_to_total(true);
    terms = 0;
    flushed = true;
  }
  // The item's sums, after its last step (without a flush, acc holds them all).
  const acc_t* finish() {
    if (!flushed) return acc.data();
    add_to_total(false);
    return total.data();
  }
  std::vector<acc_t> acc, total;

 private:
  void add_to_total(bool zero_acc) {
    for (size_t i = 0; i < acc.size(); ++i) {
      total[i] += acc[i];
      if (zero_acc) acc[i] = acc_t(0);
    }
  }
  int64_t terms = 0;  // columns in acc since the last flush
  bool flushed = false;
};

// A tile of grad_out, its rows the Cout_g channels of a group from src and
// n positions, transposed into dst (position t's channels at dst + t * ld),
// straight from memory (it lies inside the rows): through registers where
// its rows are contiguous floats or doubles, else eight positions at a time,
// so that both the reads (along a row) and the writes (along co) stay on
// few cache lines. (Grad-weight's gemm form: grad_weight_kernel.h and
// short_rows_kernel.h.)
template <typename scalar_t, typename acc_t>
void transpose_gout_tile(const RowConvParams& p, const MicroKernels<acc_t>& mk, const scalar_t* src, int64_t n,
                         acc_t* dst, int64_t ld) {
  const int64_t gs = p.gout_stride_w, cout_g = p.out_per_group;
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    if (gs == 1) return mk.transpose(cout_g, n, src, p.gout_stride_c, dst, ld, p.operands_from_memory);
  } else {
    // the half types: a block of positions of every row converted (vectors),
    // then transposed through registers
    constexpr int64_t kScratch = 4096;
    if (gs == 1 && cout_g * 8 <= kScratch) {
      acc_t scratch[kScratch];
      const int64_t block = kScratch / cout_g / 8 * 8;
      for (int64_t t = 0; t < n; t += block) {
        const int64_t m = std::min(block, n - t);
        for (int64_t co = 0; co < cout_g; ++co) load_run(src + co * p.gout_stride_c + t, m, scratch + co * block);
        mk.transpose(cout_g, m, scratch, block, dst + t * ld, ld, false);
      }
      return;
    }
  }
  for (int64_t t8 = 0; t8 < n; t8 += 8) {
    const int64_t m8 = std::min<int64_t>(8, n - t8);
    for (int64_t co = 0; co < cout_g; ++co) {
      const scalar_t* row = src + co * p.gout_stride_c + t8 * gs;
      for (int64_t i = 0; i < m8; ++i) dst[(t8 + i) * ld + co] = static_cast<acc_t>(row[i * gs]);
    }
  }
}

}  // namespace rowconv::cpu
