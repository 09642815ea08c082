// row_conv1d's reverse mode for eager training calls, recorded by a C++
// autograd node. The op's Autograd kernel (RowConv1dFunction,
// rowconv_ext/_registrations.py) is a Python autograd.Function, which serves
// every transform (forward mode, torch.func, torch.compile) but cost a small
// training step dearly: forum (32,15,10,100) K 3, forward and backward, took
// 1.35 ms through it against 1.06 ms for its four ops alone (Zen 4, session
// 33); in-process, through it and through this node: 1276 and 1212 us, a
// (1,2,2,16) step 97 and 61 us (the rest is torch.autograd.grad's own). Where
// the eager entry (python_fast_calls.cpp) sees a plain reverse-mode call (no
// forward-mode tangent, no functorch transform, no dispatch mode), it records
// this node instead. Its backward is the Python one's (the same ops on the
// same operands, so the same bits): grad_input of the virtual input
// prefix ++ x (split into the two; with the final state's gradient added to
// its tail), grad_weight, grad_bias. Where the backward is itself recorded
// (create_graph, or a tangent on the incoming gradient) its ops go through
// the dispatcher, whose Autograd kernels record them: derivatives of every
// order, as before.
#include "row_conv1d_eager_autograd.h"

#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/cat.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/custom_function.h>

#include "row_conv1d.h"

namespace rowconv {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

template <typename Signature>
c10::TypedOperatorHandle<Signature> typed_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

// f() (the backward's ops) through the dispatcher where they are recorded,
// otherwise straight below Autograd, as their Autograd kernels would go then.
template <typename F>
auto backward_ops(bool recorded, F&& f) {
  if (recorded) return f();
  at::AutoDispatchBelowAutograd below;
  return f();
}

// Whether t is a vmap (legacy or functorch) or functorch grad wrapper:
// gradcheck's batched gradients reach a backward as such.
bool wrapped(const at::Tensor& t) {
  static const c10::DispatchKeySet kWrappers({c10::DispatchKey::Batched, c10::DispatchKey::FuncTorchBatched,
                                              c10::DispatchKey::FuncTorchGradWrapper});
  return t.key_set().has_any(kWrappers);
}

}  // namespace

// Forward inputs: x, weight, bias, prefix (variables where given), conv,
// with_final_state. The node's edges are the given tensors, in that order.
// (Outside the anonymous namespace: its name is the node's, as
// grad_fn.name() and anomaly mode's traces print it.)
struct RecordedRowConv1d : torch::autograd::Function<RecordedRowConv1d> {
  static constexpr int64_t kInputs = 6;

  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                               const std::optional<at::Tensor>& bias, const std::optional<at::Tensor>& prefix,
                               const ConvArgs& conv, bool with_final_state) {
    at::AutoDispatchBelowAutograd below;
    variable_list out;
    if (with_final_state) {
      static const auto op = typed_op<ForwardWithStateSignature>("rowconv::row_conv1d_with_final_state");
      auto [y, state] = op.call(x, weight, bias, conv[0], conv[1], conv[2], conv[3], conv[4], conv[5], prefix);
      out = {std::move(y), std::move(state)};
    } else {
      static const auto op = typed_op<ForwardSignature>("rowconv::row_conv1d");
      out = {op.call(x, weight, bias, conv[0], conv[1], conv[2], conv[3], conv[4], conv[5], prefix)};
    }
    ctx->save_for_backward({x, weight, prefix.value_or(at::Tensor())});
    ctx->saved_data["conv"] = c10::IntArrayRef(conv);
    ctx->saved_data["has_bias"] = bias.has_value();  // (a prefix is saved; a final state is a second output)
    ctx->set_materialize_grads(false);  // (an unused output's gradient: nothing to add)
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto grad_input_op = typed_op<GradInputSignature>("rowconv::row_conv1d_grad_input");
    static const auto grad_weight_op = typed_op<GradWeightSignature>("rowconv::row_conv1d_grad_weight");
    static const auto grad_bias_op = typed_op<GradBiasSignature>("rowconv::row_conv1d_grad_bias");
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1], &prefix = saved[2];
    const std::vector<int64_t> conv = ctx->saved_data["conv"].toIntVector();
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    const int64_t stride = conv[0], pad_left = conv[1], pad_right = conv[2], dilation = conv[3], groups = conv[4],
                  fft_block = conv[5];
    const int64_t width = x.size(3), kernel_size = weight.size(3);
    at::Tensor grad = grads[0];
    const at::Tensor grad_state = grads.size() > 1 ? grads[1] : at::Tensor();
    variable_list out(kInputs);
    if (!grad.defined()) {
      if (!grad_state.defined()) return out;
      grad = x.new_zeros({x.size(0), weight.size(1), x.size(2), width});  // (a causal y: x's width)
    }
    const bool recorded = c10::GradMode::is_enabled() || grad._fw_grad(/*level=*/0).defined() ||
                          (grad_state.defined() && grad_state._fw_grad(/*level=*/0).defined());
    const bool needs_prefix = prefix.defined() && ctx->needs_input_grad(has_bias ? 3 : 2);
    if (ctx->needs_input_grad(0) || needs_prefix) {
      // grad_input of the virtual input v = prefix ++ x (a final state's
      // gradient goes to its tail: the state is v's last pad_left inputs),
      // split into the two.
      const int64_t prefix_width = (prefix.defined() || grad_state.defined()) ? pad_left : 0;
      at::Tensor g = backward_ops(recorded, [&] {
        return grad_input_op.call(grad, weight.conj(), c10::SymInt(prefix_width + width), stride,
                                  pad_left - prefix_width, pad_right, dilation, groups, fft_block);
      });
      if (grad_state.defined()) {
        at::Tensor tail = g.narrow(3, width, prefix_width);
        if (recorded || wrapped(g) || wrapped(grad_state))  // (not in place where it would be recorded or batched)
          g = at::cat(at::TensorList{g.narrow(3, 0, width), tail.add(grad_state)}, 3);
        else
          tail.add_(grad_state);
      }
      out[0] = g.narrow(3, prefix_width, width);
      if (prefix.defined()) out[3] = g.narrow(3, 0, prefix_width);
    }
    if (ctx->needs_input_grad(1)) {
      out[1] = backward_ops(recorded, [&] {
        return grad_weight_op.call(grad, x.conj(), c10::SymInt(kernel_size), stride, pad_left, pad_right, dilation,
                                   groups, fft_block,
                                   prefix.defined() ? std::optional<at::Tensor>(prefix.conj()) : std::nullopt);
      });
    }
    if (has_bias && ctx->needs_input_grad(2))
      out[2] = backward_ops(recorded, [&] { return grad_bias_op.call(grad); });
    return out;
  }
};

std::vector<at::Tensor> row_conv1d_recorded(const at::Tensor& x, const at::Tensor& weight,
                                            const std::optional<at::Tensor>& bias, const ConvArgs& conv,
                                            const std::optional<at::Tensor>& prefix, bool with_final_state) {
  return RecordedRowConv1d::apply(x, weight, bias, prefix, conv, with_final_state);
}

}  // namespace rowconv
