// The decode step on CUDA (and on the CPU emulator); the index rules are
// row_conv1d_update_params.h's, shared with the CPU kernel:
//   y[b, co, h, t] = bias[h, co] + sum_{ci in group(co)} sum_k weight[h, co, ci, k] * z[t - (K-1-k)*d]
// with z[r] = x[b, ci, h, r] (r >= 0) or the held input r of the state row
// (r < 0), then the new inputs go into the state.
// A block owns G.items_per_block consecutive (b, h, group) items. Phase 1:
// its threads stride over the items' (output channel, step) pairs and
// compute them straight from global memory (a decode step reads each input a
// few times; L1 serves the repeats). A barrier, then phase 2: one thread per
// (item, input channel) writes that state row, in increasing positions (the
// shifted buffer reads position j + T before writing it). So every held
// input is read before any is overwritten; items own disjoint state rows (the
// checks refuse repeated pool rows), so blocks never share one.
#pragma once

#include "../../row_conv1d_update_params.h"
#include "../device.h"

namespace rowconv::cuda {

struct UpdateGeometry {
  int64_t items_per_block;  // (b, h, group) items
  int64_t total_blocks;
};

ROWCONV_DECLARE_LAUNCH_BOUNDS(row_conv1d_update, 128)
template <typename scalar_t, typename acc_t>
ROWCONV_GLOBAL ROWCONV_LAUNCH_BOUNDS(row_conv1d_update) void row_conv1d_update(
    RowConvUpdateParams p, UpdateGeometry G, const scalar_t* __restrict__ x,
    scalar_t* __restrict__ state, const scalar_t* __restrict__ weight,
    const scalar_t* __restrict__ bias, const int64_t* __restrict__ cache_seqlens,
    const int64_t* __restrict__ state_indices, scalar_t* __restrict__ y) {
  const RowConvParams& conv = p.conv;
  const int64_t items = conv.batch * conv.rows * conv.groups, T = conv.width, S = p.state_len;
  const int64_t cin_g = conv.in_per_group, cout_g = conv.out_per_group, K = conv.kernel_size;
  for (int64_t blk = blockIdx.x; blk < G.total_blocks; blk += gridDim.x) {
    const int64_t first = blk * G.items_per_block;
    const int64_t n = items - first < G.items_per_block ? items - first : G.items_per_block;
    for (int64_t i = threadIdx.x; i < n * cout_g * T; i += blockDim.x) {  // phase 1: outputs
      const int64_t item = first + i / (cout_g * T), t = i % T, co_g = i / T % cout_g;
      const int64_t g = item % conv.groups, h = item / conv.groups % conv.rows, b = item / conv.groups / conv.rows;
      const int64_t co = g * cout_g + co_g, row = update_state_row(p, state_indices, b);
      acc_t acc = 0;
      if (row >= 0) {
        const int64_t start = update_state_start(cache_seqlens, b, S);
        if (bias != nullptr) acc = static_cast<acc_t>(bias[conv.bias_offset(h, co)]);
        for (int64_t ci = 0; ci < cin_g; ++ci) {
          const int64_t c = g * cin_g + ci;
          const scalar_t* x_row = x + conv.in_offset(b, c, h, 0);
          const scalar_t* state_row = state + p.state_row_offset(row, c, h);
          for (int64_t k = 0; k < K; ++k) {
            const scalar_t v = update_input(p, x_row, state_row, start, conv.input_position(t, k));
            acc += static_cast<acc_t>(weight[conv.weight_offset(h, co, ci, k)]) * static_cast<acc_t>(v);
          }
        }
      }
      y[conv.output_offset(b, co, h, t)] = static_cast<scalar_t>(acc);  // a skipped entry: zeros
    }
    sync_threads();  // every held input of the block's items is read
    for (int64_t i = threadIdx.x; i < n * cin_g; i += blockDim.x) {  // phase 2: the state
      const int64_t item = first + i / cin_g, ci = i % cin_g;
      const int64_t g = item % conv.groups, h = item / conv.groups % conv.rows, b = item / conv.groups / conv.rows;
      const int64_t c = g * cin_g + ci, row = update_state_row(p, state_indices, b);
      if (row < 0) continue;
      store_new_inputs(p, x + conv.in_offset(b, c, h, 0), state + p.state_row_offset(row, c, h),
                       cache_seqlens != nullptr, update_state_start(cache_seqlens, b, S));
    }
  }
}

}  // namespace rowconv::cuda
