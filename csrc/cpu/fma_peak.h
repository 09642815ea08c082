// The CPU's peak multiply-add rate, measured: the ceiling the benchmarks
// report our GFLOP/s against. MKL's matmul rate is no ceiling on our AMD
// machines (MKL does not use AVX-512 there), and the peak is not the
// clock times a table entry (Zen 4 runs AVX-512 on 256-bit units, Zen 5 on
// 512-bit ones, both with two FMA pipes): so it is timed, on independent
// FMA chains held in registers, with no memory traffic.
#pragma once

#include <cstdint>
#include <string>

namespace rowconv::cpu {

// GFLOP/s (2 per multiply-add) of the current torch thread count, best of a
// few trials of about `seconds` in all, with the widest vectors the CPU runs:
//   "float32", "float64": vector FMAs (AVX-512, AVX2; mul + add on SSE2);
//   "bfloat16": AVX-512 BF16 vdpbf16ps (pairs of bf16 products summed into
//               float32 lanes), 0 where the CPU lacks it.
double fma_peak_gflops(const std::string& dtype, double seconds);

}  // namespace rowconv::cpu
