// Fixed-order sums for the reductions (deterministic, no atomics): over a
// warp (shuffles), over a block (warps, then their sums in shared memory),
// and over the partial sums of fixed slices of a reduction (sum_splits).
#pragma once

#include "../device.h"

namespace rowconv::cuda {

// The sum of v over the warp, valid in lane 0; every lane of the warp must call this.
template <typename T>
ROWCONV_DEVICE T warp_sum(T v) {
  for (unsigned offset = 16; offset > 0; offset /= 2) v += shfl_down(v, offset);
  return v;
}

// The block sum, valid in thread 0. `scratch` holds one value per warp; all
// threads of the block must call this.
template <typename T>
ROWCONV_DEVICE T block_sum(T v, T* scratch) {
  constexpr unsigned kWarp = 32;
  v = warp_sum(v);
  const unsigned lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const unsigned warps = (blockDim.x + kWarp - 1) / kWarp;
  if (lane == 0) scratch[warp] = v;
  sync_threads();
  if (warp == 0) v = warp_sum(lane < warps ? scratch[lane] : T(0));
  sync_threads();  // scratch may be reused right after
  return v;
}

// out[i] = sum over the splits, in order, of partial[split * outputs + i]:
// the second pass of the reductions split over blocks.
ROWCONV_UNBOUNDED_KERNEL(row_conv1d_sum_splits)
template <typename scalar_t, typename acc_t>
ROWCONV_GLOBAL void row_conv1d_sum_splits(int64_t outputs, int64_t splits, const acc_t* __restrict__ partial,
                                          scalar_t* __restrict__ out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < outputs;
       i += int64_t(gridDim.x) * blockDim.x) {
    acc_t sum = 0;
    for (int64_t s = 0; s < splits; ++s) sum += partial[s * outputs + i];
    out[i] = static_cast<scalar_t>(sum);
  }
}

}  // namespace rowconv::cuda
