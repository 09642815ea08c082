// row_conv1d_update is an inference step: it has no derivative (training
// runs row_conv1d over the sequence). Its Autograd kernel, in C++ so that a
// decode step pays no Python, refuses what would otherwise give a missing or
// wrong gradient: operands that require grad under grad mode, forward-mode
// tangents (dual tensors, torch.func.jvp), and vmap (its batched kernel).
// Otherwise it bumps conv_state's version counter (the in-place write that
// autograd must see) and runs the backend kernel. Its Conjugate and Negative
// kernels (below autograd, where inference tensors come in too) replace
// PyTorch's fallback for those bits, which runs an op on resolved copies
// and, for a mutated argument, fails an internal assert: a conv_state with
// either bit gets the op's own error, other operands are resolved.
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/library.h>

#include <optional>

#include "row_conv1d.h"

namespace rowconv {
namespace {

void refuse_derivative(const char* name, const at::Tensor& t, bool grad_mode) {
  if (!t.defined()) return;
  TORCH_CHECK(!(grad_mode && t.requires_grad()), "row_conv1d_update: ", name,
              " requires grad, but row_conv1d_update is an inference step with no derivative; "
              "call it under torch.no_grad() (or torch.inference_mode()) or pass ", name,
              ".detach() (training: row_conv1d(..., padding='causal') over the sequence)");
  TORCH_CHECK(!t._fw_grad(/*level=*/0).defined(), "row_conv1d_update: ", name,
              " carries a forward-mode tangent (a dual tensor or torch.func.jvp), but "
              "row_conv1d_update is an inference step with no derivative");
}

at::Tensor update_autograd(c10::DispatchKeySet keys, const at::Tensor& x,
                           const at::Tensor& conv_state, const at::Tensor& weight,
                           const std::optional<at::Tensor>& bias, int64_t dilation,
                           int64_t groups, const std::optional<at::Tensor>& cache_seqlens,
                           const std::optional<at::Tensor>& state_indices) {
  const bool grad_mode = c10::GradMode::is_enabled();
  refuse_derivative("x", x, grad_mode);
  refuse_derivative("conv_state", conv_state, grad_mode);
  refuse_derivative("weight", weight, grad_mode);
  if (bias.has_value()) refuse_derivative("bias", *bias, grad_mode);
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("rowconv::row_conv1d_update", "")
                             .typed<UpdateSignature>();
  at::Tensor y = op.redispatch(keys & c10::after_ADInplaceOrView_keyset, x, conv_state, weight,
                               bias, dilation, groups, cache_seqlens, state_indices);
  torch::autograd::impl::bump_version(conv_state);
  return y;
}

at::Tensor update_resolving_math_bits(c10::DispatchKeySet keys, const at::Tensor& x,
                                      const at::Tensor& conv_state, const at::Tensor& weight,
                                      const std::optional<at::Tensor>& bias, int64_t dilation,
                                      int64_t groups, const std::optional<at::Tensor>& cache_seqlens,
                                      const std::optional<at::Tensor>& state_indices) {
  check_state_has_no_math_bits("row_conv1d_update", conv_state);
  const auto resolved = [](const at::Tensor& t) { return t.defined() ? t.resolve_conj().resolve_neg() : t; };
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("rowconv::row_conv1d_update", "")
                             .typed<UpdateSignature>();
  // (Negative runs before Conjugate: past both)
  const c10::DispatchKeySet below(c10::DispatchKeySet::FULL_AFTER, c10::DispatchKey::Conjugate);
  return op.redispatch(keys & below, resolved(x), conv_state, resolved(weight),
                       bias.has_value() ? std::optional<at::Tensor>(resolved(*bias)) : std::nullopt, dilation,
                       groups, cache_seqlens, state_indices);
}

void refuse_vmap(const c10::OperatorHandle&, torch::jit::Stack*) {
  TORCH_CHECK(false,
              "row_conv1d_update: vmap is not supported (an in-place decode step; its batch "
              "dimension already runs many sequences, and state_indices picks their state rows)");
}

}  // namespace
}  // namespace rowconv

TORCH_LIBRARY_IMPL(rowconv, Autograd, m) {
  m.impl("row_conv1d_update", &rowconv::update_autograd);
}

TORCH_LIBRARY_IMPL(rowconv, Conjugate, m) {
  m.impl("row_conv1d_update", &rowconv::update_resolving_math_bits);
}

TORCH_LIBRARY_IMPL(rowconv, Negative, m) {
  m.impl("row_conv1d_update", &rowconv::update_resolving_math_bits);
}

TORCH_LIBRARY_IMPL(rowconv, FuncTorchBatched, m) {
  m.impl("row_conv1d_update", torch::CppFunction::makeFromBoxedFunction<&rowconv::refuse_vmap>());
}
