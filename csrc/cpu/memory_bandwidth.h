// The CPU's measured memory bandwidth: the second ceiling the benchmarks
// report against (with fma_peak.h, a roofline). A convolution whose operands
// lie past the last-level cache reads its inputs from memory once and writes
// its output once, non-temporally (gemm_rows_set_streaming); the probe moves
// memory the same way: a copy of a buffer several times the last-level cache,
// loads and non-temporal stores, each thread its own part.
#pragma once

namespace rowconv::cpu {

// GB/s (bytes read + bytes written, 1e9 a GB) of the current torch thread
// count, best of a few copies of about `seconds` in all.
double memory_bandwidth_gbps(double seconds);

}  // namespace rowconv::cpu
