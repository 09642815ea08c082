// Gradient of the weight on the CPU (a correlation reduced over batch and width):
//   grad_w[h, co, ci, k] = sum_b sum_t grad_out[b, co, h, t] * x[b, ci, h, t*stride - pad_left + k*dilation]
// A (Cout_g x tile) by (tile x Cin_g*K) product per (b, width tile), summed
// over b and tiles in a fixed order by the work item that owns the slice of
// grad_w (running sums added to totals every kGradWeightFlushTerms positions), so the
// result does not depend on the thread count. Two forms:
//  - many output channels (two vectors or more, or one on short rows): gemm_rows with the
//    reduction over t and vectors over co, grad_w^T accumulated in registers
//    (grad_out's tile transposed, x's rows in place where they can be);
//    items are (group, block of input channels, h);
//  - fewer (depthwise among them): dot_rows, vectors over t, lane partials summed once at
//    the end; items are (group, block of output channels, h); its rows are
//    x and grad_out themselves where they can be (no copy).
// Blocks keep both cores busy when H * groups is small, and the partials in cache.
// Kernels long for their rows (K >= 8 on rows of fewer than 32 outputs, and
// so on: grad_weight_runs_taps) go to a third form, vectors over the taps
// (grad_weight_taps_kernel.h), ahead of these and of short_rows_kernel.h.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "bf16_pairs.h"
#include "cpu_tiling.h"
#include "grad_weight_taps_kernel.h"
#include "short_rows_kernel.h"

