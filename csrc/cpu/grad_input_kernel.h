// Gradient of the input on the CPU (a transposed convolution):
//   grad_x[b, ci, h, j] = sum_{co in group(ci)} sum_k weight[h, co, ci, k] * grad_out[b, co, h, t],
//   t = (j + pad_left - k*dilation) / stride, where that division is exact and 0 <= t < Wout.
// Work item: one (b, h, group, tile of input positions), split into the
// `stride` phases j = j0 + q + stride * m. Within a phase the same taps
// contribute to every m, and t moves by one with m: each phase is a
// (Cin_g x taps) by (taps x m) product over contiguous rows of grad_out, run
// by the gemm_rows micro-kernels (no multiplications by the zeros of an
// upsampled gradient), straight into grad_x where the phase is the whole
// tile (stride 1, float and double), its rows copied windows of grad_out or,
// for few input channels, grad_out itself (as the forward reads x); one
// input and one output channel a group there by the taps_row_set kernel.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "bf16_pairs.h"
#include "cpu_tiling.h"
#include "grad_input_weight_rows_kernel.h"
#include "short_rows_kernel.h"

namespace rowconv::cpu {

// The bfloat16 gradient of the input at stride 1 by pairs of output
// channels, summed by vdpbf16ps in float (bf16_pairs.h): position j of the
// tile reads grad_out at t = j + pad_left - k * dilation, so tap k of channel
// pair cp reads the pair row of grad_out's window (from t_lo) from
// (K - 1 - k) * dilation on, with the weights (w[2cp][ci][k], w[2cp+1][ci][k]).
// Tiles and work items as row_conv1d_grad_input's.
template <typename scalar_t>
void row_conv1d_grad_input_bf16_pairs(const RowConvParams& p, const scalar_t* grad_out, const scalar_t* weight,
                                      scalar_t* grad_x, const Bf16PairKernels& bk) {
  static_assert(std::is_same_v<scalar_t, c10::BFloat16>);
  const int64_t cout_g = p.out_per_group, cin_g = p.in_per_group, K = p.kernel_size;
  const int64_t channel_pairs = (cout_g + 1) / 2, P = channel_pairs * K;
  const int64_t tile = tile_width(cout_g + cin_g, p.width);
  const int64_t tiles = tile_count(p.width, tile);
  const int64_t items = p.batch * p.rows * p.groups * tiles;
  const int64_t window = tile + (K - 1) * p.dilation;  // grad_out positions a tile reads
  // (fetch_window_ahead: grad_out's rows, where they come from memory)
  const bool fetch_ahead = p.gout_stride_w == 1 && p.operands_from_memory;
  const int64_t ldx = p.rows * p.width;

  // per (h, group): Cin_g rows of P pairs, (w[2cp][ci][k], w[2cp+1][ci][k]) at k * channel_pairs + cp
  const std::vector<uint32_t> w_pairs =
      pack_weight_pairs(p.rows, p.groups, cin_g * P, [&](int64_t h, int64_t g, uint32_t* dst) {
        for (int64_t cp = 0; cp < channel_pairs; ++cp) {
          const scalar_t* even = weight + p.weight_offset(h, g * cout_g + 2 * cp, 0, 0);
          const scalar_t* odd = 2 * cp + 1 < cout_g ? weight + p.weight_offset(h, g * cout_g + 2 * cp + 1, 0, 0) : nullptr;
          for (int64_t ci = 0; ci < cin_g; ++ci)
            for (int64_t k = 0; k < K; ++k)
              dst[ci * P + k * channel_pairs + cp] =
                  bf16_pair(even[ci * K + k], odd ? odd[ci * K + k] : scalar_t(0));
        }
      });

  parallel_chunks(items, grain_for(cout_g * cin_g * K * tile), [&](auto&& next) {
    ChannelPairRows gout(cout_g, window + kRowSlack);
    std::vector<const uint32_t*> w_rows(cin_g), rows(P);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t cp = 0; cp < channel_pairs; ++cp) rows[k * channel_pairs + cp] = gout.row(cp) + (K - 1 - k) * p.dilation;
    int64_t begin, end;
    while (next(begin, end)) for (int64_t item = begin; item < end; ++item) {
      const auto [b, h, g, j0, n] = tiled_item(p, item, tiles, tile, p.width);
      for (int64_t ci = 0; ci < cin_g; ++ci) w_rows[ci] = w_pairs.data() + ((h * p.groups + g) * cin_g + ci) * P;
      const int64_t t_lo = p.grad_numerator(j0, K - 1);
      gout.fill(bk, n + (K - 1) * p.dilation, [&](int64_t co, int64_t count, scalar_t* room) -> const scalar_t* {
        if (fetch_ahead)
          fetch_window_ahead(co, 0, cout_g, t_lo, t_lo + n, count,
                             [&](int64_t ch) { return grad_out + p.gout_offset(b, g * cout_g + ch, h, 0); });
        if (window_in_row(p.gout_stride_w, t_lo, count, p.out_width))
          return grad_out + p.gout_offset(b, g * cout_g + co, h, t_lo);
        load_window(grad_out + p.gout_offset(b, g * cout_g + co, h, 0), p.out_width, p.gout_stride_w, t_lo,
                    count, room);
        return room;
      });
      // straight into grad_x's rows (Cin_g of them), from zero, rounded as c10 rounds
      bk.gemm_pairs_set(cin_g, n, P, w_rows.data(), rows.data(), nullptr,
                        reinterpret_cast<uint16_t*>(grad_x + p.grad_input_offset(b, g * cin_g, h, j0)), ldx);
    }
  });
}

