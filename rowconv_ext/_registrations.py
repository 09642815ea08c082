"""Python-side registrations of the torch.ops.rowconv ops: fake (meta)
kernels for torch.compile, and autograd.

Every op is linear in each of its tensor arguments, so each backward is built
from the same four ops, which are themselves differentiable: gradients of any
order (gradgradcheck, Hessian-vector products) need nothing more.
With conv = (stride, pad_left, pad_right, dilation, groups):

  y   = row_conv1d(x, w, b)        dx = grad_input(gy, w)   dw = grad_weight(gy, x)   db = grad_bias(gy)
  gx  = grad_input(gy, w)          d(gy) = row_conv1d(ggx, w)        dw = grad_weight(gy, ggx)
  gw  = grad_weight(gy, x)         d(gy) = row_conv1d(x, ggw)        dx = grad_input(gy, ggw)
  gb  = grad_bias(gy)              d(gy) = ggb broadcast over (B, Wout)
"""
import torch

_ops = torch.ops.rowconv


def _out_width(width, kernel_size, stride, pad_left, pad_right, dilation):
    return (width + pad_left + pad_right - dilation * (kernel_size - 1) - 1) // stride + 1


# Fake kernels: shapes, plus the device and dtype agreement that decides which
# backend runs (a mixed CPU/meta call dispatches here, not to C++). The full
# argument checks live in C++ (csrc/row_conv1d_ops.cpp) and run before every
# real kernel.
def _check_like(op, ref_name, ref, name, other):
    if other.device != ref.device or other.dtype != ref.dtype:
        raise RuntimeError(
            f"{op}: {name} must have the device and dtype of {ref_name} ({ref.device}, {ref.dtype}), "
            f"got ({other.device}, {other.dtype})")


def _check_rank(op, name, t, layout):
    if t.dim() != 4:
        raise ValueError(f"{op}: {name} must be a 4-D {layout} tensor, got a {t.dim()}-D tensor of shape "
                         f"{list(t.shape)}")


@torch.library.register_fake("rowconv::row_conv1d")
def _row_conv1d_fake(x, weight, bias, stride, pad_left, pad_right, dilation, groups):
    # What torch.compile traces: the checks a trace needs to make sense (the
    # full set runs in C++ with the real kernels).
    _check_rank("row_conv1d", "x", x, "(B, Cin, H, W)")
    _check_rank("row_conv1d", "weight", weight, "(H, Cout, Cin / groups, K)")
    _check_like("row_conv1d", "x", x, "weight", weight)
    if bias is not None:
        _check_like("row_conv1d", "x", x, "bias", bias)
    B, _, H, W = x.shape
    K = weight.shape[3]
    w_out = _out_width(W, K, stride, pad_left, pad_right, dilation)
    torch._check(W + pad_left + pad_right >= dilation * (K - 1) + 1, lambda: (
        f"row_conv1d: the padded input is shorter than the dilated kernel: W + pad_left + pad_right = "
        f"{W} + {pad_left} + {pad_right}, expected at least dilation * (K - 1) + 1 = {dilation * (K - 1) + 1}"))
    return x.new_empty((B, weight.shape[1], H, w_out))


@torch.library.register_fake("rowconv::row_conv1d_grad_input")
def _grad_input_fake(grad_out, weight, width, stride, pad_left, pad_right, dilation, groups):
    _check_like("row_conv1d_grad_input", "grad_out", grad_out, "weight", weight)
    B, _, H, _ = grad_out.shape
    return grad_out.new_empty((B, weight.shape[2] * groups, H, width))


@torch.library.register_fake("rowconv::row_conv1d_grad_weight")
def _grad_weight_fake(grad_out, x, kernel_size, stride, pad_left, pad_right, dilation, groups):
    _check_like("row_conv1d_grad_weight", "x", x, "grad_out", grad_out)
    _, cin, H, _ = x.shape
    return x.new_empty((H, grad_out.shape[1], cin // groups, kernel_size))


@torch.library.register_fake("rowconv::row_conv1d_grad_bias")
def _grad_bias_fake(grad_out):
    return grad_out.new_empty((grad_out.shape[2], grad_out.shape[1]))


# Autograd.
def _forward_setup(ctx, inputs, output):
    x, weight, bias, *conv = inputs
    ctx.save_for_backward(x, weight)
    ctx.conv = tuple(conv)
    ctx.width = x.shape[3]
    ctx.kernel_size = weight.shape[3]
    ctx.has_bias = bias is not None


def _forward_backward(ctx, grad):
    x, weight = ctx.saved_tensors
    gx = gw = gb = None
    if ctx.needs_input_grad[0]:
        gx = _ops.row_conv1d_grad_input(grad, weight, ctx.width, *ctx.conv)
    if ctx.needs_input_grad[1]:
        gw = _ops.row_conv1d_grad_weight(grad, x, ctx.kernel_size, *ctx.conv)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        gb = _ops.row_conv1d_grad_bias(grad)
    return (gx, gw, gb) + (None,) * len(ctx.conv)


def _grad_input_setup(ctx, inputs, output):
    grad_out, weight, width, *conv = inputs
    ctx.save_for_backward(grad_out, weight)
    ctx.conv = tuple(conv)
    ctx.kernel_size = weight.shape[3]


def _grad_input_backward(ctx, ggx):
    grad_out, weight = ctx.saved_tensors
    d_gout = d_w = None
    if ctx.needs_input_grad[0]:
        d_gout = _ops.row_conv1d(ggx, weight, None, *ctx.conv)
    if ctx.needs_input_grad[1]:
        d_w = _ops.row_conv1d_grad_weight(grad_out, ggx, ctx.kernel_size, *ctx.conv)
    return (d_gout, d_w, None) + (None,) * len(ctx.conv)


def _grad_weight_setup(ctx, inputs, output):
    grad_out, x, kernel_size, *conv = inputs
    ctx.save_for_backward(grad_out, x)
    ctx.conv = tuple(conv)
    ctx.width = x.shape[3]


def _grad_weight_backward(ctx, ggw):
    grad_out, x = ctx.saved_tensors
    d_gout = d_x = None
    if ctx.needs_input_grad[0]:
        d_gout = _ops.row_conv1d(x, ggw, None, *ctx.conv)
    if ctx.needs_input_grad[1]:
        d_x = _ops.row_conv1d_grad_input(grad_out, ggw, ctx.width, *ctx.conv)
    return (d_gout, d_x, None) + (None,) * len(ctx.conv)


def _grad_bias_setup(ctx, inputs, output):
    (grad_out,) = inputs
    ctx.gout_shape = grad_out.shape


def _grad_bias_backward(ctx, ggb):
    B, cout, H, w_out = ctx.gout_shape
    return ggb.t()[None, :, :, None].expand(B, cout, H, w_out)


torch.library.register_autograd(
    "rowconv::row_conv1d", _forward_backward, setup_context=_forward_setup)
torch.library.register_autograd(
    "rowconv::row_conv1d_grad_input", _grad_input_backward, setup_context=_grad_input_setup)
torch.library.register_autograd(
    "rowconv::row_conv1d_grad_weight", _grad_weight_backward, setup_context=_grad_weight_setup)
torch.library.register_autograd(
    "rowconv::row_conv1d_grad_bias", _grad_bias_backward, setup_context=_grad_bias_setup)
