// Host side of the CUDA kernels: picks each kernel's geometry and
// compile-time specialisation and launches it through `launch`, a callable
//   launch(kernel, grid_blocks, block_threads, shared_bytes, args...)
// (kernel: a Kernel of device.h, made by ROWCONV_KERNEL, which carries the
// kernel's launch bound and shared memory limit) that is a real CUDA launch
// (cuda_kernels.h) or the CPU emulator (cuda_emulation/), which checks
// every launch against those limits, so both run exactly this code. Pointers only: no
// tensors, so the sanitizer harness needs no libtorch.
#pragma once

#include <ATen/OpMathType.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <type_traits>

#include "../row_conv1d_params.h"
#include "kernels/forward.cuh"
#include "kernels/grad_input.cuh"
#include "kernels/grad_bias.cuh"
#include "kernels/grad_weight.cuh"
#include "kernels/update.cuh"

namespace rowconv::cuda {

// Dynamic shared memory every GPU grants without an opt-in (the launches do not opt in).
constexpr int64_t kDefaultSharedBytes = kDefaultMaxDynamicSharedBytes;
constexpr int64_t kReduceThreads = 256;
constexpr int64_t kDirectThreads = 256;
constexpr int64_t kMaxGridBlocks = int64_t{1} << 20;  // the kernels stride over the rest

inline int64_t grid_for(int64_t blocks) { return std::clamp<int64_t>(blocks, 1, kMaxGridBlocks); }

// Slices of a reduction that is split over blocks (partial sums in a
// workspace, then row_conv1d_sum_splits): enough blocks in all for a GPU, at
// most one slice per step of the reduction, and a bounded workspace. From the
// shapes only, so the summation order, and the result, depends on them alone.
inline int64_t split_count(int64_t blocks_per_split, int64_t steps, int64_t outputs) {
  constexpr int64_t kTargetBlocks = 2048, kMaxWorkspace = int64_t{1} << 26;  // elements
  return std::clamp<int64_t>((kTargetBlocks + blocks_per_split - 1) / blocks_per_split, 1,
                             std::max<int64_t>(1, std::min(steps, kMaxWorkspace / outputs)));
}

// Positions per thread of the tiled kernels: several on rows long enough to
// fill them (fewer with 8-byte accumulators, for registers), else one.
template <typename acc_t>
constexpr int kWidePositions = sizeof(acc_t) >= 8 ? 2 : 4;

template <typename acc_t>
int positions_per_thread(int64_t length) {
  return length <= 64 ? 1 : kWidePositions<acc_t>;
}

// Threads per lane of the tiled kernels: a multiple of a warp, no more than
// the row needs.
inline int64_t lane_threads_for(int64_t length, int64_t positions_per_thread) {
  const int64_t threads = (length + positions_per_thread - 1) / positions_per_thread;
  return std::clamp<int64_t>((threads + 31) / 32 * 32, 32, 128);
}

// Channels per thread of the tiled kernels: 1 for one channel per group
// (depthwise), else 4, or 8 where the accumulators are 4 bytes (registers).
template <typename acc_t>
constexpr int kWideChannels = sizeof(acc_t) >= 8 ? 4 : 8;

template <typename acc_t>
int channels_per_thread(int64_t channels) {
  return channels == 1 ? 1 : channels <= 4 ? 4 : kWideChannels<acc_t>;
}

// f(std::integral_constant<int, value>) for the first of kValues equal to value.
template <int... kValues, typename F>
void with_constant(int value, F&& f) {
  ((value == kValues ? (f(std::integral_constant<int, kValues>{}), true) : false) || ...);
}

// Fills G for a tiled kernel whose shared memory holds, per channel of a
// chunk, `span` positions plus lanes * per_thread * K weights. Lanes (channel
// blocks sharing a tile) go as far as the group's channels and
// kMaxTileThreads allow, fewer when the weights crowd out the tile. False when
// not even one channel fits (the caller takes the direct kernel).
template <typename acc_t>
bool tile_geometry(TileGeometry& G, int64_t lane_threads, int64_t positions, int64_t length,
                   int64_t span, int64_t per_thread, int64_t K, int64_t channels_in_chunks,
                   int64_t channels_per_block, int64_t outer_blocks, int64_t shared_bytes) {
  G.lane_threads = lane_threads;
  G.tile = lane_threads * positions;
  G.tiles = (length + G.tile - 1) / G.tile;
  G.span = span;
  const int64_t thread_blocks = (channels_per_block + per_thread - 1) / per_thread;
  const int64_t capacity = shared_bytes / static_cast<int64_t>(sizeof(acc_t));
  for (int64_t lanes = std::min<int64_t>(thread_blocks, kMaxTileThreads / lane_threads); lanes >= 1;
       lanes /= 2) {
    G.channel_blocks = (thread_blocks + lanes - 1) / lanes;
    G.lanes = (thread_blocks + G.channel_blocks - 1) / G.channel_blocks;  // as even as it gets
    G.chunk = std::min<int64_t>(channels_in_chunks, capacity / (span + G.lanes * per_thread * K));
    // A chunk of one channel when the whole group would fit at fewer lanes is
    // a poor trade: prefer fewer lanes and longer chunks.
    if (G.chunk >= std::min<int64_t>(channels_in_chunks, 4) || (lanes == 1 && G.chunk >= 1)) {
      G.total_blocks = outer_blocks * G.channel_blocks * G.tiles;
      return true;
    }
  }
  return false;
}

// The second pass of a split reduction: out[i] = sum over the splits of partial.
template <typename scalar_t, typename acc_t, typename Launch>
void launch_sum_splits(const Launch& launch, int64_t outputs, int64_t splits, const acc_t* partial,
                       scalar_t* out) {
  launch(ROWCONV_KERNEL(row_conv1d_sum_splits, scalar_t, acc_t), grid_for((outputs + kDirectThreads - 1) / kDirectThreads),
         kDirectThreads, 0, outputs, splits, partial, out);
}

template <typename acc_t>
int64_t chunk_bytes(const TileGeometry& G, int64_t per_thread, int64_t K) {
  return G.chunk * (G.span + G.lanes * per_thread * K) * static_cast<int64_t>(sizeof(acc_t));
}

// Positions per thread of the sliding-window forward (odd: see forward.cuh).
constexpr int kSlidePositions = 5;

template <typename scalar_t, typename Launch>
void launch_forward(const Launch& launch, const RowConvParams& p, const scalar_t* x,
                    const scalar_t* weight, const scalar_t* bias, scalar_t* y,
                    int64_t shared_bytes = kDefaultSharedBytes) {
  using acc_t = at::opmath_type<scalar_t>;
  if (p.batch * p.out_channels * p.rows * p.out_width == 0) return;
  const int per_thread = channels_per_thread<acc_t>(p.out_per_group);
  // long depthwise kernels over contiguous taps: the sliding window
  const bool slide = p.in_per_group == 1 && p.out_per_group == 1 && p.stride == 1 && p.dilation == 1 &&
                     p.kernel_size > kSlidePositions && p.out_width > 64;
  const int positions = slide ? kSlidePositions : positions_per_thread<acc_t>(p.out_width);
  const int64_t lane_threads = lane_threads_for(p.out_width, positions);
  const int64_t span = p.forward_window(lane_threads * positions) + (slide ? kSlidePositions : 0);
  TileGeometry G;
  if (!tile_geometry<acc_t>(G, lane_threads, positions, p.out_width, span, per_thread, p.kernel_size,
                            p.in_per_group, p.out_per_group, p.batch * p.rows * p.groups,
                            shared_bytes)) {
    const int64_t total = p.batch * p.out_channels * p.rows * p.out_width;
    launch(ROWCONV_KERNEL(row_conv1d_forward_direct, scalar_t, acc_t), grid_for((total + kDirectThreads - 1) / kDirectThreads),
           kDirectThreads, 0, p, total, x, weight, bias, y);
    return;
  }
  const int64_t smem = chunk_bytes<acc_t>(G, per_thread, p.kernel_size);
  const int64_t threads = G.lane_threads * G.lanes;
  if (slide) {
    launch(ROWCONV_KERNEL(row_conv1d_forward_tiled, scalar_t, acc_t, 1, kSlidePositions, 0, true), grid_for(G.total_blocks),
           threads, smem, p, G, x, weight, bias, y);
    return;
  }
  with_constant<1, 4, kWideChannels<acc_t>>(per_thread, [&](auto out) {
    with_constant<1, kWidePositions<acc_t>>(positions, [&](auto pos) {
      constexpr int kOut = decltype(out)::value, kPos = decltype(pos)::value;
      if (p.kernel_size == 3) {
        launch(ROWCONV_KERNEL(row_conv1d_forward_tiled, scalar_t, acc_t, kOut, kPos, 3, false), grid_for(G.total_blocks),
               threads, smem, p, G, x, weight, bias, y);
      } else {
        launch(ROWCONV_KERNEL(row_conv1d_forward_tiled, scalar_t, acc_t, kOut, kPos, 0, false), grid_for(G.total_blocks),
               threads, smem, p, G, x, weight, bias, y);
      }
    });
  });
}

template <typename scalar_t, typename Launch>
void launch_grad_input(const Launch& launch, const RowConvParams& p, const scalar_t* grad_out,
                       const scalar_t* weight, scalar_t* grad_x,
                       int64_t shared_bytes = kDefaultSharedBytes) {
  using acc_t = at::opmath_type<scalar_t>;
  if (p.batch * p.in_channels * p.rows * p.width == 0) return;
  const int per_thread = channels_per_thread<acc_t>(p.in_per_group);
  const int positions = positions_per_thread<acc_t>(p.width);
  const int64_t lane_threads = lane_threads_for(p.width, positions);
  const int64_t tile = lane_threads * positions;
  // grad_out positions a tile of `tile` input positions reads, from t_lo on
  const int64_t span = (tile - 1 + (p.kernel_size - 1) * p.dilation) / p.stride + 2;
  // The kernel's shared-memory offsets before the division by the stride are ints.
  const bool int_offsets = tile + (p.kernel_size - 1) * p.dilation + p.stride <= INT32_MAX;
  TileGeometry G;
  if (!int_offsets ||
      !tile_geometry<acc_t>(G, lane_threads, positions, p.width, span, per_thread, p.kernel_size,
                            p.out_per_group, p.in_per_group, p.batch * p.rows * p.groups,
                            shared_bytes)) {
    const int64_t total = p.batch * p.in_channels * p.rows * p.width;
    launch(ROWCONV_KERNEL(row_conv1d_grad_input_direct, scalar_t, acc_t),
           grid_for((total + kDirectThreads - 1) / kDirectThreads), kDirectThreads, 0, p, total,
           grad_out, weight, grad_x);
    return;
  }
  const int64_t smem = chunk_bytes<acc_t>(G, per_thread, p.kernel_size);
  const int64_t threads = G.lane_threads * G.lanes;
  with_constant<1, 4, kWideChannels<acc_t>>(per_thread, [&](auto in) {
    with_constant<1, kWidePositions<acc_t>>(positions, [&](auto pos) {
      constexpr int kIn = decltype(in)::value, kPos = decltype(pos)::value;
      if (p.stride == 1) {
        launch(ROWCONV_KERNEL(row_conv1d_grad_input_tiled, scalar_t, acc_t, kIn, kPos, true), grid_for(G.total_blocks),
               threads, smem, p, G, grad_out, weight, grad_x);
      } else {
        launch(ROWCONV_KERNEL(row_conv1d_grad_input_tiled, scalar_t, acc_t, kIn, kPos, false), grid_for(G.total_blocks),
               threads, smem, p, G, grad_out, weight, grad_x);
      }
    });
  });
}

// Taps per thread tile of the tiled grad-weight: K itself up to 5, else
// chunks of 8.
inline int grad_weight_taps(int64_t K) { return K <= 5 ? static_cast<int>(K) : 8; }
inline int grad_weight_rows(int64_t out_per_group) { return out_per_group >= 4 ? 4 : 1; }

// Fills G for the tiled grad-weight; false when no tile fits the shared
// memory (the caller takes the direct kernel). The splits depend on the
// shapes only, so the summation order, and the result, does too.
// Shared-memory elements of the grad-weight tiles: grad_out rows, then x rows.
inline int64_t grad_weight_tile_elements(const GradWeightGeometry& G) {
  return G.co_block * G.go_pitch + G.ci_block * G.x_pitch;
}

template <typename acc_t>
bool grad_weight_geometry(GradWeightGeometry& G, const RowConvParams& p, int64_t shared_bytes) {
  constexpr int64_t kThreads = kGradWeightThreads;
  const int64_t rows = grad_weight_rows(p.out_per_group), taps = grad_weight_taps(p.kernel_size);
  G.tap_chunks = (p.kernel_size + taps - 1) / taps;
  if (G.tap_chunks > kThreads) return false;
  const int64_t row_groups = (p.out_per_group + rows - 1) / rows;
  G.ci_block = std::min<int64_t>(p.in_per_group, kThreads / G.tap_chunks);
  G.positions = 128;
  int64_t m_cap = row_groups;
  const int64_t capacity = shared_bytes / static_cast<int64_t>(sizeof(acc_t));
  for (;;) {  // shrink the tiles until they fit: positions, then input, then output channels
    const int64_t m_block = std::min<int64_t>(m_cap, kThreads / (G.ci_block * G.tap_chunks));
    G.co_block = m_block * rows;
    G.out_threads = m_block * G.ci_block * G.tap_chunks;
    G.x_span = (G.positions - 1) * p.stride + (G.tap_chunks * taps - 1) * p.dilation + 1;
    G.go_pitch = G.positions | 1;
    G.x_pitch = G.x_span | 1;
    if (grad_weight_tile_elements(G) <= capacity) break;
    if (G.positions > 32) G.positions /= 2;
    else if (G.ci_block > 1) G.ci_block = (G.ci_block + 1) / 2;
    else if (m_block > 1) m_cap = (m_block + 1) / 2;
    else return false;
  }
  // as many lanes as threads, positions and the room to fold them allow
  G.reduce_lanes = std::min({kThreads / G.out_threads, G.positions,
                             capacity / (G.out_threads * rows * taps) + 1});
  G.co_blocks = (p.out_per_group + G.co_block - 1) / G.co_block;
  G.ci_blocks = (p.in_per_group + G.ci_block - 1) / G.ci_block;
  G.t_tiles = (p.out_width + G.positions - 1) / G.positions;
  G.steps = p.batch * G.t_tiles;
  G.items = p.rows * p.groups * G.co_blocks * G.ci_blocks;
  G.outputs = p.rows * p.out_channels * p.in_per_group * p.kernel_size;
  G.splits = split_count(G.items, G.steps, G.outputs);
  G.total_blocks = G.items * G.splits;
  return true;
}

template <typename acc_t>
int64_t grad_weight_shared_bytes(const GradWeightGeometry& G, int64_t rows, int64_t taps) {
  const int64_t folded = (G.reduce_lanes - 1) * G.out_threads * rows * taps;
  return std::max(grad_weight_tile_elements(G), folded) * static_cast<int64_t>(sizeof(acc_t));
}

// workspace(n) returns room for n accumulation-type elements that stays
// valid until the launched kernels have run.
template <typename scalar_t, typename Launch, typename Workspace>
void launch_grad_weight(const Launch& launch, const RowConvParams& p, const scalar_t* grad_out,
                        const scalar_t* x, scalar_t* grad_w, Workspace&& workspace,
                        int64_t shared_bytes = kDefaultSharedBytes) {
  using acc_t = at::opmath_type<scalar_t>;
  if (p.rows * p.out_channels * p.in_per_group * p.kernel_size == 0) return;
  GradWeightGeometry G;
  if (grad_weight_geometry<acc_t>(G, p, shared_bytes)) {
    const int rows = grad_weight_rows(p.out_per_group), taps = grad_weight_taps(p.kernel_size);
    acc_t* partial = G.splits > 1 ? workspace(G.splits * G.outputs) : nullptr;
    const int64_t smem = grad_weight_shared_bytes<acc_t>(G, rows, taps);
    with_constant<1, 4>(rows, [&](auto r) {
      with_constant<1, 2, 3, 4, 5, 8>(taps, [&](auto t) {
        launch(ROWCONV_KERNEL(row_conv1d_grad_weight_tiled, scalar_t, acc_t, decltype(r)::value, decltype(t)::value),
               grid_for(G.total_blocks), G.out_threads * G.reduce_lanes, smem, p, G, grad_out, x,
               partial, grad_w);
      });
    });
    if (partial != nullptr) launch_sum_splits(launch, G.outputs, G.splits, partial, grad_w);
    return;
  }
  const int taps = p.kernel_size <= 4 ? 4 : 8;
  ReduceGeometry R;
  R.tap_chunks = (p.kernel_size + taps - 1) / taps;
  R.total_blocks = p.rows * p.out_channels * p.in_per_group * R.tap_chunks;
  const int64_t smem = 32 * static_cast<int64_t>(sizeof(acc_t));  // one value per warp
  with_constant<4, 8>(taps, [&](auto chunk) {
    constexpr int kTaps = decltype(chunk)::value;
    launch(ROWCONV_KERNEL(row_conv1d_grad_weight_direct, scalar_t, acc_t, kTaps), grid_for(R.total_blocks),
           kReduceThreads, smem, p, R, grad_out, x, grad_w);
  });
}

// workspace: as for launch_grad_weight.
template <typename scalar_t, typename Launch, typename Workspace>
void launch_grad_bias(const Launch& launch, const RowConvParams& p, const scalar_t* grad_out,
                      scalar_t* grad_bias, Workspace&& workspace) {
  using acc_t = at::opmath_type<scalar_t>;
  BiasGeometry G;
  G.slices = p.rows * p.out_channels;
  if (G.slices == 0) return;
  const int64_t slice_blocks = (G.slices + kReduceThreads / 32 - 1) / (kReduceThreads / 32);
  G.splits = split_count(slice_blocks, p.batch, G.slices);
  G.total_blocks = slice_blocks * G.splits;
  acc_t* partial = G.splits > 1 ? workspace(G.splits * G.slices) : nullptr;
  launch(ROWCONV_KERNEL(row_conv1d_grad_bias_partial, scalar_t, acc_t), grid_for(G.total_blocks), kReduceThreads, 0, p, G,
         grad_out, partial, grad_bias);
  if (partial != nullptr) launch_sum_splits(launch, G.slices, G.splits, partial, grad_bias);
}

// The decode step: blocks of up to 128 threads over whole (b, h, group)
// items, as many items as fill a block's threads with their (output channel,
// step) pairs or input channels, whichever is more.
template <typename scalar_t, typename Launch>
void launch_update(const Launch& launch, const RowConvUpdateParams& p, const scalar_t* x,
                   scalar_t* state, const scalar_t* weight, const scalar_t* bias,
                   const int64_t* cache_seqlens, const int64_t* state_indices, scalar_t* y) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int64_t kThreads = row_conv1d_update_max_threads;
  const int64_t items = p.conv.batch * p.conv.rows * p.conv.groups;
  if (items == 0) return;
  const int64_t per_item = std::max<int64_t>({p.conv.out_per_group * p.conv.width, p.conv.in_per_group, 1});
  UpdateGeometry G;
  G.items_per_block = std::max<int64_t>(1, kThreads / per_item);
  G.total_blocks = (items + G.items_per_block - 1) / G.items_per_block;
  const int64_t threads = std::min<int64_t>(kThreads, (G.items_per_block * per_item + 31) / 32 * 32);
  launch(ROWCONV_KERNEL(row_conv1d_update, scalar_t, acc_t), grid_for(G.total_blocks), threads, 0, p,
         G, x, state, weight, bias, cache_seqlens, state_indices, y);
}

}  // namespace rowconv::cuda