// out[j] = phase j % s's element j / s, for j < n: the phases of a tile
// (phase q at phases + q * phase_step) into one run of out. Stride 2 in
// float or double: the two phases interleaved in 16-byte vectors; stride 1 a
// rounding copy; else phase by phase, every s-th element.
template <typename scalar_t, typename acc_t>
inline void store_phases(const acc_t* phases, int64_t phase_step, int64_t s, int64_t n, scalar_t* out) {
  if (s == 1) return store_run(phases, n, out);
  int64_t j = 0;
  if constexpr (std::is_same_v<scalar_t, acc_t> && (std::is_same_v<acc_t, float> || std::is_same_v<acc_t, double>)) {
    if (s == 2) {
      typedef acc_t V __attribute__((vector_size(16)));
      constexpr int64_t kWidth = 16 / sizeof(acc_t);
      const acc_t* even = phases;
      const acc_t* odd = phases + phase_step;
      for (; j + 2 * kWidth <= n; j += 2 * kWidth) {  // positions j .. j + 2 kWidth - 1
        V a, b, lo, hi;
        std::memcpy(&a, even + j / 2, sizeof(V));
        std::memcpy(&b, odd + j / 2, sizeof(V));
        if constexpr (kWidth == 4) {
          lo = __builtin_shufflevector(a, b, 0, 4, 1, 5);
          hi = __builtin_shufflevector(a, b, 2, 6, 3, 7);
        } else {
          lo = __builtin_shufflevector(a, b, 0, 2);
          hi = __builtin_shufflevector(a, b, 1, 3);
        }
        std::memcpy(out + j, &lo, sizeof(V));
        std::memcpy(out + j + kWidth, &hi, sizeof(V));
      }
    }
  }
  // the rest phase by phase (positions j .. n - 1; j is a multiple of s)
  for (int64_t q = 0; q < std::min(s, n - j); ++q) {
    const acc_t* phase = phases + q * phase_step + j / s;
    for (int64_t i = j + q, m = 0; i < n; i += s, ++m) out[i] = static_cast<scalar_t>(phase[m]);
  }
}

