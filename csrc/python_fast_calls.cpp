// Direct Python entries to the ops for eager calls, without torch.ops' boxed
// path (whose argument parsing and stack cost a decode step more than an
// op's whole call overhead). The functions of rowconv_ext.functional call
// them only outside torch.compile and where no argument or mode overrides
// __torch_function__; anything an entry does not take as given (an
// argument of another type: a SymInt, a float) makes it return None, and
// the caller then takes torch.ops' path, which raises torch's own error.
//  - _update_fast: row_conv1d_update through the dispatcher (every dispatch
//    key still applies: autograd's refusals, fake and functional tensors,
//    dispatch modes). The decode step's hot path.
//  - _forward_fast: row_conv1d or row_conv1d_with_final_state. Where
//    nothing is to be differentiated, straight below the Autograd key, as the
//    ops' Autograd kernel (rowconv_ext/_registrations.py) then goes: that
//    kernel is Python, and the trip through it cost a 512-wide chunk of the
//    forum shape (32,15,10,512) about 40 us a call, its caches cold from the
//    kernel's 20 MB (Zen 4). Where an operand requires grad under grad mode
//    (plain reverse mode), the op with a C++ autograd node
//    (row_conv1d_eager_autograd.cpp). Declined (None: the caller takes
//    torch.ops' path) where an operand carries a forward-mode tangent, where
//    a functorch transform or a dispatch mode is active (keys in the
//    thread's included set), for tensors of any kind but plain CPU or CUDA
//    ones (batched, wrapped, functional, fake, meta), and for reverse mode
//    under autocast.
#include <Python.h>

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>

#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <pybind11/pybind11.h>

#include <optional>

#include "row_conv1d.h"
#include "row_conv1d_eager_autograd.h"

