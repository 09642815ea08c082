// Host side of the CUDA kernels: picks each kernel's geometry and
// compile-time specialisation and launches it through `launch`, a callable
//   launch(kernel, grid_blocks, block_threads, shared_bytes, args...)
// that is a real CUDA launch (row_conv1d_cuda.cu) or the CPU emulator
// (cuda_emulation/), so both run exactly this code. Pointers only: no
// tensors, so the sanitizer harness needs no libtorch.
#pragma once

#include <ATen/OpMathType.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "../row_conv1d_params.h"
#include "kernels/forward.cuh"
#include "kernels/grad_input.cuh"
#include "kernels/grad_weight_bias.cuh"

namespace rowconv::cuda {

// Dynamic shared memory every GPU grants without an opt-in.
constexpr int64_t kDefaultSharedBytes = 48 * 1024;
constexpr int64_t kReduceThreads = 256;
constexpr int64_t kDirectThreads = 256;
constexpr int64_t kMaxGridBlocks = int64_t{1} << 20;  // the kernels stride over the rest

inline int64_t grid_for(int64_t blocks) { return std::clamp<int64_t>(blocks, 1, kMaxGridBlocks); }

// Threads (= positions) per block of the tiled kernels: a multiple of a warp,
// no wider than the row needs.
inline int64_t tile_threads(int64_t length) {
  return std::clamp<int64_t>((length + 31) / 32 * 32, 32, 128);
}

// Accumulators per thread: 1 for one channel per group (depthwise), else 4 or 8.
inline int channels_per_thread(int64_t channels) { return channels == 1 ? 1 : channels <= 4 ? 4 : 8; }

template <int... kValues, typename F>
void with_constant(int value, F&& f) {
  ((value == kValues ? (f(std::integral_constant<int, kValues>{}), true) : false) || ...);
}

// Fills G for a tiled kernel whose shared memory holds, per channel of a
// chunk, `span` positions plus `per_thread * K` weights. False when not even
// one channel fits (the caller takes the direct kernel).
template <typename acc_t>
bool tile_geometry(TileGeometry& G, int64_t tile, int64_t length, int64_t span, int64_t per_thread,
                   int64_t K, int64_t channels_in_chunks, int64_t channels_per_block,
                   int64_t outer_blocks, int64_t shared_bytes) {
  G.tile = tile;
  G.tiles = (length + tile - 1) / tile;
  G.channel_blocks = (channels_per_block + per_thread - 1) / per_thread;
  G.span = span;
  G.chunk = std::min<int64_t>(channels_in_chunks,
                              shared_bytes / static_cast<int64_t>(sizeof(acc_t)) / (span + per_thread * K));
  G.total_blocks = outer_blocks * G.channel_blocks * G.tiles;
  return G.chunk >= 1;
}

template <typename acc_t>
int64_t chunk_bytes(const TileGeometry& G, int64_t per_thread, int64_t K) {
  return G.chunk * (G.span + per_thread * K) * static_cast<int64_t>(sizeof(acc_t));
}

template <typename scalar_t, typename Launch>
void launch_forward(const Launch& launch, const RowConvParams& p, const scalar_t* x,
                    const scalar_t* weight, const scalar_t* bias, scalar_t* y,
                    int64_t shared_bytes = kDefaultSharedBytes) {
  using acc_t = at::opmath_type<scalar_t>;
  if (p.batch * p.out_channels * p.rows * p.out_width == 0) return;
  const int per_thread = channels_per_thread(p.out_per_group);
  const int64_t tile = tile_threads(p.out_width);
  TileGeometry G;
  if (!tile_geometry<acc_t>(G, tile, p.out_width, p.forward_window(tile), per_thread, p.kernel_size,
                            p.in_per_group, p.out_per_group, p.batch * p.rows * p.groups,
                            shared_bytes)) {
    const int64_t total = p.batch * p.out_channels * p.rows * p.out_width;
    launch(row_conv1d_forward_direct<scalar_t, acc_t>, grid_for((total + kDirectThreads - 1) / kDirectThreads),
           kDirectThreads, 0, p, total, x, weight, bias, y);
    return;
  }
  const int64_t smem = chunk_bytes<acc_t>(G, per_thread, p.kernel_size);
  with_constant<1, 4, 8>(per_thread, [&](auto out) {
    constexpr int kOut = decltype(out)::value;
    if (p.kernel_size == 3) {
      launch(row_conv1d_forward_tiled<scalar_t, acc_t, kOut, 3>, grid_for(G.total_blocks), tile, smem,
             p, G, x, weight, bias, y);
    } else {
      launch(row_conv1d_forward_tiled<scalar_t, acc_t, kOut, 0>, grid_for(G.total_blocks), tile, smem,
             p, G, x, weight, bias, y);
    }
  });
}

template <typename scalar_t, typename Launch>
void launch_grad_input(const Launch& launch, const RowConvParams& p, const scalar_t* grad_out,
                       const scalar_t* weight, scalar_t* grad_x,
                       int64_t shared_bytes = kDefaultSharedBytes) {
  using acc_t = at::opmath_type<scalar_t>;
  if (p.batch * p.in_channels * p.rows * p.width == 0) return;
  const int per_thread = channels_per_thread(p.in_per_group);
  const int64_t tile = tile_threads(p.width);
  // grad_out positions a tile of `tile` input positions reads, from t_lo on
  const int64_t span = (tile - 1 + (p.kernel_size - 1) * p.dilation) / p.stride + 2;
  TileGeometry G;
  if (!tile_geometry<acc_t>(G, tile, p.width, span, per_thread, p.kernel_size, p.out_per_group,
                            p.in_per_group, p.batch * p.rows * p.groups, shared_bytes)) {
    const int64_t total = p.batch * p.in_channels * p.rows * p.width;
    launch(row_conv1d_grad_input_direct<scalar_t, acc_t>,
           grid_for((total + kDirectThreads - 1) / kDirectThreads), kDirectThreads, 0, p, total,
           grad_out, weight, grad_x);
    return;
  }
  const int64_t smem = chunk_bytes<acc_t>(G, per_thread, p.kernel_size);
  with_constant<1, 4, 8>(per_thread, [&](auto in) {
    constexpr int kIn = decltype(in)::value;
    if (p.stride == 1) {
      launch(row_conv1d_grad_input_tiled<scalar_t, acc_t, kIn, true>, grid_for(G.total_blocks), tile,
             smem, p, G, grad_out, weight, grad_x);
    } else {
      launch(row_conv1d_grad_input_tiled<scalar_t, acc_t, kIn, false>, grid_for(G.total_blocks), tile,
             smem, p, G, grad_out, weight, grad_x);
    }
  });
}

template <typename scalar_t, typename Launch>
void launch_grad_weight(const Launch& launch, const RowConvParams& p, const scalar_t* grad_out,
                        const scalar_t* x, scalar_t* grad_w) {
  using acc_t = at::opmath_type<scalar_t>;
  if (p.rows * p.out_channels * p.in_per_group * p.kernel_size == 0) return;
  const int taps = p.kernel_size <= 4 ? 4 : 8;
  ReduceGeometry G;
  G.tap_chunks = (p.kernel_size + taps - 1) / taps;
  G.total_blocks = p.rows * p.out_channels * p.in_per_group * G.tap_chunks;
  const int64_t smem = 32 * static_cast<int64_t>(sizeof(acc_t));  // one value per warp
  with_constant<4, 8>(taps, [&](auto chunk) {
    constexpr int kTaps = decltype(chunk)::value;
    launch(row_conv1d_grad_weight_reduce<scalar_t, acc_t, kTaps>, grid_for(G.total_blocks),
           kReduceThreads, smem, p, G, grad_out, x, grad_w);
  });
}

template <typename scalar_t, typename Launch>
void launch_grad_bias(const Launch& launch, const RowConvParams& p, const scalar_t* grad_out,
                      scalar_t* grad_bias) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t total = p.rows * p.out_channels;
  if (total == 0) return;
  launch(row_conv1d_grad_bias_reduce<scalar_t, acc_t>, grid_for(total), kReduceThreads,
         32 * static_cast<int64_t>(sizeof(acc_t)), p, total, grad_out, grad_bias);
}

}  // namespace rowconv::cuda
