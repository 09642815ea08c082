// Gradient of the weight on the CPU (a correlation reduced over batch and width):
//   grad_w[h, co, ci, k] = sum_b sum_t grad_out[b, co, h, t] * x[b, ci, h, t*stride - pad_left + k*dilation]
// Work item: one (h, group, block of output channels); it owns its slice of
// grad_w and reduces over b and width tiles in a fixed order (the dot_rows
// micro-kernel against the rows of InputRows), so the result does not depend
// on the thread count. Blocks of output channels only exist to keep both
// cores busy when H * groups is small.
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
  const MicroKernels<acc_t>& mk = micro_kernels<acc_t>();
  const int64_t cout_g = p.out_per_group, cin_g = p.in_per_group;
  const int64_t R = cin_g * p.kernel_size;
  const int64_t row_groups = p.rows * p.groups;
  const int64_t want_items = 4 * at::get_num_threads();
  const int64_t blocks = std::clamp<int64_t>(
      (want_items + row_groups - 1) / std::max<int64_t>(row_groups, 1), 1,
      std::max<int64_t>(cout_g, 1));
  const int64_t block = (cout_g + blocks - 1) / blocks;
  // The tile fixes the order of the reduction, so it depends on the shape only.
  const int64_t tile = tile_width(cout_g + cin_g, p.out_width);
  const int64_t tiles = tile_count(p.out_width, tile);

  at::parallel_for(0, row_groups * blocks, 1, [&](int64_t begin, int64_t end) {
    InputRows<acc_t> in(p, tile);
    std::vector<acc_t> gout(block * tile), acc(block * R);
    std::vector<const acc_t*> gout_rows(block);
    for (int64_t co = 0; co < block; ++co) gout_rows[co] = gout.data() + co * tile;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t blk = item % blocks;
      const int64_t g = item / blocks % p.groups;
      const int64_t h = item / blocks / p.groups;
      const int64_t co_begin = g * cout_g + blk * block;
      const int64_t nco = std::min(block, cout_g - blk * block);
      if (nco <= 0) continue;
      std::fill(acc.begin(), acc.end(), acc_t(0));
      for (int64_t b = 0; b < p.batch; ++b) {
        for (int64_t tile_idx = 0; tile_idx < tiles; ++tile_idx) {
          const int64_t t0 = tile_idx * tile, n = std::min(tile, p.out_width - t0);
          for (int64_t co = 0; co < nco; ++co) {
            const scalar_t* src = grad_out + p.gout_offset(b, co_begin + co, h, t0);
            for (int64_t i = 0; i < n; ++i)
              gout[co * tile + i] = static_cast<acc_t>(src[i * p.gout_stride_w]);
          }
          in.gather(x, b, h, g, t0, n);
          mk.dot_rows(nco, R, n, gout_rows.data(), in.rows.data(), acc.data(), R);
        }
      }
      for (int64_t co = 0; co < nco; ++co) {
        scalar_t* out = grad_w + p.weight_offset(h, co_begin + co, 0, 0);
        for (int64_t r = 0; r < R; ++r) out[r] = static_cast<scalar_t>(acc[co * R + r]);
      }
    }
  });
}

}  // namespace rowconv::cpu
