// Gradient of the bias on CUDA (and on the CPU emulator):
//   grad_bias[h, co] = sum_b sum_t grad_out[b, co, h, t]
// A block owns one (h, co); its threads stride over the (b, t) pairs and a
// fixed-shape block reduction sums their partials: deterministic, no atomics.
#pragma once

#include "../../row_conv1d_params.h"
#include "../device.h"
#include "block_reduce.cuh"

namespace rowconv::cuda {

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
