// The cooperative load of a shared-memory tile, for the tiled kernels:
//   tile[c * pitch + u] = row0[c * channel_stride + (start + u) * step]   for c < channels, u < span,
// as the accumulation type, zero where start + u falls outside [0, length),
// except where a prefix row (x's carried state, prefix_length positions
// before position 0) is given: positions [-prefix_length, 0) read it, by the
// rule of virtual_source (row_conv1d_params.h).
// Where rows are contiguous and 16-byte aligned alike, the aligned interior
// of every row moves in 16-byte loads; the edges (and every other layout) go
// element by element.
#pragma once

#include <cstdint>

#include "../../row_conv1d_params.h"
#include "../device.h"

namespace rowconv::cuda {

template <typename scalar_t, typename acc_t>
ROWCONV_DEVICE void load_tile(acc_t* tile, int64_t pitch, const scalar_t* row0, int64_t channel_stride,
                              int64_t step, int64_t length, int64_t start, int64_t span,
                              int64_t channels, const scalar_t* prefix0 = nullptr,
                              int64_t prefix_channel_stride = 0, int64_t prefix_step = 0,
                              int64_t prefix_length = 0) {
  constexpr int64_t V = Pack16<scalar_t>::kCount;
  // [first, end): the 16-byte groups of positions inside the row and the tile
  int64_t first = 0, end = 0;
#ifndef ROWCONV_PLANTED_MISALIGNED_LOAD16  // the emulator's self-test drops the alignment test
  const bool vector_rows = step == 1 && channel_stride % V == 0 &&
                           reinterpret_cast<uintptr_t>(row0) % 16 == 0;
#else
  const bool vector_rows = step == 1 && channel_stride % V == 0;
#endif
  if (vector_rows) {
    const int64_t lo = start > 0 ? start : 0;
    const int64_t hi = start + span < length ? start + span : length;
    first = (lo + V - 1) / V * V;
    end = hi / V * V;
    if (end < first) end = first;
  }
  // Tile offsets fit in int (the tile fits in shared memory): 32-bit index math.
  const int n = static_cast<int>(channels), width = static_cast<int>(span);
  const int groups = static_cast<int>((end - first) / V);
  for (int i = threadIdx.x; i < n * groups; i += blockDim.x) {
    const int c = i / groups;
    const int64_t pos = first + (i % groups) * V;
    const Pack16<scalar_t> pack = load16(row0 + c * channel_stride + pos);
    acc_t* dst = tile + c * pitch + (pos - start);
    for (int j = 0; j < V; ++j) dst[j] = static_cast<acc_t>(pack.v[j]);
  }
  // The rest, element by element: per row the `left` offsets before the 16-byte
  // groups and those after them (all of the row where there are none).
  const int left = groups > 0 ? static_cast<int>(first - start) : width;
  const int edge = width - groups * V;
  for (int i = threadIdx.x; i < n * edge; i += blockDim.x) {
    const int c = i / edge, u = i % edge;
    const int offset = u < left ? u : u + groups * V;
    const int64_t pos = start + offset;
    acc_t value = acc_t(0);
    switch (virtual_source(pos, length, prefix_length)) {
      case RowSource::kInput: value = static_cast<acc_t>(row0[c * channel_stride + pos * step]); break;
      case RowSource::kPrefix:
        value = static_cast<acc_t>(
            prefix0[c * prefix_channel_stride + prefix_position(pos, prefix_length) * prefix_step]);
        break;
      default: break;
    }
    tile[c * pitch + offset] = value;
  }
}

// The weights of a tiled kernel, staged in shared memory:
//   tile[(j * channels + c) * taps + k] = weight[offset(j, c, k)]   for j < valid_rows,
// zeros for the rows j in [valid_rows, rows) (channels past the group's end).
template <typename scalar_t, typename acc_t, typename Offset>
ROWCONV_DEVICE void load_weight_tile(acc_t* tile, const scalar_t* weight, int64_t rows, int64_t valid_rows,
                                     int64_t channels, int64_t taps, const Offset& offset) {
  // 32-bit index math: the tile fits in shared memory.
  const int n = static_cast<int>(rows * channels * taps), per_row = static_cast<int>(channels * taps);
  const int n_taps = static_cast<int>(taps), n_channels = static_cast<int>(channels);
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const int j = i / per_row, c = i / n_taps % n_channels, k = i % n_taps;
    tile[i] = j < valid_rows ? static_cast<acc_t>(weight[offset(j, c, k)]) : acc_t(0);
  }
}

}  // namespace rowconv::cuda
