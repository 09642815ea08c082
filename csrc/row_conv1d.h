// What every backend needs from the op layer: argument checks that turn the
// tensors of each op into a RowConvParams, or raise an error that names the
// argument, the expected and the actual value, before any kernel runs.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

#include "row_conv1d_params.h"
#include "row_conv1d_update_params.h"

namespace rowconv {

// y = row_conv1d(x, weight, bias): x (B, Cin, H, W), weight (H, Cout, Cin/groups, K).
// A prefix (B, Cin, H, dilation * (K - 1)), causal convolutions only, is read
// before x instead of the left padding (row_conv1d_params.h).
RowConvParams check_forward(const at::Tensor& x, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, int64_t stride,
                            int64_t pad_left, int64_t pad_right, int64_t dilation,
                            int64_t groups, int64_t fft_block = 0,
                            const std::optional<at::Tensor>& prefix = std::nullopt);

// grad_x (B, Cin, H, width) from grad_out (B, Cout, H, Wout) and weight.
RowConvParams check_grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                               int64_t width, int64_t stride, int64_t pad_left,
                               int64_t pad_right, int64_t dilation, int64_t groups,
                               int64_t fft_block = 0);

// grad_weight (H, Cout, Cin/groups, kernel_size) from grad_out and x (with
// its prefix, as for the forward).
RowConvParams check_grad_weight(const at::Tensor& grad_out, const at::Tensor& x,
                                int64_t kernel_size, int64_t stride, int64_t pad_left,
                                int64_t pad_right, int64_t dilation, int64_t groups,
                                int64_t fft_block = 0,
                                const std::optional<at::Tensor>& prefix = std::nullopt);

// (y, final_state) = row_conv1d_with_final_state(...): the convolution must
// be causal (stride 1, pad_left = dilation * (K - 1), pad_right 0); then
// check_forward's checks.
RowConvParams check_forward_with_final_state(const at::Tensor& x, const at::Tensor& weight,
                                             const std::optional<at::Tensor>& bias, int64_t stride,
                                             int64_t pad_left, int64_t pad_right, int64_t dilation,
                                             int64_t groups, int64_t fft_block,
                                             const std::optional<at::Tensor>& prefix);

// grad_bias (H, Cout) from grad_out (B, Cout, H, Wout).
RowConvParams check_grad_bias(const at::Tensor& grad_out);

// y = row_conv1d_update(x, conv_state, weight, bias): x (B, Cin, H, T),
// conv_state (pool, Cin, H, S), cache_seqlens and state_indices (B,) int32 or
// int64 (row_conv1d_update_params.h). Reads state_indices' values (to the
// host, for a CUDA tensor) to refuse rows outside the pool and repeated rows.
RowConvUpdateParams check_update(const at::Tensor& x, const at::Tensor& conv_state,
                                 const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                                 int64_t dilation, int64_t groups,
                                 const std::optional<at::Tensor>& cache_seqlens,
                                 const std::optional<at::Tensor>& state_indices);

// conv_state is written in place: it must not carry a lazy conjugate or
// negative bit (check_update's check; also the update's Conjugate and
// Negative kernels', which run before it).
void check_state_has_no_math_bits(const char* op, const at::Tensor& conv_state);

// row_conv1d_update's C++ signature, as its schema (row_conv1d_ops.cpp)
// declares it: for typed calls through the dispatcher (its Autograd kernel,
// the eager Python entry of python_fast_calls.cpp).
using UpdateSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                   const std::optional<at::Tensor>&, int64_t, int64_t,
                                   const std::optional<at::Tensor>&,
                                   const std::optional<at::Tensor>&);

// The C++ signatures of the other ops, as their schemas declare them: for
// typed calls from C++ (python_fast_calls.cpp, row_conv1d_eager_autograd.cpp,
// row_conv1d_autocast.cpp).
using ForwardSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                    int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                    const std::optional<at::Tensor>&);
using ForwardWithStateSignature =
    std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                       int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                       const std::optional<at::Tensor>&);
using GradInputSignature = at::Tensor(const at::Tensor&, const at::Tensor&, c10::SymInt, int64_t, int64_t,
                                      int64_t, int64_t, int64_t, int64_t);
using GradWeightSignature = at::Tensor(const at::Tensor&, const at::Tensor&, c10::SymInt, int64_t, int64_t,
                                       int64_t, int64_t, int64_t, int64_t, const std::optional<at::Tensor>&);
using GradBiasSignature = at::Tensor(const at::Tensor&);

}  // namespace rowconv
