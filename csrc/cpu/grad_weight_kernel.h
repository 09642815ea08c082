// Gradient of the weight on the CPU (a correlation reduced over batch and width):
//   grad_w[h, co, ci, k] = sum_b sum_t grad_out[b, co, h, t] * x[b, ci, h, t*stride - pad_left + k*dilation]
// Work item: one (h, group, block of output channels); it owns its slice of
// grad_w and reduces over b and t in a fixed order, so the result does not
// depend on the thread count. Blocks of output channels only exist to keep
// both cores busy when H * groups is small.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <vector>

#include "cpu_tiling.h"

namespace rowconv::cpu {

template <typename scalar_t>
void row_conv1d_grad_weight(const RowConvParams& p, const scalar_t* grad_out, const scalar_t* x,
                            scalar_t* grad_w) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t cout_g = p.out_per_group, cin_g = p.in_per_group, K = p.kernel_size;
  // Enough blocks for every thread, when the rows and groups alone are too few.
  const int64_t want_items = 4 * at::get_num_threads();
  const int64_t row_groups = p.rows * p.groups;
  const int64_t blocks = std::clamp<int64_t>(
      (want_items + row_groups - 1) / std::max<int64_t>(row_groups, 1), 1,
      std::max<int64_t>(cout_g, 1));
  const int64_t block = (cout_g + blocks - 1) / std::max<int64_t>(blocks, 1);
  // The tile fixes the order of the reduction, so it depends on the shape only.
  const int64_t tile = tile_width(cout_g, p.out_width);
  const int64_t tiles = tile_count(p.out_width, tile);
  const int64_t items = row_groups * blocks;

  at::parallel_for(0, items, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> gout(block * tile);
    std::vector<acc_t> window(p.forward_window(tile));
    std::vector<acc_t> acc(block * cin_g * K);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t blk = item % blocks;
      const int64_t g = (item / blocks) % p.groups;
      const int64_t h = item / blocks / p.groups;
      const int64_t co_begin = g * cout_g + blk * block;
      const int64_t nco = std::min(block, cout_g - blk * block);
      if (nco <= 0) continue;

      std::fill(acc.begin(), acc.end(), acc_t(0));
      for (int64_t b = 0; b < p.batch; ++b) {
        for (int64_t tile_idx = 0; tile_idx < tiles; ++tile_idx) {
          const int64_t t0 = tile_idx * tile;
          const int64_t n = std::min(tile, p.out_width - t0);
          for (int64_t co = 0; co < nco; ++co) {
            const scalar_t* src = grad_out + p.gout_offset(b, co_begin + co, h, t0);
            for (int64_t i = 0; i < n; ++i)
              gout[co * tile + i] = static_cast<acc_t>(src[i * p.gout_stride_w]);
          }
          const int64_t start = p.input_position(t0, 0);
          const int64_t span = p.forward_window(n);
          for (int64_t ci = 0; ci < cin_g; ++ci) {
            load_input_window(p, x, b, g * cin_g + ci, h, start, span, window.data());
            for (int64_t co = 0; co < nco; ++co) {
              acc_t* a = acc.data() + (co * cin_g + ci) * K;
              for (int64_t k = 0; k < K; ++k) {
                a[k] += strided_dot(gout.data() + co * tile, window.data() + k * p.dilation, n,
                                    p.stride);
              }
            }
          }
        }
      }
      for (int64_t co = 0; co < nco; ++co) {
        for (int64_t ci = 0; ci < cin_g; ++ci) {
          scalar_t* out = grad_w + p.weight_offset(h, co_begin + co, ci, 0);
          const acc_t* a = acc.data() + (co * cin_g + ci) * K;
          for (int64_t k = 0; k < K; ++k) out[k] = static_cast<scalar_t>(a[k]);
        }
      }
    }
  });
}

}  // namespace rowconv::cpu
