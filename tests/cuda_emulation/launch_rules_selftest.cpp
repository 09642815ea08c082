// The self-test of the emulator's hardware rules (cuda/emulator.h): each
// mode plants one violation a GPU refuses, which the emulator must report,
// naming the kernel and the values; scripts/cuda_sanitizers.sh runs every
// mode and fails unless "valid" passes and each other mode fails with its
// message. Built with -DROWCONV_PLANTED_MISALIGNED_LOAD16 (load_tile.cuh
// without its alignment test). Modes:
//   valid              the same launches within the rules (must pass)
//   misaligned-load16  the forward on rows that start 4 bytes past a 16-byte
//                      boundary: load_tile's 16-byte loads are misaligned
//   launch-bound       the tiled forward (ROWCONV_LAUNCH_BOUNDS 512) with 1024 threads
//   shared-memory      launch_forward with a 64 KiB budget, no opt-in: tiles of over 48 KiB
//   grid               2^31 blocks (gridDim.x is at most 2^31 - 1), then 0 blocks
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/launch.h"

using rowconv::RowConvParams;
namespace rc = rowconv::cuda;

namespace {

// A float32 convolution of `channels` input channels (one group) into one
// output channel over rows of 64, long enough for 16-byte groups.
RowConvParams params(int64_t channels, int64_t width) {
  RowConvParams p{};
  p.batch = 1, p.in_channels = p.in_per_group = channels, p.out_channels = p.out_per_group = 1;
  p.groups = 1, p.rows = 1, p.width = width, p.kernel_size = 3, p.stride = 1, p.pad_left = p.pad_right = 1;
  p.dilation = 1, p.out_width = width;
  p.in_stride_w = 1, p.in_stride_h = width, p.in_stride_c = width, p.in_stride_b = channels * width;
  p.gout_stride_w = 1, p.gout_stride_h = width, p.gout_stride_c = width, p.gout_stride_b = width;
  return p;
}

// The forward through launch.h's launcher, the input at `offset` elements
// into its buffer; with 256 input channels a 64 KiB budget takes tiles of
// over 48 KiB.
void forward(int64_t channels, int64_t offset, int64_t shared_bytes) {
  const RowConvParams p = params(channels, 64);
  std::vector<float> x(channels * 64 + 4, 1.0f), w(channels * 3, 0.5f), y(64);
  rc::launch_forward<float>(rc::emu::Launch{}, p, x.data() + offset, w.data(), nullptr, y.data(), shared_bytes);
}

// One launch of the tiled forward with the given geometry (the check comes before any thread runs).
void launch_tiled(int64_t grid, int64_t block) {
  const RowConvParams p = params(1, 64);
  rc::TileGeometry G{};
  G.tile = G.lane_threads = 64, G.tiles = 1, G.lanes = 1, G.channel_blocks = 1, G.chunk = 1, G.span = 66;
  G.total_blocks = 1;
  std::vector<float> x(64), w(3), y(64);
  rc::emu::Launch{}(ROWCONV_KERNEL(rc::row_conv1d_forward_tiled, float, float, 1, 1, 3, false), grid, block,
                    int64_t{1024}, p, G, x.data(), w.data(), static_cast<const float*>(nullptr), y.data());
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "valid") {
    forward(2, 0, rc::kDefaultSharedBytes);    // aligned rows: 16-byte loads
    forward(256, 0, rc::kDefaultSharedBytes);  // tiles of up to 48 KiB
    launch_tiled(2, 512);
    launch_tiled(1, 64);
  } else if (mode == "misaligned-load16") {
    forward(2, 1, rc::kDefaultSharedBytes);
  } else if (mode == "launch-bound") {
    launch_tiled(2, 1024);
  } else if (mode == "shared-memory") {
    forward(256, 0, 64 * 1024);
  } else if (mode == "grid") {
    try {
      launch_tiled(int64_t{1} << 31, 64);
      std::printf("2^31 blocks: not reported\n");
      return 0;
    } catch (const std::invalid_argument& e) {
      std::fprintf(stderr, "%s\n", e.what());
    }
    launch_tiled(0, 64);
  } else {
    std::fprintf(stderr, "usage: %s valid|misaligned-load16|launch-bound|shared-memory|grid\n", argv[0]);
    return 2;
  }
  std::printf("%s: no violation reported\n", mode.c_str());
  return 0;
}