namespace rowconv::cpu {

// Blocks of `unit`-multiples of `count` such that there are at least `want`
// blocks of at most `max_block` (where count allows).
inline int64_t block_size(int64_t count, int64_t want, int64_t max_block, int64_t unit) {
  const int64_t blocks = std::max(std::clamp<int64_t>(want, 1, std::max<int64_t>(count, 1)),
                                  (count + max_block - 1) / max_block);
  return std::min(count, ((count + blocks - 1) / blocks + unit - 1) / unit * unit);
}

// The pair form's grad_out tile: dst[j * ld + co] = (grad_out[co][2j], grad_out[co][2j + 1])
// for the tile's n positions (zero past n), src at the tile's first position.
template <typename scalar_t>
void pack_gout_pairs(const RowConvParams& p, const scalar_t* src, int64_t n, uint32_t* dst, int64_t ld) {
  const int64_t gs = p.gout_stride_w;
  int64_t whole = 0;  // pairs moved as 32-bit elements
  if (gs == 1 && p.gout_stride_c % 2 == 0 && reinterpret_cast<uintptr_t>(src) % 4 == 0) {
    // along a contiguous row two neighbours are a pair in place: the tile
    // is a transpose of 32-bit elements, float's in registers (bits moved,
    // never computed on)
    whole = n / 2;
    micro_kernels<float>().transpose(p.out_per_group, whole, reinterpret_cast<const float*>(src),
                                     p.gout_stride_c / 2, reinterpret_cast<float*>(dst), ld,
                                     p.operands_from_memory);
  }
  for (int64_t co = 0; co < p.out_per_group; ++co) {
    const scalar_t* row = src + co * p.gout_stride_c;
    for (int64_t j = whole; 2 * j < n; ++j)
      dst[j * ld + co] = bf16_pair(row[2 * j * gs], 2 * j + 1 < n ? row[(2 * j + 1) * gs] : scalar_t(0));
  }
}

// The pair form's rows of x (stride 1): row (ci - first) * K + k, at
// pair_rows[(ci - first) * K + k], holds x[b, g * Cin_g + ci, h, t0 + t -
// pad_left + k * dilation] for t < n (of the prefix ++ x), then a zero where
// n is odd (the partner of the last position). Where n is even (no partner
// to zero) and the window lies inside its row, tap k's row is the row itself
// from k * dilation on (pairs may start at any 2-byte boundary): no copy
// (bf16 grad-weight, in-process switch, Zen 5: wide 0.96x the time,
// (32,16,10,4096) K 3 0.89x, (8,32,16,1024) K 4 dilation 2 0.91x, against
// the two copies below). Else each channel owns K rows of row_length bf16 at
// rows + (ci - first) * K * row_length; where n is even and they fit there,
// the window is loaded into them and copied once more from its second
// position, and tap k's row points into the first at k * dilation where
// that is even, else into the second: two copies a channel instead of K.
template <typename scalar_t>
void pack_x_pair_rows(const RowConvParams& p, const scalar_t* x, int64_t b, int64_t h, int64_t g, int64_t t0,
                      int64_t n, int64_t first, int64_t count, scalar_t* window, scalar_t* rows, int64_t row_length,
                      const uint32_t** pair_rows) {
  const int64_t K = p.kernel_size, d = p.dilation, start = p.input_position(t0, 0), span = n + (K - 1) * d;
  const bool in_place = window_in_row(p.in_stride_w, start, span, p.width);
  const int64_t even_span = (span + 1) / 2 * 2;  // the second copy on a pair boundary
  const bool two_copies = n % 2 == 0 && even_span + span <= K * row_length;
  // (fetch_window_ahead: x's rows, where they come from memory)
  const bool fetch_ahead = p.in_stride_w == 1 && p.operands_from_memory;
  for (int64_t ci = first; ci < first + count; ++ci) {
    const int64_t c = g * p.in_per_group + ci;
    if (fetch_ahead)
      fetch_window_ahead(ci, first, first + count, start, start + n, span,
                         [&](int64_t ch) { return x + p.in_offset(b, g * p.in_per_group + ch, h, 0); });
    scalar_t* own = rows + (ci - first) * K * row_length;
    const uint32_t** tap_rows = pair_rows + (ci - first) * K;
    const scalar_t* src;
    if (in_place) {
      src = x + p.in_offset(b, c, h, start);
      if (n % 2 == 0) {
        for (int64_t k = 0; k < K; ++k) tap_rows[k] = reinterpret_cast<const uint32_t*>(src + k * d);
        continue;
      }
    } else {  // (with two copies, the first is the loaded window itself)
      scalar_t* dst = two_copies ? own : window;
      load_window(x + p.in_offset(b, c, h, 0), p.width, p.in_stride_w, start, span, dst, 1,
                  p.prefix_row<scalar_t>(b, c, h), p.prefix_width, p.pre_stride_w);
      src = dst;
    }
    if (two_copies) {  // (src is own: in place, n even went above)
      scalar_t* moved = own + even_span;  // moved[u] = src[u + 1]
      if (d % 2 && K > 1) std::copy_n(src + 1, span - 1, moved);
      for (int64_t k = 0; k < K; ++k)
        tap_rows[k] = reinterpret_cast<const uint32_t*>(k * d % 2 ? moved + k * d - 1 : src + k * d);
      continue;
    }
    for (int64_t k = 0; k < K; ++k) {
      scalar_t* row = own + k * row_length;
      std::copy_n(src + k * d, n, row);
      if (n % 2) row[n] = scalar_t(0);
      tap_rows[k] = reinterpret_cast<const uint32_t*>(row);
    }
  }
}

template <typename scalar_t>
void row_conv1d_grad_weight(const RowConvParams& p, const scalar_t* grad_out, const scalar_t* x,
                            scalar_t* grad_w) {
  using acc_t = at::opmath_type<scalar_t>;
  if (grad_weight_runs_taps(p, micro_kernels<acc_t>().lanes)) return row_conv1d_grad_weight_taps(p, grad_out, x, grad_w);
  if constexpr (std::is_same_v<scalar_t, acc_t>) {  // (short_rows_kernel.h)
    if (grad_weight_runs_short_rows(p)) return row_conv1d_grad_weight_short_rows(p, grad_out, x, grad_w);
  }
  const int64_t cout_g = p.out_per_group, cin_g = p.in_per_group, K = p.kernel_size;
  // (depthwise at stride 1: the dot form's taps_dot_row, below)
  const bool depthwise_taps = cout_g == 1 && cin_g == 1 && p.stride == 1;
  const MicroKernels<acc_t>& mk =
      depthwise_taps ? depthwise_micro_kernels<acc_t>(K, p.dilation, DepthwiseTaps::dots) : micro_kernels<acc_t>();
  const int64_t R = cin_g * K;
  const int64_t row_groups = p.rows * p.groups;
  const int64_t want = (4 * at::get_num_threads() + row_groups - 1) / row_groups;
  // The tile fixes the order of the reduction, so it depends on the shape only.
  const int64_t tile = tile_width(cout_g + cin_g, p.out_width);
  const int64_t tiles = tile_count(p.out_width, tile);
  // The gemm form (vectors over co) where there are at least two vectors of
  // output channels, or one on short rows. With fewer, its column block is
  // one vector (6 accumulators on AVX2), and on long rows the dot form
  // (vectors over t) is faster: Zen 3, 2 threads, in-process A/B, dot over
  // gemm: (32,8,32,2048) K 9 0.68x the time, (64,8,32,1024) K 3 0.68x,
  // (32,10,16,1000) K 5 0.61x, (16,12,16,2048) K 7 0.73x, (32,8,10,400) K 3
  // 0.79x, (32,15,10,4096) K 3 1.00x; on rows of 100: C 8 1.00x, C 12 1.03x,
  // C 15 (forum) 1.33x; two vectors or more: C 16 0.98x, C 32 1.02x, 24 in
  // 40 out 1.00x. Stride 1 only (x read in place): at stride 3 the dot form
  // took 3.2x the time ((2,32,1,4096) K 3, 8 outputs, dilation 2: 0.43 ms
  // against 0.13).
  // (The half types keep the gemm form: bf16's pair kernels.)
  constexpr bool kSameType = std::is_same_v<scalar_t, acc_t>;
  constexpr int64_t kLongRow = 256;
  const bool channel_vectors =
      cout_g >= mk.lanes && (cout_g >= 2 * mk.lanes || p.out_width < kLongRow || p.stride != 1 || !kSameType);

  // Work items split the input channels (gemm form) or the output channels
  // (dot form, whose lane partials stay within about 256 KiB).
  const int64_t channels = channel_vectors ? cin_g : cout_g;
  const int64_t block =
      channel_vectors
          ? block_size(cin_g, want, cin_g, 1)
          : block_size(cout_g, want,
                       std::max<int64_t>(1, (int64_t{1} << 18) / (R * mk.lanes * sizeof(acc_t))),
                       mk.dot_rows_block);
  const int64_t blocks = (channels + block - 1) / block;

  // A thread takes its items in runs of up to `run` consecutive ones (rows h
  // next to each other) and, for each b, serves every item of the run (each
  // over all its tiles): for fixed b those rows are neighbours in x and
  // grad_out, so the reads go on in one stretch where one item alone would
  // jump a whole (b, c) plane per b (a chunk of a stream: one page-sized
  // piece per b). Each item keeps its own accumulators and its order of
  // reduction (b, then tiles), so the result does not depend on the runs.
  // gemm form: grad_out tile transposed, (t, co) with vector slack on co;
  // dot form: grad_out rows (co, t) with a vector of slack on t, and a line
  // of room to start each on a line (load_window_line_aligned).
  // (gemm form: whole cache lines, an odd number of them, so that the tile's
  // rows spread over every L1 set: at an even count, such as the 12 lines of
  // 64 + 128 floats, a column block's 256 rows fit in a quarter of the sets
  // and are read from L2 by every strip of rows)
  const int64_t line = kLineElements<acc_t>;
  const int64_t ld = channel_vectors ? ((cout_g + kRowSlack + line - 1) / line | 1) * line : tile + mk.lanes + line;
  const int64_t acc_size = channel_vectors ? block * K * ld : block * R;
  const int64_t partial_size = channel_vectors ? 0 : block * R * mk.lanes;
  // A run's accumulators take up to half the L2 (the other half: the tiles
  // of x and grad_out): longer runs read longer stretches of memory per b
  // (a 512-wide chunk of the forum shape: 2 rows a run at 64 KiB, 0.91x the
  // time at 8).
  constexpr int64_t kMaxRun = 16;
  const int64_t run = std::clamp<int64_t>(
      l2_cache_bytes() / 2 / static_cast<int64_t>((acc_size + partial_size) * sizeof(acc_t)), 1, kMaxRun);

  // Item -> the slice of grad_w it owns. Dot form: row h (fastest), block
  // of channels, group. Gemm and pair forms: the block fastest, then h and
  // the group, so that the blocks of one (h, group), which read the same
  // tiles of grad_out, are neighbours: a run serves each (b, tile) to all
  // its items in turn and transposes (or packs) grad_out's tile once for
  // the items of one (h, group), not once an item. (Blocks of input
  // channels exist where H * groups is below 4 a thread: (4,16,1,2048)
  // Cout 64 K 5 had 8 blocks, and the 8 transposes of each tile took 38%
  // of the op's samples.)
  struct Slice {
    int64_t h, g, first, count;
  };
  const auto slice_of = [&](int64_t item) {
    const int64_t first = (channel_vectors ? item % blocks : item / p.rows % blocks) * block;
    const int64_t hg = channel_vectors ? item / blocks : item % p.rows + item / p.rows / blocks * p.rows;
    return Slice{hg % p.rows, hg / p.rows, first, std::min(block, channels - first)};  // count >= 1
  };

  // bfloat16 at stride 1 in the gemm form: pairs of positions t summed by
  // vdpbf16ps (bf16_pairs.h) where the CPU has AVX-512 BF16
  const Bf16PairKernels* pairs = nullptr;
  if constexpr (std::is_same_v<scalar_t, c10::BFloat16>) {
    if (channel_vectors && p.stride == 1) pairs = bf16_pair_kernels();
  }
  const int64_t pair_count = (tile + 1) / 2;         // pairs of positions in a tile
  const int64_t x_row = 2 * pair_count + kRowSlack;  // bf16 a row of x's pair rows

  // Both forms read x's windows in place where they lie inside their rows
  // (float and double, stride 1, unit steps; the micro-kernels' reads
  // inside the tensor), as the forward reads x, and the dot form grad_out's
  // rows too: narrow and depthwise grad-weights 0.70-0.84x the time (Zen 3);
  // the gemm form's x (its rows are broadcast, one element a time) against
  // the copied windows, in-process A/B, same bits: (32,15,10,4096) K 3
  // 0.81x, (16,64,16,1024) K 1 0.82x, (16,32,16,2048) K 3 0.93x, (8,64,16,
  // 1024) K 5 0.98x, (8,128,8,2048) K 1 0.97x, three others 1.00-1.01x.
  const bool x_in_place = kSameType && p.stride == 1 && p.in_stride_w == 1 && p.out_width > 0;
  const bool gout_in_place = kSameType && !channel_vectors && p.gout_stride_w == 1 && p.out_width > 0;
  const int64_t x_extent = x_in_place ? p.in_offset(p.batch - 1, p.in_channels - 1, p.rows - 1, p.width - 1) + 1 : 0;
  const int64_t gout_extent =
      gout_in_place ? p.gout_offset(p.batch - 1, p.out_channels - 1, p.rows - 1, p.out_width - 1) + 1 : 0;

  // Depthwise at stride 1: one row of grad_out against K taps of one row of
  // x, by taps_dot_row (dot_rows' sums; the taps share x's loads).
  const bool one_row_of_taps = !channel_vectors && depthwise_taps;

  // The dot form reads its rows of x and grad_out in place, each a stream
  // that the hardware's prefetchers meet cold, and from memory it waited on
  // them: its samples sat on the loads, and it read 16-20 GB/s where a plain
  // read of two threads runs at 41-49 (Zen 5). So where they come from
  // memory, each step's product fetches the next step's rows as it goes,
  // spread over its loop (LineFetch: a line or two every 16 multiply-adds).
  // Products of few multiply-adds a line (more than 4.5 lines a step:
  // depthwise K 4, Cin = Cout = 2 K 3) are bound by memory's rate, which
  // the hardware's prefetchers reach on their own; there the fetches cost
  // up to 1.25x the time, so they are not issued. In-process A/B, same bits,
  // Zen 5, 2 threads: (64,4,64,512) K 7 0.62x the time, (8,4,64,4096) K 7
  // 0.64x, (32,15,10,4096) K 3 0.75x, (16,1,256,8192) K 64 0.75x, (32,8,32,
  // 2048) K 9 0.75x, (64,1,1024,4096) K 8 0.76x. Tried: two or three steps
  // ahead (forum-long 0.92x, 0.98x: worse than one); into L2 only
  // (prefetcht1, t2: 1.0-1.05x the time of t0); the addresses as a list
  // built each step (its loop cost the cheap products 1.15-1.4x); the product
  // split into parts over positions, each part fetching its share first (the
  // same bits): narrow 0.81x, but forum-long and dw-long 1.3-1.6x (each
  // part loads and stores every block's partials again).
  //
  // Where the L1d holds less than 48 KiB (Zen 4), the fetches go to L2 only
  // (spread_fetch), and a row of taps (depthwise) fetches nothing: there
  // not fetching took (64,1,1024,4096) K 8 0.68-0.75x the time of fetching
  // into L1 (into L2: 0.82x), K 16 0.81x, (16,1,1024,8192) K 32 0.89x,
  // dw-long 0.95x (Zen 4, in-process, 2 threads, same bits): its two
  // streams are what the hardware's prefetchers follow on their own. On Zen
  // 5 the rows of taps gained from fetching (above).
  const bool fetch_next_step =
      !channel_vectors && p.stride == 1 && p.in_stride_w == 1 && p.gout_stride_w == 1 &&
      p.operands_from_memory && products_fetch_ahead() && !(one_row_of_taps && fetches_into_l2()) &&
      2 * lines_of_rows<scalar_t>(block + cin_g, tile + (K - 1) * p.dilation) <= 9 * product_steps(block, R, tile, mk.lanes);

  // Each item's running sums (acc, partials) take kGradWeightFlushTerms positions (cpu_tiling.h)
  // (whole tiles, counted over b and the tiles) and are then added to its
  // totals: float's rounding grows with those positions and with the number
  // of flushes, not with all B * W terms. Zen 3, 2 threads, in-process A/B,
  // norm-wise error against float64 and time: flushed at 4096, narrow 1.1e-6
  // -> 4.1e-7 at 1.011x the time, forum-long 2.3e-6 -> 4.2e-7 1.013x, wide
  // 1.6e-6 -> 1.1e-6 1.003x, dw-long 2.3e-6 -> 4.2e-7 1.021x, forum 1.0e-6
  // -> 1.0e-6 1.018x (PyTorch's grouped conv on the same values: narrow
  // 3.5e-7, forum-long 4.1e-7); at 1024 narrow 2.3e-7 but 1.055x.
  const int64_t flush_tiles = std::max<int64_t>(1, kGradWeightFlushTerms / tile);
  at::parallel_for(0, row_groups * blocks, 1, [&](int64_t begin, int64_t end) {
    InputRows<acc_t> in(p, pairs ? 0 : tile);  // (the pair form reads its own tiles)
    // the pair form's tiles: grad_out transposed into (pair of t, co) and the
    // rows (ci, k) of x from tap k on, as bf16 (pairs in place)
    std::vector<uint32_t> gout_pairs(pairs ? pair_count * ld : 0, 0);
    std::vector<const uint32_t*> gout_pair_rows(pairs ? pair_count : 0), x_pair_rows(pairs ? block * K : 0);
    for (int64_t i = 0; i < static_cast<int64_t>(gout_pair_rows.size()); ++i) gout_pair_rows[i] = gout_pairs.data() + i * ld;
    std::vector<scalar_t> x_pairs(pairs ? block * K * x_row : 0, scalar_t(0)),
        x_window(pairs ? tile + (K - 1) * p.dilation : 0);
    std::vector<acc_t> gout(pairs ? 0 : (channel_vectors ? tile : block) * ld);
    std::vector<const acc_t*> gout_rows(pairs ? 0 : channel_vectors ? tile : block);
    for (size_t i = 0; i < gout_rows.size(); ++i) gout_rows[i] = gout.data() + i * ld;
    std::vector<acc_t> acc(run * acc_size), partials(run * partial_size);
    std::vector<acc_t> acc_total(run * acc_size), partials_total(run * partial_size);
    std::vector<acc_t> sums(channel_vectors ? 0 : block * R);
    std::vector<const char*> next_rows;  // the dot form's next step, fetched as it computes
    // a slot's running sums (acc, the gemm and pair forms'; partials, the
    // dot form's) added to its totals and zeroed
    const auto flush = [&](int64_t slot) {
      std::vector<acc_t>& inner = channel_vectors ? acc : partials;
      std::vector<acc_t>& total = channel_vectors ? acc_total : partials_total;
      const int64_t size = channel_vectors ? acc_size : partial_size;
      for (int64_t i = slot * size; i < (slot + 1) * size; ++i) {
        total[i] += inner[i];
        inner[i] = acc_t(0);
      }
    };

    for (int64_t first_item = begin; first_item < end; first_item += run) {
      const int64_t run_end = std::min(end, first_item + run);
      std::fill(acc.begin(), acc.end(), acc_t(0));
      std::fill(partials.begin(), partials.end(), acc_t(0));
      std::fill(acc_total.begin(), acc_total.end(), acc_t(0));
      std::fill(partials_total.begin(), partials_total.end(), acc_t(0));
      for (int64_t b = 0; b < p.batch; ++b) {
        // the (h, group) and tile whose grad_out the gemm and pair forms
        // hold transposed (packed) for this b
        int64_t made_hg = -1, made_tile = -1;
        // Each item's terms of each tile (each item's order: b, then its
        // tiles): where blocks share a tile of grad_out, tiles outer (a
        // tile's transpose serves the items of its (h, group)); else items
        // outer, each item's row in one stretch. (One loop, not a lambda
        // called from two: that cost the bf16 wide grad-weight 3-4%.)
        const bool tiles_outer = channel_vectors && blocks > 1;
        const int64_t run_items = run_end - first_item;
        for (int64_t step = 0; step < run_items * tiles; ++step) {
          const int64_t item = first_item + (tiles_outer ? step % run_items : step / tiles);
          const int64_t tile_idx = tiles_outer ? step / run_items : step % tiles;
          const auto [h, g, first, count] = slice_of(item);
          const int64_t slot = item - first_item;
          const int64_t t0 = tile_idx * tile, n = std::min(tile, p.out_width - t0);
          const bool made = made_hg == h * p.groups + g && made_tile == tile_idx;
          made_hg = h * p.groups + g;
          made_tile = tile_idx;
          if constexpr (std::is_same_v<scalar_t, c10::BFloat16>) {
            if (pairs) {
              // acc[(ci, k), co] += sum over pairs (t, t + 1) of x_rows[(ci, k)] . gout[co]
              // (an odd tile's last pair: (t, 0) on both sides)
              if (!made) pack_gout_pairs(p, grad_out + p.gout_offset(b, g * cout_g, h, t0), n, gout_pairs.data(), ld);
              pack_x_pair_rows(p, x, b, h, g, t0, n, first, count, x_window.data(), x_pairs.data(), x_row,
                               x_pair_rows.data());
              pairs->gemm_pairs_add(count * K, cout_g, (n + 1) / 2, x_pair_rows.data(), gout_pair_rows.data(),
                                    acc.data() + slot * acc_size, ld);
            }
          }
          if (pairs) {
            // (summed above, into acc)
          } else if (channel_vectors) {
            // acc[(ci, k), co] += sum_t x_rows[(ci, k)][t] * gout[t][co]
            if (!made) transpose_gout_tile(p, mk, grad_out + p.gout_offset(b, g * cout_g, h, t0), n, gout.data(), ld);
            bool x_read_in_place = false;
            if constexpr (kSameType) x_read_in_place = x_in_place && in.point_into(x, x_extent, b, h, g, t0, n);
            if (!x_read_in_place) in.gather(x, b, h, g, t0, n, first, first + count);
            mk.gemm_rows(count * K, cout_g, n, in.rows.data() + first * K, gout_rows.data(),
                         acc.data() + slot * acc_size, ld);
          } else {
            for (int64_t co = 0; co < count; ++co) {
              const int64_t at = p.gout_offset(b, g * cout_g + first + co, h, t0);
              if constexpr (kSameType) {
                if (gout_in_place && at + n + kRowSlack <= gout_extent) {
                  gout_rows[co] = grad_out + at;
                  continue;
                }
              }
              gout_rows[co] = load_window_line_aligned(grad_out + p.gout_offset(b, g * cout_g + first + co, h, 0),
                                                       p.out_width, p.gout_stride_w, t0, n, gout.data() + co * ld);
            }
            bool x_read_in_place = false;
            if constexpr (kSameType) x_read_in_place = x_in_place && in.point_into(x, x_extent, b, h, g, t0, n);
            if (!x_read_in_place) in.gather(x, b, h, g, t0, n);
            LineFetch fetch{nullptr, nullptr, 0, 0, 0, 1};
            if (fetch_next_step) {
              // the next step: the run's next (item, tile), or b + 1's first;
              // its rows of grad_out and x (x's window, the longer, for both)
              const int64_t ahead = step + 1;
              const int64_t next_b = b + ahead / (run_items * tiles);
              const Slice next = slice_of(first_item + ahead % (run_items * tiles) / tiles);
              const int64_t next_t0 = ahead % tiles * tile, next_n = std::min(tile, p.out_width - next_t0);
              const RowSpan span = input_span(p, next_t0, next_n);
              next_rows.clear();
              for (int64_t co = next.first; next_b < p.batch && co < next.first + next.count; ++co)
                next_rows.push_back(reinterpret_cast<const char*>(
                    grad_out + p.gout_offset(next_b, next.g * cout_g + co, next.h, next_t0)));
              for (int64_t ci = 0; next_b < p.batch && ci < cin_g; ++ci)
                next_rows.push_back(
                    reinterpret_cast<const char*>(x + p.in_offset(next_b, next.g * cin_g + ci, next.h, span.first)));
              const int64_t steps = product_steps(count, R, n, mk.lanes);
              if (!next_rows.empty())
                fetch = spread_fetch<scalar_t>(next_rows.data(), static_cast<int64_t>(next_rows.size()),
                                               std::max(next_n, span.end - span.first), steps);
            }
            if (one_row_of_taps)  // in.rows[k] = in.rows[0] + k * dilation
              mk.taps_dot_row(n, K, p.dilation, gout_rows[0], in.rows.data(), partials.data() + slot * partial_size,
                              fetch.row ? &fetch : nullptr);
            else
              mk.dot_rows(count, R, n, gout_rows.data(), in.rows.data(), partials.data() + slot * partial_size, R,
                          fetch.row ? &fetch : nullptr);
          }
          if ((b * tiles + tile_idx + 1) % flush_tiles == 0) flush(slot);
        }
      }
      for (int64_t item = first_item; item < run_end; ++item) {
        const auto [h, g, first, count] = slice_of(item);
        const int64_t slot = item - first_item;
        flush(slot);
        if (channel_vectors) {
          for (int64_t ci = first; ci < first + count; ++ci) {
            for (int64_t k = 0; k < K; ++k) {
              const acc_t* a = acc_total.data() + slot * acc_size + ((ci - first) * K + k) * ld;
              for (int64_t co = 0; co < cout_g; ++co)
                grad_w[p.weight_offset(h, g * cout_g + co, ci, k)] = static_cast<scalar_t>(a[co]);
            }
          }
        } else {
          mk.reduce_lanes(count * R, partials_total.data() + slot * partial_size, sums.data());
          for (int64_t co = 0; co < count; ++co) {
            scalar_t* out = grad_w + p.weight_offset(h, g * cout_g + first + co, 0, 0);
            for (int64_t r = 0; r < R; ++r) out[r] = static_cast<scalar_t>(sums[co * R + r]);
          }
        }
      }
    }
  });
}

}  // namespace rowconv::cpu
