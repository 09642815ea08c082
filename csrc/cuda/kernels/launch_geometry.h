// How a kernel's work is cut into blocks, decided on the host and passed to
// the kernel by value. Blocks are numbered linearly and visited with a
// grid-stride loop, so no grid dimension limit is ever reached.
#pragma once

#include <cstdint>

#include "../../row_conv1d_params.h"

namespace rowconv::cuda {

constexpr int kMaxTileThreads = 512;     // threads per block of the tiled kernels, at most
constexpr int kGradWeightThreads = 256;  // threads per block of the tiled grad-weight, at most

// A block of a tiled kernel is `lanes` side-by-side groups of lane_threads
// threads: thread i owns positions i % lane_threads + q * lane_threads
// (q < kPos) of the tile and the channel block (kChannelsPerThread channels)
// lane i / lane_threads, so one shared-memory tile serves
// lanes * kChannelsPerThread channels.
struct TileGeometry {
  int64_t tile;            // positions per block (lane_threads * kPos)
  int64_t lane_threads;    // threads per lane, a multiple of a warp
  int64_t tiles;           // tiles per row
  int64_t lanes;           // channel blocks per block, sharing its tile
  int64_t channel_blocks;  // blocks per group along the channels (lanes channel blocks each)
  int64_t chunk;           // channels per shared-memory chunk
  int64_t span;            // positions per channel in shared memory
  int64_t total_blocks;
};

// The block of a tiled kernel: (b, h, group, block of lanes channel blocks, tile).
struct TileBlock {
  int64_t b, h, g, channel_block, tile;
};

ROWCONV_HOST_DEVICE TileBlock tile_block(int64_t blk, const TileGeometry& G, const RowConvParams& p) {
  TileBlock t;
  t.tile = blk % G.tiles;
  blk /= G.tiles;
  t.channel_block = blk % G.channel_blocks;
  blk /= G.channel_blocks;
  t.g = blk % p.groups;
  blk /= p.groups;
  t.h = blk % p.rows;
  t.b = blk / p.rows;
  return t;
}

// The tiled grad-weight, a GEMM per (row, group) whose reduction runs over
// (b, t): grad_w[co][(ci, k)] = sum_(b,t) grad_out[co][(b, t)] * x[ci][(b, t*stride + k*dilation)].
// A block owns co_block output channels x ci_block input channels x all taps
// of one (h, group), and one of `splits` fixed slices of the (b, tile of t)
// steps; each step stages a grad_out tile and an x tile (with halo) in shared
// memory. Threads: out_threads thread tiles (kRows channels x kTaps taps
// each) times reduce_lanes, which split the positions of a step and are
// folded in a fixed order at the end. With splits > 1 the slices' partial
// sums go to a workspace and a second kernel adds them in order, so the
// result depends on the shapes only: deterministic, with no atomics.
struct GradWeightGeometry {
  int64_t co_block, ci_block;    // channels per block
  int64_t co_blocks, ci_blocks;  // blocks per group
  int64_t tap_chunks;            // chunks of kTaps taps
  int64_t out_threads, reduce_lanes;
  int64_t positions;             // output positions per step
  int64_t go_pitch, x_pitch;     // shared-memory row pitches (odd: no bank conflicts across rows)
  int64_t x_span;                // input positions per step and channel
  int64_t t_tiles, steps;        // steps = batch * t_tiles
  int64_t splits, items;         // items = rows * groups * co_blocks * ci_blocks
  int64_t outputs;               // elements of grad_w
  int64_t total_blocks;          // items * splits
};

// Grad-bias: warps over (h, co) slices, blocks over `splits` slices of the batch.
struct BiasGeometry {
  int64_t slices;  // rows * out_channels
  int64_t splits;
  int64_t total_blocks;
};

// Grad-weight direct: one block per output slice.
struct ReduceGeometry {
  int64_t tap_chunks;    // chunks of kTapsPerBlock taps (grad-weight)
  int64_t total_blocks;
};

}  // namespace rowconv::cuda
