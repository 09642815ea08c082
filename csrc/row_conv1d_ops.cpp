// The rowconv operator schema, defined once for every backend (the kernels
// register in cpu/, cuda/; the checks they all run are in row_conv1d_checks.cpp).
#include <torch/library.h>

#include <cmath>
#include <string>
#include <vector>

#include "cpu/fma_peak.h"
#include "cpu/memory_bandwidth.h"
#include "cpu/microkernels.h"
#include "fft_plan.h"
#include "row_conv1d.h"

// fft_block: 0 runs the direct kernels; n > 0 the FFT method in blocks of n
// points (row_conv1d_fft.h); -1 ('auto') and -2 ('fft') leave the choice to
// the cost model, per call (fft_plan.h). The autograd formulas hold for all.
// Each backward op is linear in each of its tensor arguments, so the backward
// of every op is built from these same ops (see rowconv_ext/_registrations.py):
// derivatives of any order come for free.
// prefix: the inputs before x (the carried state of a causal convolution,
// (B, Cin, H, dilation * (K - 1))), read instead of the left padding: the
// forward and grad-weight read the virtual row prefix ++ x (row_conv1d_params.h).
TORCH_LIBRARY(rowconv, m) {
  const std::vector<at::Tag> tags{at::Tag::pt2_compliant_tag};
  m.def(
      "row_conv1d(Tensor x, Tensor weight, Tensor? bias, int stride, int pad_left, "
      "int pad_right, int dilation, int groups, int fft_block=0, Tensor? prefix=None) -> Tensor",
      tags);
  m.def(
      "row_conv1d_grad_input(Tensor grad_out, Tensor weight, SymInt width, int stride, "
      "int pad_left, int pad_right, int dilation, int groups, int fft_block=0) -> Tensor",
      tags);
  m.def(
      "row_conv1d_grad_weight(Tensor grad_out, Tensor x, SymInt kernel_size, int stride, "
      "int pad_left, int pad_right, int dilation, int groups, int fft_block=0, "
      "Tensor? prefix=None) -> Tensor",
      tags);
  m.def("row_conv1d_grad_bias(Tensor grad_out) -> Tensor", tags);
  // A causal row_conv1d (stride 1, pad_left = dilation * (K - 1), pad_right 0)
  // that also returns the state it leaves, the last pad_left inputs of
  // prefix ++ x: (y, final_state). One op, so that autograd has one node for
  // both: final_state's gradient then lands in the tail of grad_input's
  // result instead of a zero-filled gradient of all of x per chunk. CPU:
  // forward_with_final_state_op, whose forward kernel writes the state as it
  // reads it; other backends: a composite (rowconv_ext/_registrations.py),
  // row_conv1d and a copy of the state.
  m.def(
      "row_conv1d_with_final_state(Tensor x, Tensor weight, Tensor? bias, int stride, "
      "int pad_left, int pad_right, int dilation, int groups, int fft_block=0, "
      "Tensor? prefix=None) -> (Tensor, Tensor)",
      tags);
  // One decoding step (row_conv1d_update_params.h): returns the outputs at
  // x's T steps and writes the new inputs into conv_state (mutated in place;
  // an inference op: row_conv1d_update_autograd.cpp refuses gradients).
  m.def(
      "row_conv1d_update(Tensor x, Tensor(a!) conv_state, Tensor weight, Tensor? bias, "
      "int dilation, int groups, Tensor? cache_seqlens, Tensor? state_indices) -> Tensor",
      tags);
  // The cost model (fft_plan.h) for a forward call: [block, direct MACs,
  // narrow MACs, transform points, mix MACs, mix matrices, spectrum elements,
  // direct seconds, FFT seconds], the FFT at transform length fft_block (> 0) or the
  // planned one.
  m.def(
      "cost_plan(Tensor x, Tensor weight, int stride, int pad_left, int pad_right, int dilation, "
      "int groups, int fft_block) -> float[]",
      [](const at::Tensor& x, const at::Tensor& weight, int64_t stride, int64_t pad_left,
         int64_t pad_right, int64_t dilation, int64_t groups, int64_t fft_block) {
        const rowconv::RowConvParams p = rowconv::check_forward(
            x, weight, std::nullopt, stride, pad_left, pad_right, dilation, groups, fft_block);
        const bool complex = x.is_complex();
        const int64_t block =
            fft_block > 0 ? fft_block
                          : rowconv::fft::planned_block(p, complex, x.device().type());
        const auto& c = rowconv::fft::cost_constants(x.device().type());
        const auto t = rowconv::fft::cost_terms(p, complex, block);
        return std::vector<double>{static_cast<double>(block), t.direct_macs, t.narrow_macs,
                                   t.transform_points, t.mix_macs, t.mix_matrices,
                                   t.spectrum_elements,
                                   rowconv::fft::direct_seconds(c, t),
                                   rowconv::fft::fft_seconds(c, t)};
      });
  // The cost model's constants for a device type ("cpu", "cuda"), in
  // CostConstants' order; set_cost_constants installs new ones.
  m.def("cost_constants(str device) -> float[]", [](const std::string& device) {
    const auto& c = rowconv::fft::cost_constants(c10::Device(device).type());
    return std::vector<double>{c.direct_mac, c.direct_narrow, c.direct_call, c.fft_point,
                               c.fft_mix,    c.fft_matrix,    c.fft_pass,  c.fft_call};
  });
  m.def("set_cost_constants(str device, float[] values) -> ()",
        [](const std::string& device, const std::vector<double>& v) {
          TORCH_CHECK_VALUE(v.size() == rowconv::fft::kCostConstants,
                            "set_cost_constants: values must hold ", rowconv::fft::kCostConstants,
                            " numbers, got ", v.size());
          for (const double value : v) {
            TORCH_CHECK_VALUE(value >= 0 && std::isfinite(value),
                              "set_cost_constants: values must be finite and non-negative, got ",
                              value);
          }
          rowconv::fft::cost_constants(c10::Device(device).type()) = {
              v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]};
        });
  // Which build of the CPU micro-kernels runs ("avx512", "avx2", "baseline").
  m.def("cpu_isa() -> str", [] { return std::string(rowconv::cpu::cpu_isa()); });
  // The cache sizes the CPU kernels tile for, in bytes: [L1d, L2, L3]
  // (ROWCONV_CPU_CACHES overrides what the system reports).
  m.def("cpu_cache_bytes() -> int[]", [] {
    return std::vector<int64_t>{rowconv::cpu::l1d_cache_bytes(), rowconv::cpu::l2_cache_bytes(),
                                rowconv::cpu::l3_cache_bytes()};
  });
  // The CPU's measured FMA peak in GFLOP/s at the current thread count
  // (cpu/fma_peak.h): the ceiling the benchmarks report against.
  m.def("cpu_fma_peak_gflops(str dtype, float seconds=0.25) -> float",
        [](const std::string& dtype, double seconds) {
          return rowconv::cpu::fma_peak_gflops(dtype, seconds);
        });
  // The memory bandwidth in GB/s at the current thread count, a copy with
  // non-temporal stores (cpu/memory_bandwidth.h): the benchmarks' roofline.
  m.def("cpu_memory_bandwidth_gbps(float seconds=0.5) -> float",
        [](double seconds) { return rowconv::cpu::memory_bandwidth_gbps(seconds); });
}
