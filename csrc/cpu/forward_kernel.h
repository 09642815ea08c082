// Forward on the CPU:
//   y[b, co, h, t] = bias[h, co]
//       + sum_{ci in group(co)} sum_k weight[h, co, ci, k] * x[b, ci, h, t*stride - pad_left + k*dilation]
// Work item: one (b, h, group, tile of output positions). For each input
// channel of the group the tile's input window is loaded once and reused by
// every output channel of the group.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <vector>

#include "cpu_tiling.h"

namespace rowconv::cpu {

template <typename scalar_t>
void row_conv1d_forward(const RowConvParams& p, const scalar_t* x, const scalar_t* weight,
                        const scalar_t* bias, scalar_t* y) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t cout_g = p.out_per_group, cin_g = p.in_per_group, K = p.kernel_size;
  const int64_t tile = tile_width(cout_g, p.out_width);
  const int64_t tiles = tile_count(p.out_width, tile);
  const int64_t items = p.batch * p.rows * p.groups * tiles;
  const int64_t grain = grain_for(cout_g * cin_g * K * tile);

  at::parallel_for(0, items, grain, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(cout_g * tile);
    std::vector<acc_t> window(p.forward_window(tile));
    for (int64_t item = begin; item < end; ++item) {
      int64_t rest = item;
      const int64_t tile_idx = rest % tiles;
      rest /= tiles;
      const int64_t g = rest % p.groups;
      rest /= p.groups;
      const int64_t h = rest % p.rows;
      const int64_t b = rest / p.rows;
      const int64_t t0 = tile_idx * tile;
      const int64_t n = std::min(tile, p.out_width - t0);
      const int64_t start = p.input_position(t0, 0);
      const int64_t span = p.forward_window(n);

      for (int64_t co = 0; co < cout_g; ++co) {
        const acc_t b0 = bias ? static_cast<acc_t>(bias[p.bias_offset(h, g * cout_g + co)])
                              : acc_t(0);
        std::fill(acc.begin() + co * tile, acc.begin() + co * tile + n, b0);
      }
      for (int64_t ci = 0; ci < cin_g; ++ci) {
        load_input_window(p, x, b, g * cin_g + ci, h, start, span, window.data());
        for (int64_t co = 0; co < cout_g; ++co) {
          const scalar_t* w = weight + p.weight_offset(h, g * cout_g + co, ci, 0);
          for (int64_t k = 0; k < K; ++k) {
            strided_axpy(acc.data() + co * tile, window.data() + k * p.dilation,
                         static_cast<acc_t>(w[k]), n, p.stride);
          }
        }
      }
      for (int64_t co = 0; co < cout_g; ++co) {
        scalar_t* out = y + p.output_offset(b, g * cout_g + co, h, t0);
        const acc_t* a = acc.data() + co * tile;
        for (int64_t i = 0; i < n; ++i) out[i] = static_cast<scalar_t>(a[i]);
      }
    }
  });
}

}  // namespace rowconv::cpu
