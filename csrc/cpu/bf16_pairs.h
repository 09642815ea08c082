// bfloat16 reductions in pairs of channels for AVX-512 BF16's vdpbf16ps
// (Bf16PairKernels::gemm_pairs_set): the windows of channels 2c and 2c + 1
// interleaved into one row of 32-bit pairs, and weights packed into the
// matching pairs. A missing partner (an odd channel count) reads zeros.
#pragma once

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "microkernels.h"

namespace rowconv::cpu {

// (lo, hi) as one 32-bit pair, lo in the low half (the term order vdpbf16ps reads).
inline uint32_t bf16_pair(c10::BFloat16 lo, c10::BFloat16 hi) {
  return static_cast<uint32_t>(lo.x) | static_cast<uint32_t>(hi.x) << 16;
}

// The weights of every (h, group) packed into pairs once a call, `per_group`
// pairs each, by pack(h, g, dst), the row groups split between threads. (Per
// work item, where (h, group) changed, the wide bf16 grad-input packed them
// once a batch entry and row: 11% of its time, Zen 5.)
template <typename Pack>
std::vector<uint32_t> pack_weight_pairs(int64_t rows, int64_t groups, int64_t per_group, const Pack& pack) {
  std::vector<uint32_t> pairs(rows * groups * per_group);
  at::parallel_for(0, rows * groups, std::max<int64_t>(1, 16384 / std::max<int64_t>(per_group, 1)),
                   [&](int64_t begin, int64_t end) {
                     for (int64_t hg = begin; hg < end; ++hg)
                       pack(hg / groups, hg % groups, pairs.data() + hg * per_group);
                   });
  return pairs;
}

// Rows of channel pairs, `row_length` pairs each (the window and the
// micro-kernel's slack for whole-vector reads; zeros at first, and past the
// loaded count what an earlier window left: only discarded columns read it).
struct ChannelPairRows {
  ChannelPairRows(int64_t channels, int64_t row_length)
      : channels(channels), row_length(row_length), pairs((channels + 1) / 2 * row_length, 0),
        even(row_length), odd(row_length) {}

  // Row cp = interleaved windows of channels 2cp and 2cp + 1, where
  // window(channel, count, room) returns `count` bf16 values of that
  // channel's window: in place where they lie in the tensor as they are,
  // else written into room.
  template <typename Window>
  void fill(const Bf16PairKernels& bk, int64_t count, const Window& window) {
    for (int64_t cp = 0; cp < (channels + 1) / 2; ++cp) {
      const c10::BFloat16* e = window(2 * cp, count, even.data());
      const c10::BFloat16* o = odd.data();
      if (2 * cp + 1 < channels) {
        o = window(2 * cp + 1, count, odd.data());
      } else {
        std::fill_n(odd.data(), count, c10::BFloat16(0));
      }
      bk.interleave_pairs(count, reinterpret_cast<const uint16_t*>(e), reinterpret_cast<const uint16_t*>(o), row(cp));
    }
  }
  uint32_t* row(int64_t cp) { return pairs.data() + cp * row_length; }

  const int64_t channels, row_length;
  std::vector<uint32_t> pairs;
  std::vector<c10::BFloat16> even, odd;
};

}  // namespace rowconv::cpu
