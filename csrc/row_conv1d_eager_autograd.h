// Reverse mode of row_conv1d for eager training calls, recorded from C++
// (row_conv1d_eager_autograd.cpp; called by python_fast_calls.cpp's entry).
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <optional>
#include <vector>

namespace rowconv {

// row_conv1d's arguments after its tensors: stride, pad_left, pad_right,
// dilation, groups, fft_block.
using ConvArgs = std::array<int64_t, 6>;

// row_conv1d (or, with_final_state, row_conv1d_with_final_state) of eager
// operands, at least one of which requires grad under grad mode: its result
// (y, or y and final_state) with a C++ autograd node whose backward runs the
// same ops as the Python autograd.Function (rowconv_ext/_registrations.py):
// the same gradients, of every order. The caller has checked that nothing
// else is asked of autograd: no forward-mode tangent, no functorch transform,
// no dispatch mode.
std::vector<at::Tensor> row_conv1d_recorded(const at::Tensor& x, const at::Tensor& weight,
                                            const std::optional<at::Tensor>& bias, const ConvArgs& conv,
                                            const std::optional<at::Tensor>& prefix, bool with_final_state);

}  // namespace rowconv
