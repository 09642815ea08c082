// The rowconv operator schema, defined once for every backend (the kernels
// register in cpu/, cuda/; the checks they all run are in row_conv1d_checks.cpp).
#include <torch/library.h>

#include <string>
#include <vector>

#include "cpu/microkernels.h"

// fft_block: 0 runs the direct kernels; n > 0 the FFT method in blocks of n
// points (row_conv1d_fft.h). The autograd formulas hold for both.
// Each backward op is linear in each of its tensor arguments, so the backward
// of every op is built from these same ops (see rowconv_ext/_registrations.py):
// derivatives of any order come for free.
TORCH_LIBRARY(rowconv, m) {
  const std::vector<at::Tag> tags{at::Tag::pt2_compliant_tag};
  m.def(
      "row_conv1d(Tensor x, Tensor weight, Tensor? bias, int stride, int pad_left, "
      "int pad_right, int dilation, int groups, int fft_block=0) -> Tensor",
      tags);
  m.def(
      "row_conv1d_grad_input(Tensor grad_out, Tensor weight, SymInt width, int stride, "
      "int pad_left, int pad_right, int dilation, int groups, int fft_block=0) -> Tensor",
      tags);
  m.def(
      "row_conv1d_grad_weight(Tensor grad_out, Tensor x, SymInt kernel_size, int stride, "
      "int pad_left, int pad_right, int dilation, int groups, int fft_block=0) -> Tensor",
      tags);
  m.def("row_conv1d_grad_bias(Tensor grad_out) -> Tensor", tags);
  // Which build of the CPU micro-kernels runs ("avx512", "avx2", "baseline").
  m.def("cpu_isa() -> str", [] { return std::string(rowconv::cpu::cpu_isa()); });
}
