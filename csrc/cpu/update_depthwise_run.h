// The depthwise decode step's unit-step run (update_kernel.h), in a header
// of its own so that the micro-kernels compile the same loop for AVX2 and
// AVX-512 (microkernels.cpp: depthwise_unit_run) as update_kernel.h does for
// the baseline instruction set.
#pragma once

#include <cstdint>

namespace rowconv::cpu {

// The depthwise step over a run of n (row, channel) pairs laid out at unit
// steps: x and y one element each, the state K - 1 (rows exactly the held
// inputs, shifted, dilation 1), the weights K and the bias one. Written so
// that the compiler vectorises it across the run (each pair's sum in tap
// order, as the scalar form): the step streams the state, and this keeps
// many of its loads in flight.
template <int kK, bool kBias, typename T>
__attribute__((always_inline)) inline void update_depthwise_unit_run(int64_t n, const T* __restrict x,
                                                                     T* __restrict state, const T* __restrict w,
                                                                     const T* __restrict bias, T* __restrict y) {
  for (int64_t i = 0; i < n; ++i) {
    T v[kK];
    for (int k = 0; k + 1 < kK; ++k) v[k] = state[i * (kK - 1) + k];
    v[kK - 1] = x[i];
    T acc = kBias ? bias[i] : T(0);
    for (int k = 0; k < kK; ++k) acc += w[i * kK + k] * v[k];
    for (int k = 0; k + 1 < kK; ++k) state[i * (kK - 1) + k] = v[k + 1];
    y[i] = acc;
  }
}

}  // namespace rowconv::cpu
