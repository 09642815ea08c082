// Gradient of the weight on the CPU (a correlation reduced over batch and width):
//   grad_w[h, co, ci, k] = sum_b sum_t grad_out[b, co, h, t] * x[b, ci, h, t*stride - pad_left + k*dilation]
// Work item: one (h, group, block of output channels); it owns its slice of
// grad_w and reduces over b and width tiles in a fixed order (the dot_rows
// micro-kernel against the rows of InputRows, lane partials summed once at
// the end), so the result does not depend on the thread count. Blocks of
// output channels keep the partials in cache and both cores busy when
// H * groups is small.
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
  // Lane partials of a block: at most about 256 KiB.
  const int64_t max_block = std::max<int64_t>(1, (int64_t{1} << 18) / (R * mk.lanes * sizeof(acc_t)));
  const int64_t blocks = std::max(
      std::clamp<int64_t>((want_items + row_groups - 1) / std::max<int64_t>(row_groups, 1), 1,
                          std::max<int64_t>(cout_g, 1)),
      (cout_g + max_block - 1) / max_block);
  const int64_t unit = mk.dot_rows_block;
  const int64_t block = std::min(cout_g, ((cout_g + blocks - 1) / blocks + unit - 1) / unit * unit);
  // The tile fixes the order of the reduction, so it depends on the shape only.
  const int64_t tile = tile_width(cout_g + cin_g, p.out_width);
  const int64_t tiles = tile_count(p.out_width, tile);

  at::parallel_for(0, row_groups * blocks, 1, [&](int64_t begin, int64_t end) {
    InputRows<acc_t> in(p, tile);
    // gout rows: whole vectors are read past n (and masked)
    const int64_t ld = tile + mk.lanes;
    std::vector<acc_t> gout(block * ld), partials(block * R * mk.lanes), acc(block * R);
    std::vector<const acc_t*> gout_rows(block);
    for (int64_t co = 0; co < block; ++co) gout_rows[co] = gout.data() + co * ld;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t blk = item % blocks;
      const int64_t g = item / blocks % p.groups;
      const int64_t h = item / blocks / p.groups;
      const int64_t co_begin = g * cout_g + blk * block;
      const int64_t nco = std::min(block, cout_g - blk * block);
      if (nco <= 0) continue;
      std::fill(partials.begin(), partials.end(), acc_t(0));
      for (int64_t b = 0; b < p.batch; ++b) {
        for (int64_t tile_idx = 0; tile_idx < tiles; ++tile_idx) {
          const int64_t t0 = tile_idx * tile, n = std::min(tile, p.out_width - t0);
          for (int64_t co = 0; co < nco; ++co) {
            load_window(grad_out + p.gout_offset(b, co_begin + co, h, 0), p.out_width,
                        p.gout_stride_w, t0, n, gout.data() + co * ld);
          }
          in.gather(x, b, h, g, t0, n);
          mk.dot_rows(nco, R, n, gout_rows.data(), in.rows.data(), partials.data(), R);
        }
      }
      mk.reduce_lanes(nco * R, partials.data(), acc.data());
      for (int64_t co = 0; co < nco; ++co) {
        scalar_t* out = grad_w + p.weight_offset(h, co_begin + co, 0, 0);
        for (int64_t r = 0; r < R; ++r) out[r] = static_cast<scalar_t>(acc[co * R + r]);
      }
    }
  });
}

}  // namespace rowconv::cpu
