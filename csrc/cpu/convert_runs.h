// Runs of contiguous elements converted between a tensor's dtype and the
// accumulation type, where the kernels read their inputs and write their
// results: float16 by F16C vectors (microkernels.h: half_conversions) where
// the CPU has it (with c10::Half's scalar conversion in software, the forum
// shape's float16 forward took 1.91 ms against float32's 0.41 on Zen 4; 0.60
// ms with these), float and double (no conversion) by a copy in 32-byte
// vectors where the CPU has AVX-512 (microkernels.h: copy_bytes; against
// the cast loop, GCC's 16-byte vectors: 0.92-1.04x the time on Zen 4),
// every other type by a cast loop.
// The same values either way: exact widening, rounding to nearest even.
#pragma once

#include <c10/util/Half.h>

#include <cstdint>
#include <type_traits>

#include "microkernels.h"

namespace rowconv::cpu {

// dst[u] = acc_t(src[u]) for u < n
template <typename scalar_t, typename acc_t>
inline void load_run(const scalar_t* src, int64_t n, acc_t* dst) {
  if constexpr (std::is_same_v<scalar_t, c10::Half> && std::is_same_v<acc_t, float>) {
    if (const HalfConversions* hc = half_conversions())
      return hc->to_float(n, reinterpret_cast<const uint16_t*>(src), dst);
  }
  if constexpr (std::is_same_v<scalar_t, acc_t>) {
    static const CopyBytes copy = copy_bytes();
    if (copy) return copy(n * static_cast<int64_t>(sizeof(acc_t)), src, dst);
  }
  for (int64_t u = 0; u < n; ++u) dst[u] = static_cast<acc_t>(src[u]);
}

// dst[u] = scalar_t(src[u]) for u < n (rounded to the tensor's dtype)
template <typename acc_t, typename scalar_t>
inline void store_run(const acc_t* src, int64_t n, scalar_t* dst) {
  if constexpr (std::is_same_v<scalar_t, c10::Half> && std::is_same_v<acc_t, float>) {
    if (const HalfConversions* hc = half_conversions())
      return hc->to_half(n, src, reinterpret_cast<uint16_t*>(dst));
  }
  for (int64_t u = 0; u < n; ++u) dst[u] = static_cast<scalar_t>(src[u]);
}

}  // namespace rowconv::cpu
