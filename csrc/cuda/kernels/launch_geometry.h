// How a kernel's work is cut into blocks, decided on the host and passed to
// the kernel by value. Blocks are numbered linearly and visited with a
// grid-stride loop, so no grid dimension limit is ever reached.
#pragma once

#include <cstdint>

#include "../../row_conv1d_params.h"

namespace rowconv::cuda {

struct TileGeometry {
  int64_t tile;          // positions per block (= threads per block)
  int64_t tiles;         // tiles per row
  int64_t channel_blocks;  // blocks of channels per group (kChannelsPerThread each)
  int64_t chunk;         // channels per shared-memory chunk
  int64_t span;          // positions per channel in shared memory
  int64_t total_blocks;
};

// The block of a tiled kernel: (b, h, group, block of channels, tile).
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

// Reductions (grad-weight, grad-bias): one block per output slice.
struct ReduceGeometry {
  int64_t tap_chunks;    // chunks of kTapsPerBlock taps (grad-weight)
  int64_t total_blocks;
};

}  // namespace rowconv::cuda
