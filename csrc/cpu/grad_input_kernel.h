// Gradient of the input on the CPU (a transposed convolution):
//   grad_x[b, ci, h, j] = sum_{co in group(ci)} sum_k weight[h, co, ci, k] * up[b, co, h, j + pad_left - k*dilation]
// where up is grad_out upsampled by the stride (grad_out[u / stride] where u
// is a multiple of the stride, zero elsewhere). Gathering over j (instead of
// scattering from t) lets each work item own its outputs: one
// (b, h, group, tile of input positions).
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <vector>

#include "cpu_tiling.h"

namespace rowconv::cpu {

template <typename scalar_t>
void row_conv1d_grad_input(const RowConvParams& p, const scalar_t* grad_out,
                           const scalar_t* weight, scalar_t* grad_x) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t cout_g = p.out_per_group, cin_g = p.in_per_group, K = p.kernel_size;
  const int64_t tile = tile_width(cin_g, p.width);
  const int64_t tiles = tile_count(p.width, tile);
  const int64_t items = p.batch * p.rows * p.groups * tiles;
  const int64_t grain = grain_for(cout_g * cin_g * K * tile);

  at::parallel_for(0, items, grain, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(cin_g * tile);
    std::vector<acc_t> window(p.grad_input_window(tile));
    for (int64_t item = begin; item < end; ++item) {
      int64_t rest = item;
      const int64_t tile_idx = rest % tiles;
      rest /= tiles;
      const int64_t g = rest % p.groups;
      rest /= p.groups;
      const int64_t h = rest % p.rows;
      const int64_t b = rest / p.rows;
      const int64_t j0 = tile_idx * tile;
      const int64_t n = std::min(tile, p.width - j0);
      const int64_t start = p.grad_input_window_start(j0);
      const int64_t span = p.grad_input_window(n);

      std::fill(acc.begin(), acc.end(), acc_t(0));
      for (int64_t co = 0; co < cout_g; ++co) {
        load_upsampled_grad_window(p, grad_out, b, g * cout_g + co, h, start, span,
                                   window.data());
        for (int64_t ci = 0; ci < cin_g; ++ci) {
          const scalar_t* w = weight + p.weight_offset(h, g * cout_g + co, ci, 0);
          for (int64_t k = 0; k < K; ++k) {
            strided_axpy(acc.data() + ci * tile, window.data() + (K - 1 - k) * p.dilation,
                         static_cast<acc_t>(w[k]), n, int64_t(1));
          }
        }
      }
      for (int64_t ci = 0; ci < cin_g; ++ci) {
        scalar_t* out = grad_x + p.grad_input_offset(b, g * cin_g + ci, h, j0);
        const acc_t* a = acc.data() + ci * tile;
        for (int64_t i = 0; i < n; ++i) out[i] = static_cast<scalar_t>(a[i]);
      }
    }
  });
}

}  // namespace rowconv::cpu
