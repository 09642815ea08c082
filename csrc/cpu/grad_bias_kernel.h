// Gradient of the bias on the CPU:
//   grad_bias[h, co] = sum_b sum_t grad_out[b, co, h, t]
// Work item: one (co, h), reduced over b and t in a fixed order.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <vector>

#include "cpu_tiling.h"

namespace rowconv::cpu {

template <typename scalar_t>
void row_conv1d_grad_bias(const RowConvParams& p, const scalar_t* grad_out, scalar_t* grad_bias) {
  using acc_t = at::opmath_type<scalar_t>;
  // 16 partial sums (add_partials16): vectorisable without reassociation,
  // in a fixed order, each a sum of the blocks' sums in double. Summed in
  // float over all B * W terms (before), they erred up to 200x more than
  // PyTorch's grad_out.sum() (Zen 3, 2 x 5000 terms: 1e-4 on sums of 50).
  // (In vectors of the CPU's instruction set, where GCC's code for a plain
  // loop, for the baseline ISA, took 1.7-3.2x the time.)
  constexpr int kParts = 16;
  const MicroKernels<acc_t>& mk = micro_kernels<acc_t>();
  // Items are (co, h), h fastest; a thread serves runs of up to kRun items
  // (neighbouring rows of each (b, co) plane) per b, so that its reads go on
  // in one stretch rather than a jump per b and row: the longer the run, the
  // longer the stretch (runs of 128 rather than 16 took 0.96x the time on
  // the forum shape, 0.87x on its 512-wide chunks).
  constexpr int64_t kRun = 128;
  const int64_t items = p.rows * p.out_channels;
  at::parallel_for(0, items, grain_for(p.batch * p.out_width), [&](int64_t begin, int64_t end) {
    std::vector<std::array<double, kParts>> part(std::min(kRun, end - begin));
    for (int64_t first_item = begin; first_item < end; first_item += kRun) {
      const int64_t run_end = std::min(end, first_item + kRun);
      std::fill_n(part.begin(), run_end - first_item, std::array<double, kParts>{});
      for (int64_t b = 0; b < p.batch; ++b) {
        for (int64_t item = first_item; item < run_end; ++item) {
          double* sum = part[item - first_item].data();
          const scalar_t* row = grad_out + p.gout_offset(b, item / p.rows, item % p.rows, 0);
          const int64_t step = p.gout_stride_w, n = p.out_width;
          if constexpr (std::is_same_v<scalar_t, acc_t>) {
            if (step == 1) {
              mk.add_partials16(n, row, sum);
              continue;
            }
          }
          // other rows (the half types, strided rows) a block at a time,
          // converted into acc_t by load_window: the same blocks, so the same sums
          acc_t block[kPartialsBlock];
          for (int64_t t = 0, m = 0; t < n; t += m) {
            m = std::min(kPartialsBlock, n - t);
            load_window(row, n, step, t, m, block);
            mk.add_partials16(m, block, sum);
          }
        }
      }
      for (int64_t item = first_item; item < run_end; ++item) {
        double total = 0;
        for (int j = 0; j < kParts; ++j) total += part[item - first_item][j];
        grad_bias[p.bias_offset(item % p.rows, item / p.rows)] = static_cast<scalar_t>(total);
      }
    }
  });
}

}  // namespace rowconv::cpu
