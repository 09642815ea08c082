// A direct Python entry to row_conv1d_update for eager calls, the decode
// step's hot path: the arguments converted here and the op called through
// the dispatcher (every dispatch key still applies: autograd's refusals,
// fake and functional tensors, dispatch modes), without torch.ops' boxed
// path, whose argument parsing and stack cost a decode step more than an
// op's whole call overhead. functional.row_conv1d_update calls it only
// outside torch.compile and where no argument or mode overrides
// __torch_function__; anything it does not take as given (an argument of
// another type: a SymInt, a float) makes it return None, and the caller
// then takes torch.ops' path, which raises torch's own error.
#include <Python.h>

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>

#include <optional>

#include "row_conv1d.h"

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

}  // namespace
}  // namespace rowconv

PyMethodDef rowconv_fast_methods[] = {
    {"_update_fast", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(&rowconv::update)), METH_FASTCALL,
     "row_conv1d_update's eager entry (rowconv_ext.functional); None where it declines the arguments"},
    {nullptr, nullptr, 0, nullptr}};
