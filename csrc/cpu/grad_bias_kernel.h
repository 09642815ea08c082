// Gradient of the bias on the CPU:
//   grad_bias[h, co] = sum_b sum_t grad_out[b, co, h, t]
// Work item: one (h, co), reduced over b and t in a fixed order.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include "cpu_tiling.h"

namespace rowconv::cpu {

template <typename scalar_t>
void row_conv1d_grad_bias(const RowConvParams& p, const scalar_t* grad_out, scalar_t* grad_bias) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t items = p.rows * p.out_channels;
  at::parallel_for(0, items, grain_for(p.batch * p.out_width), [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t h = item / p.out_channels, co = item % p.out_channels;
      // 16 partial sums: vectorisable without reassociation, in a fixed order.
      acc_t part[16] = {};
      for (int64_t b = 0; b < p.batch; ++b) {
        const scalar_t* row = grad_out + p.gout_offset(b, co, h, 0);
        const int64_t step = p.gout_stride_w, n = p.out_width;
        int64_t t = 0;
        for (; t + 16 <= n; t += 16)
          for (int j = 0; j < 16; ++j) part[j] += static_cast<acc_t>(row[(t + j) * step]);
        for (; t < n; ++t) part[t % 16] += static_cast<acc_t>(row[t * step]);
      }
      acc_t sum = 0;
      for (int j = 0; j < 16; ++j) sum += part[j];
      grad_bias[p.bias_offset(h, co)] = static_cast<scalar_t>(sum);
    }
  });
}

}  // namespace rowconv::cpu