namespace rowconv {
namespace {

bool tensor_arg(PyObject* o, const at::Tensor*& out) {
  if (!THPVariable_Check(o)) return false;
  out = &THPVariable_Unpack(o);
  return true;
}

bool optional_tensor_arg(PyObject* o, std::optional<at::Tensor>& out) {
  if (o == Py_None) return true;
  if (!THPVariable_Check(o)) return false;
  out = THPVariable_Unpack(o);
  return true;
}

bool int_arg(PyObject* o, int64_t& out) {
  if (!PyLong_CheckExact(o)) return false;  // (bool, SymInt and the like: torch.ops' rules)
  int overflow = 0;
  out = PyLong_AsLongLongAndOverflow(o, &overflow);
  return overflow == 0 && !(out == -1 && PyErr_Occurred());
}

// update(x, conv_state, weight, bias, dilation, groups, cache_seqlens, state_indices)
PyObject* update(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  HANDLE_TH_ERRORS
  if (nargs != 8) Py_RETURN_NONE;
  const at::Tensor *x, *state, *weight;
  std::optional<at::Tensor> bias, cache_seqlens, state_indices;
  int64_t dilation, groups;
  if (!tensor_arg(args[0], x) || !tensor_arg(args[1], state) || !tensor_arg(args[2], weight) ||
      !optional_tensor_arg(args[3], bias) || !int_arg(args[4], dilation) || !int_arg(args[5], groups) ||
      !optional_tensor_arg(args[6], cache_seqlens) || !optional_tensor_arg(args[7], state_indices)) {
    PyErr_Clear();
    Py_RETURN_NONE;
  }
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("rowconv::row_conv1d_update", "")
                             .typed<UpdateSignature>();
  at::Tensor y;
  {
    pybind11::gil_scoped_release no_gil;  // as torch.ops releases it
    y = op.call(*x, *state, *weight, bias, dilation, groups, cache_seqlens, state_indices);
  }
  return THPVariable_Wrap(std::move(y));
  END_HANDLE_TH_ERRORS
}

// A tensor that needs none of the dispatcher's keys above the backend's but
// Autograd's (which forward_fast steps below or records itself), autocast's
// and the conjugate and negative bits' (which the dispatch still meets), and
// no forward-mode tangent.
bool eager_operand(const at::Tensor& t) {
  static const c10::DispatchKeySet kPlain({c10::DispatchKey::CPU, c10::DispatchKey::CUDA,
                                           c10::DispatchKey::AutogradCPU, c10::DispatchKey::AutogradCUDA,
                                           c10::DispatchKey::ADInplaceOrView, c10::DispatchKey::AutocastCPU,
                                           c10::DispatchKey::AutocastCUDA, c10::DispatchKey::Conjugate,
                                           c10::DispatchKey::Negative});
  return kPlain.isSupersetOf(t.key_set()) && !t._fw_grad(/*level=*/0).defined();
}

// Whether autocast is on for t's device (its key not excluded).
bool autocast_applies(const at::Tensor& t) {
  static const c10::DispatchKeySet kAutocast({c10::DispatchKey::AutocastCPU, c10::DispatchKey::AutocastCUDA});
  return !((t.key_set() & kAutocast) - c10::impl::tls_local_dispatch_key_set().excluded_).empty();
}

// f() (an op's call) without the GIL, as torch.ops releases it, and below
// the Autograd key.
template <typename F>
auto below_autograd(F&& f) {
  pybind11::gil_scoped_release no_gil;
  at::AutoDispatchBelowAutograd below;
  return f();
}

// (a, b) as a new Python tuple.
PyObject* wrap_pair(at::Tensor a, at::Tensor b) {
  PyObject* pair = PyTuple_New(2);
  if (!pair) return nullptr;
  PyTuple_SET_ITEM(pair, 0, THPVariable_Wrap(std::move(a)));  // (steals the references)
  PyTuple_SET_ITEM(pair, 1, THPVariable_Wrap(std::move(b)));
  return pair;
}

// forward_fast(with_final_state, x, weight, bias, stride, pad_left, pad_right,
// dilation, groups, fft_block, prefix): y, or (y, final_state)
PyObject* forward_fast(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  HANDLE_TH_ERRORS
  if (nargs != 11) Py_RETURN_NONE;
  const at::Tensor *x, *weight;
  std::optional<at::Tensor> bias, prefix;
  ConvArgs conv;
  bool ints = true;
  for (int i = 0; i < 6; ++i) ints = ints && int_arg(args[4 + i], conv[i]);
  if (!ints || !tensor_arg(args[1], x) || !tensor_arg(args[2], weight) || !optional_tensor_arg(args[3], bias) ||
      !optional_tensor_arg(args[10], prefix)) {
    PyErr_Clear();
    Py_RETURN_NONE;
  }
  // (eager mode includes these two; a transform or a mode adds its own)
  static const c10::DispatchKeySet kEagerIncluded({c10::DispatchKey::BackendSelect, c10::DispatchKey::ADInplaceOrView});
  if (!kEagerIncluded.isSupersetOf(c10::impl::tls_local_dispatch_key_set().included_) || !eager_operand(*x) ||
      !eager_operand(*weight) || (bias && !eager_operand(*bias)) || (prefix && !eager_operand(*prefix)))
    Py_RETURN_NONE;
  const int with_final_state = PyObject_IsTrue(args[0]);
  if (with_final_state < 0) {
    PyErr_Clear();
    Py_RETURN_NONE;
  }
  const bool record = at::GradMode::is_enabled() && (x->requires_grad() || weight->requires_grad() ||
                                                     (bias && bias->requires_grad()) ||
                                                     (prefix && prefix->requires_grad()));
  if (record) {
    // Reverse mode, recorded by row_conv1d_eager_autograd.cpp's node; not
    // under autocast, whose kernel casts the operands above Autograd (the
    // node must record the cast ones).
    if (autocast_applies(*x)) Py_RETURN_NONE;
    std::vector<at::Tensor> out;
    {
      pybind11::gil_scoped_release no_gil;
      out = row_conv1d_recorded(*x, *weight, bias, conv, prefix, with_final_state);
    }
    return with_final_state ? wrap_pair(std::move(out[0]), std::move(out[1])) : THPVariable_Wrap(std::move(out[0]));
  }
  if (with_final_state) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("rowconv::row_conv1d_with_final_state", "")
                               .typed<ForwardWithStateSignature>();
    auto out = below_autograd(
        [&] { return op.call(*x, *weight, bias, conv[0], conv[1], conv[2], conv[3], conv[4], conv[5], prefix); });
    return wrap_pair(std::move(std::get<0>(out)), std::move(std::get<1>(out)));
  }
  static const auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("rowconv::row_conv1d", "").typed<ForwardSignature>();
  return THPVariable_Wrap(below_autograd(
      [&] { return op.call(*x, *weight, bias, conv[0], conv[1], conv[2], conv[3], conv[4], conv[5], prefix); }));
  END_HANDLE_TH_ERRORS
}

}  // namespace
}  // namespace rowconv

PyMethodDef rowconv_fast_methods[] = {
    {"_forward_fast", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&rowconv::forward_fast)),
     METH_FASTCALL,
     "row_conv1d's eager entry, for inference and plain reverse mode (rowconv_ext.functional); None where it "
     "declines"},
    {"_update_fast", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&rowconv::update)), METH_FASTCALL,
     "row_conv1d_update's eager entry (rowconv_ext.functional); None where it declines the arguments"},
    {nullptr, nullptr, 0, nullptr}};