template <typename scalar_t>
void row_conv1d_grad_input(const RowConvParams& p, const scalar_t* grad_out,
                           const scalar_t* weight, scalar_t* grad_x) {
  if (grad_input_runs_weight_rows(p)) return row_conv1d_grad_input_weight_rows(p, grad_out, weight, grad_x);
  if constexpr (std::is_same_v<scalar_t, c10::BFloat16>) {
    if (const Bf16PairKernels* bk = bf16_pair_kernels(); bk && p.stride == 1)
      return row_conv1d_grad_input_bf16_pairs(p, grad_out, weight, grad_x, *bk);
  }
  using acc_t = at::opmath_type<scalar_t>;
  if constexpr (std::is_same_v<scalar_t, acc_t>) {  // (short_rows_kernel.h)
    if (grad_input_runs_short_rows(p)) return row_conv1d_grad_input_short_rows(p, grad_out, weight, grad_x);
  }
  const MicroKernels<acc_t>& mk = micro_kernels<acc_t>();
  const int64_t cout_g = p.out_per_group, cin_g = p.in_per_group, K = p.kernel_size;
  const int64_t s = p.stride;
  const int64_t tile = tile_width(cout_g + cin_g, p.width);
  const int64_t tiles = tile_count(p.width, tile);
  const int64_t items = p.batch * p.rows * p.groups * tiles;
  const int64_t phase_width = (tile + s - 1) / s;
  const int64_t ldc = phase_width + kRowSlack;
  // (fetch_window_ahead: grad_out's rows, where they come from memory)
  const bool fetch_windows_ahead = p.gout_stride_w == 1 && p.operands_from_memory;
  // The grad_out that n positions of a tile read: outputs t_lo .. t_lo +
  // window_for(n) - 1 (zero outside [0, Wout)). A channel's buffer holds the
  // micro-kernel's slack past it and room to start the copy on a line; past
  // the window it keeps what an earlier copy left (zeros at first), which
  // only the discarded columns of whole-vector reads see (as InputRows'
  // phases). Copying and zeroing the slack as well, each end of a narrow
  // tile (K 7) copied 4 rows of 152 floats for 24 read.
  const auto window_for = [&](int64_t n) { return (n + s - 1) / s + ((K - 1) * p.dilation + s - 1) / s + 2; };
  const int64_t span = window_for(tile) + kRowSlack + kLineElements<acc_t>;
  // acc: the phases' sums before the strided (or rounding) store; none where
  // gemm_rows_set writes straight into grad_x (stride 1, float and double),
  // past the caches where grad_x is large
  const bool direct_store = s == 1 && std::is_same_v<scalar_t, acc_t>;
  // One input and one output channel a group (depthwise): one row of taps
  // by taps_row_set, as the forward's (forward_kernel.h), in place and from
  // copied windows alike (the same bits in every layout). Zen 3, 2 threads,
  // against gemm_rows_set in the same process (before taps_row_set shared
  // its loads among taps): (64,1,1024,4096) K 4 causal 0.75x the time,
  // (16,1,256,8192) K 64 0.92x, (1,1,4096,1024) K 20 0.86x.
  const bool one_row_of_taps = cin_g == 1 && cout_g == 1;
  const bool streaming =
      direct_store &&
      streams_result(p.batch * p.in_channels * p.rows * p.width * int64_t{sizeof(scalar_t)}, cin_g, cout_g * K,
                     p.width * int64_t{sizeof(scalar_t)});
  const auto gemm_rows_into_grad_x = streaming ? mk.gemm_rows_set_streaming : mk.gemm_rows_set;

  // Few input channels (one strip of the micro-kernel's rows: each element
  // of grad_out read once a column block) read grad_out in place, as the
  // forward reads x (forward_kernel.h): the positions whose taps all read
  // inside grad_out's row. (Not up to kMaxInPlaceStrips strips as the
  // forward: 15 input channels, 3 strips, K 5, were 1.55x slower on a causal
  // (32,15,10,512); Zen 3.)
  const bool reads_in_place = direct_store && items > 0 && p.gout_stride_w == 1 && cin_g <= mk.gemm_rows_block;
  const int64_t gout_extent =
      reads_in_place ? p.gout_offset(p.batch - 1, p.out_channels - 1, p.rows - 1, p.out_width - 1) + 1 : 0;
  const bool depthwise = reads_in_place && one_row_of_taps;
  // Where grad_out comes from memory, the product fetches the next item's
  // windows of grad_out as it goes, as the forward fetches x's
  // (forward_kernel.h: products of 32 multiply-adds or more a line).
  // In-process A/B, same bits, Zen 5, 2 threads: (32,8,32,2048) K 9 0.54x
  // the time, (16,8,32,1024) Cout 24 K 5 0.39x, (16,8,16,2048) Cout 32 K 3
  // 0.97x; narrow (no fetches) 1.0x.
  const bool fetch_next_item = reads_in_place && !depthwise && p.operands_from_memory && products_fetch_ahead() &&
                               2 * lines_of_rows<scalar_t>(cout_g, tile + (K - 1) * p.dilation) <=
                                   product_steps(cin_g, cout_g * K, tile, mk.lanes);
  const MicroKernels<acc_t>& taps_mk = depthwise_micro_kernels<acc_t>(K, -p.dilation, DepthwiseTaps::rows);
  const auto taps_into_grad_x = streaming ? taps_mk.taps_row_set_streaming : taps_mk.taps_row_set;

  // The taps of position j are those with j + pad_left - k * dilation
  // divisible by s (every tap at stride 1): tap k serves the positions of
  // residue (k * dilation - pad_left) mod s, so the taps fall into at most K
  // classes by residue (one at stride 1), in order of k within each. Their
  // weights, per class (Cin_g) rows of (co, tap), are packed once a call per
  // (h, group), in parallel, rather than per item (or per phase of every
  // tile): 675 elements an item on the forum shape, 1350 at stride 2, a
  // sixth and a third of the items' products. All classes together hold the
  // weights once, whatever the stride. A class's terms go channel by channel
  // (co, then its taps), as the forward's (ci, k): the rows of grad_out a
  // column block reads one after another, each for K terms, rather than
  // all of them each tap. Zen 5, 2 threads, against tap by tap:
  // (64,4,64,512) K 7, grad_out and grad_x from memory, 0.64x the time; from
  // the caches and other shapes (forum, (8,64,16,1024) K 5, stride 2)
  // 0.95-1.02x. Not measured on Zen 3 or 4.
  std::vector<int64_t> class_residue, class_first, class_taps;  // class c: taps class_taps[class_first[c] ...]
  {
    std::vector<std::vector<int64_t>> members;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t r = floor_mod(k * p.dilation - p.pad_left, s);
      const size_t c = std::find(class_residue.begin(), class_residue.end(), r) - class_residue.begin();
      if (c == class_residue.size()) {
        class_residue.push_back(r);
        members.emplace_back();
      }
      members[c].push_back(k);
    }
    for (const auto& m : members) {
      class_first.push_back(static_cast<int64_t>(class_taps.size()));
      class_taps.insert(class_taps.end(), m.begin(), m.end());
    }
    class_first.push_back(K);
  }
  const int64_t classes = static_cast<int64_t>(class_residue.size()), pack_size = cin_g * cout_g * K;
  std::vector<acc_t> packs(p.rows * p.groups * pack_size);
  at::parallel_for(0, p.rows * p.groups, grain_for(pack_size), [&](int64_t begin, int64_t end) {
    for (int64_t hg = begin; hg < end; ++hg) {
      const int64_t h = hg / p.groups, g = hg % p.groups;
      for (int64_t c = 0; c < classes; ++c) {
        const int64_t first = class_first[c], taps = class_first[c + 1] - first;
        acc_t* pack = packs.data() + hg * pack_size + first * cout_g * cin_g;
        for (int64_t co = 0; co < cout_g; ++co)
          for (int64_t ci = 0; ci < cin_g; ++ci)
            for (int64_t t = 0; t < taps; ++t)
              pack[ci * cout_g * taps + co * taps + t] =
                  static_cast<acc_t>(weight[p.weight_offset(h, g * cout_g + co, ci, class_taps[first + t])]);
      }
    }
  });
  // the class of taps serving residue r (-1: none) and its packed weights
  const auto class_of = [&](int64_t r) {
    const auto at = std::find(class_residue.begin(), class_residue.end(), r);
    return at == class_residue.end() ? int64_t{-1} : static_cast<int64_t>(at - class_residue.begin());
  };
  const auto packed_weights = [&](int64_t h, int64_t g, int64_t c) {
    return packs.data() + (h * p.groups + g) * pack_size + (c < 0 ? 0 : class_first[c] * cout_g * cin_g);
  };

  parallel_chunks(items, grain_for(cout_g * cin_g * K * tile), [&](auto&& next) {
    std::vector<acc_t> gout(cout_g * span), acc(direct_store ? 0 : std::min(s, tile) * cin_g * ldc);
    std::vector<const acc_t*> rows(cout_g * K), w_rows(cin_g), gout_window(cout_g);
    std::vector<const char*> next_rows(cout_g);  // the next item's rows of grad_out, fetched as the product goes
    const auto point_w_rows = [&](const acc_t* pack, int64_t taps) {
      for (int64_t ci = 0; ci < cin_g; ++ci) w_rows[ci] = pack + ci * cout_g * taps;
    };
    int64_t begin, end;
    TiledItem it{};
    // (items stepped on, not divided out: next_tiled_item)
    while (next(begin, end)) for (int64_t item = begin; item < end; ++item) {
      if (item == begin) it = tiled_item(p, item, tiles, tile, p.width);
      else next_tiled_item(p, tile, p.width, it);
      const auto [b, h, g, j0, n] = it;
      if constexpr (std::is_same_v<scalar_t, acc_t>) {
        if (reads_in_place) {
          // stride 1: position j reads grad_out at j + pad_left - k * dilation,
          // inside the row for j in [lo, hi)
          const int64_t reach = (K - 1) * p.dilation;
          scalar_t* gx_row = grad_x + p.grad_input_offset(b, g * cin_g, h, 0);
          const auto [lo, hi] = in_place_columns(j0, n, reach - p.pad_left, p.out_width - p.pad_left, gx_row, mk.gemm_rows_columns);
          const int64_t t_first = lo + p.pad_left - reach;  // grad_out position of the middle's first window
          const int64_t last_read =
              std::max(p.gout_offset(b, g * cout_g, h, t_first), p.gout_offset(b, g * cout_g + cout_g - 1, h, t_first)) +
              (hi - lo) + reach + kRowSlack;
          if (hi > lo && last_read <= gout_extent) {
            const acc_t* w = packed_weights(h, g, 0);  // stride 1: one class, every tap
            point_w_rows(w, K);
            LineFetch fetch{nullptr, nullptr, 0, 0, 0, 1};
            TiledItem next_it = it;
            if (fetch_next_item && item_to_fetch(p, next, item, end, tiles, tile, p.width, next_it)) {
              // the next item's windows of grad_out
              const int64_t first = std::clamp<int64_t>(next_it.t0 + p.pad_left - reach, 0, p.out_width);
              const int64_t stop = std::clamp<int64_t>(next_it.t0 + next_it.n + p.pad_left, 0, p.out_width);
              for (int64_t co = 0; co < cout_g; ++co)
                next_rows[co] = reinterpret_cast<const char*>(
                    grad_out + p.gout_offset(next_it.b, next_it.g * cout_g + co, next_it.h, first));
              const int64_t steps = product_steps(cin_g, cout_g * K, n, mk.lanes);
              if (first < stop) fetch = spread_fetch<scalar_t>(next_rows.data(), cout_g, stop - first, steps);
            }
            // positions [j1, j1 + m), their windows from grad_out position
            // j1 + pad_left - reach at window(co)
            const auto product = [&](int64_t j1, int64_t m, const auto& window) {
              if (depthwise) {  // w[k] = weight[k], tap k reading from (K - 1 - k) * dilation on
                taps_into_grad_x(m, K, -p.dilation, w, window(0) + reach, nullptr, gx_row + j1);
                return;
              }
              for (int64_t co = 0, taps = 0; co < cout_g; ++co)
                for (int64_t k = 0; k < K; ++k, ++taps) rows[taps] = window(co) + (K - 1 - k) * p.dilation;
              gemm_rows_into_grad_x(cin_g, m, cout_g * K, w_rows.data(), rows.data(), nullptr, gx_row + j1,
                                    p.rows * p.width, fetch.row ? &fetch : nullptr);
            };
            const auto copied = [&](int64_t j1, int64_t m) {
              // (unit steps, no conversion: the copy inlined, as InputRows'; a
              // call a row, 4.6% of narrow's samples in cache, took 1.03x the time)
              for (int64_t co = 0; co < cout_g; ++co)
                gout_window[co] = load_unit_window_line_aligned<scalar_t>(grad_out + p.gout_offset(b, g * cout_g + co, h, 0),
                                                                p.out_width, j1 + p.pad_left - reach, window_for(m),
                                                                gout.data() + co * span, nullptr, 0);
              product(j1, m, [&](int64_t co) { return gout_window[co]; });
            };
            // the left end first: the rows are then read in order, the middle
            // continuing the stream its reads start (done after the middle,
            // its lines came afresh from memory: narrow 0.87x the time)
            if (lo > j0) copied(j0, lo - j0);
            split_at_first_line(lo, hi, gx_row, streaming, cout_g * K, [&](int64_t j1, int64_t m) {
              product(j1, m, [&](int64_t co) { return grad_out + p.gout_offset(b, g * cout_g + co, h, t_first + (j1 - lo)); });
            });
            if (j0 + n > hi) copied(hi, j0 + n - hi);
            continue;
          }
        }
      }
      const int64_t t_lo = floor_div(p.grad_numerator(j0, K - 1), s);
      for (int64_t co = 0; co < cout_g; ++co) {
        if (fetch_windows_ahead)
          fetch_window_ahead(co, 0, cout_g, t_lo, t_lo + n / s, window_for(n),
                             [&](int64_t ch) { return grad_out + p.gout_offset(b, g * cout_g + ch, h, 0); });
        const scalar_t* row = grad_out + p.gout_offset(b, g * cout_g + co, h, 0);
        if constexpr (std::is_same_v<scalar_t, acc_t>) {
          if (p.gout_stride_w == 1) {  // (inlined, as above)
            gout_window[co] = load_unit_window_line_aligned<scalar_t>(row, p.out_width, t_lo, window_for(n),
                                                                      gout.data() + co * span, nullptr, 0);
            continue;
          }
        }
        gout_window[co] = load_window_line_aligned(row, p.out_width, p.gout_stride_w, t_lo, window_for(n),
                                                   gout.data() + co * span);
      }
      const int64_t phases = std::min(s, n);
      for (int64_t q = 0; q < phases; ++q) {
        const int64_t count = (n - q + s - 1) / s;  // positions of this phase in the tile
        // the taps serving this phase's residue, their packed weights and grad_out's rows
        const int64_t c = class_of(floor_mod(j0 + q, s));
        const int64_t class_size = c < 0 ? 0 : class_first[c + 1] - class_first[c];
        const acc_t* w = packed_weights(h, g, c);
        point_w_rows(w, class_size);
        const int64_t taps = class_size * cout_g;
        for (int64_t t = 0; t < class_size; ++t) {
          const int64_t offset = floor_div(p.grad_numerator(j0 + q, class_taps[class_first[c] + t]), s) - t_lo;
          for (int64_t co = 0; co < cout_g; ++co) rows[co * class_size + t] = gout_window[co] + offset;
        }
        if constexpr (std::is_same_v<scalar_t, acc_t>) {
          if (direct_store) {  // the phase is the tile: straight into grad_x's rows, from zero
            scalar_t* out0 = grad_x + p.grad_input_offset(b, g * cin_g, h, j0);
            if (one_row_of_taps)  // rows[k] = rows[0] - k * dilation: as the in-place depthwise
              taps_into_grad_x(count, K, -p.dilation, w, rows[0], nullptr, out0);
            else
              gemm_rows_into_grad_x(cin_g, count, taps, w_rows.data(), rows.data(), nullptr, out0, p.rows * p.width,
                                    nullptr);
            continue;
          }
        }
        // sums from zero (each phase its own rows of acc), then stored
        mk.gemm_rows_set(cin_g, count, taps, w_rows.data(), rows.data(), nullptr, acc.data() + q * cin_g * ldc, ldc,
                         nullptr);
      }
      if (direct_store) continue;
      // the phases' sums into the tile's positions j0 + q + s * m, in order of position
      for (int64_t ci = 0; ci < cin_g; ++ci)
        store_phases(acc.data() + ci * ldc, cin_g * ldc, s, n, grad_x + p.grad_input_offset(b, g * cin_g + ci, h, j0));
    }
    if (streaming) store_fence();
  });
}

}  // namespace rowconv::cpu
