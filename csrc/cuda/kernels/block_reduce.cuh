// Sum of one value per thread over a block, in a fixed order (warp shuffles,
// then the warps' sums in shared memory): deterministic, no atomics.
#pragma once

#include "../device.h"

namespace rowconv::cuda {

// The block sum, valid in thread 0. `scratch` holds one value per warp; all
// threads of the block must call this.
template <typename T>
ROWCONV_DEVICE T block_sum(T v, T* scratch) {
  constexpr unsigned kWarp = 32;
  for (unsigned offset = kWarp / 2; offset > 0; offset /= 2) v += shfl_down(v, offset);
  const unsigned lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const unsigned warps = (blockDim.x + kWarp - 1) / kWarp;
  if (lane == 0) scratch[warp] = v;
  sync_threads();
  if (warp == 0) {
    v = lane < warps ? scratch[lane] : T(0);
    for (unsigned offset = kWarp / 2; offset > 0; offset /= 2) v += shfl_down(v, offset);
  }
  sync_threads();  // scratch may be reused right after
  return v;
}

}  // namespace rowconv::cuda
