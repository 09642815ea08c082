// Gradients of the weight and of the bias on CUDA (and on the CPU emulator):
//   grad_w[h, co, ci, k] = sum_b sum_t grad_out[b, co, h, t] * x[b, ci, h, t*stride - pad_left + k*dilation]
//   grad_bias[h, co]     = sum_b sum_t grad_out[b, co, h, t]
// A block owns one output slice ((h, co, ci, a chunk of kTaps taps), or
// (h, co)); its threads stride over the (b, t) pairs and a fixed-shape block
// reduction sums their partials: deterministic, with no atomics.
#pragma once

#include "../../row_conv1d_params.h"
#include "../device.h"
#include "block_reduce.cuh"
#include "launch_geometry.h"

namespace rowconv::cuda {

template <typename scalar_t, typename acc_t, int kTaps>
ROWCONV_GLOBAL void row_conv1d_grad_weight_reduce(RowConvParams p, ReduceGeometry G,
                                                  const scalar_t* __restrict__ grad_out,
                                                  const scalar_t* __restrict__ x,
                                                  scalar_t* __restrict__ grad_w) {
  acc_t* scratch = dynamic_shared<acc_t>();  // one value per warp
  const int64_t pairs = p.batch * p.out_width;
  for (int64_t blk = blockIdx.x; blk < G.total_blocks; blk += gridDim.x) {
    int64_t rest = blk;
    const int64_t chunk = rest % G.tap_chunks;
    rest /= G.tap_chunks;
    const int64_t ci = rest % p.in_per_group;
    rest /= p.in_per_group;
    const int64_t co = rest % p.out_channels, h = rest / p.out_channels;
    const int64_t c = co / p.out_per_group * p.in_per_group + ci;  // input channel of x
    const int64_t k0 = chunk * kTaps;

    acc_t acc[kTaps];
    for (int kk = 0; kk < kTaps; ++kk) acc[kk] = acc_t(0);
    for (int64_t i = threadIdx.x; i < pairs; i += blockDim.x) {
      const int64_t b = i / p.out_width, t = i % p.out_width;
      const acc_t gv = static_cast<acc_t>(grad_out[p.gout_offset(b, co, h, t)]);
      for (int kk = 0; kk < kTaps; ++kk) {
        const int64_t pos = p.input_position(t, k0 + kk);
        if (k0 + kk < p.kernel_size && pos >= 0 && pos < p.width)
          acc[kk] += gv * static_cast<acc_t>(x[p.in_offset(b, c, h, pos)]);
      }
    }
    for (int kk = 0; kk < kTaps; ++kk) {
      const acc_t total = block_sum(acc[kk], scratch);
      if (threadIdx.x == 0 && k0 + kk < p.kernel_size)
        grad_w[p.weight_offset(h, co, ci, k0 + kk)] = static_cast<scalar_t>(total);
    }
  }
}

template <typename scalar_t, typename acc_t>
ROWCONV_GLOBAL void row_conv1d_grad_bias_reduce(RowConvParams p, int64_t total_blocks,
                                                const scalar_t* __restrict__ grad_out,
                                                scalar_t* __restrict__ grad_bias) {
  acc_t* scratch = dynamic_shared<acc_t>();
  const int64_t pairs = p.batch * p.out_width;
  for (int64_t blk = blockIdx.x; blk < total_blocks; blk += gridDim.x) {
    const int64_t co = blk % p.out_channels, h = blk / p.out_channels;
    acc_t acc = 0;
    for (int64_t i = threadIdx.x; i < pairs; i += blockDim.x)
      acc += static_cast<acc_t>(grad_out[p.gout_offset(i / p.out_width, co, h, i % p.out_width)]);
    const acc_t sum = block_sum(acc, scratch);
    if (threadIdx.x == 0) grad_bias[p.bias_offset(h, co)] = static_cast<scalar_t>(sum);
  }
}

}  // namespace rowconv::cuda
