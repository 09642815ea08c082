"""Python-side registrations of the torch.ops.rowconv ops: fake (meta)
kernels for torch.compile, autograd in both modes, and vmap batching rules.

Every op is bilinear in its two tensor operands (the bias enters linearly), so
each derivative is built from the same four ops, which are themselves
differentiable: gradients of any order, in reverse and forward mode, need
nothing more. With conv = (stride, pad_left, pad_right, dilation, groups):

  op                        tangent (forward mode)           cotangents (reverse mode)
  y  = row_conv1d(x, w, b)  F(tx, w) + F(x, tw) + tb         gx = GI(gy, w*)    gw = GW(gy, x*)   gb = GB(gy)
  gx = GI(g, w)             GI(tg, w) + GI(g, tw)            dg = F(ggx, w*)    dw = GW(g*, ggx)
  gw = GW(g, x)             GW(tg, x) + GW(g, tx)            dg = F(x*, ggw)    dx = GI(g*, ggw)
  gb = GB(g)                GB(tg)                           dg = ggb broadcast over (B, Wout)

(F = row_conv1d, GI/GW/GB = its grad_input/grad_weight/grad_bias ops.)

F and GW take an optional prefix p of x (the carried state of a causal
convolution, S = dilation * (K - 1) wide), read before x instead of the left
padding: they are then the same bilinear maps of the virtual input v = p ++ x
with no padding, so every formula above holds for v. The tangent F(tv, w) is
F(tx, w, prefix=tp) (a missing tx is x's zeros, a missing tp the padding's), and
the cotangent GI(gy, w*) of v is grad_input at width S + W and pad_left 0,
returned as its two views [..., :S] (for p) and [..., S:] (for x).

The
starred operand is conjugated: PyTorch's convention for complex gradients is
the adjoint, and the adjoint of a map bilinear in (a, b) conjugates the operand
held fixed. For real dtypes `.conj()` is the tensor itself; for complex ones it
is a lazy view whose conjugate bit the C++ ops fold into their real
decomposition, so it costs no copy.

Autograd is an autograd.Function per op (forward, setup_context, backward,
jvp), registered as the op's Autograd kernel: this is what makes dual tensors,
torch.func (grad, vjp, jvp, jacrev, jacfwd, hessian) and torch.compile work.
(Eager calls of rowconv_ext.row_conv1d in plain reverse mode record a C++
node with the same backward instead: csrc/row_conv1d_eager_autograd.cpp.)
The Functions' vmap rule is generated (functorch vmaps their bodies, which call
the ops), and the ops have real batching rules (register_vmap): a vmapped call
folds the vmapped dimension into the batch or the rows and runs one op.
"""
import contextlib

import torch
from torch import _C
from torch._functorch.utils import enable_single_level_autograd_function
from torch.autograd import forward_ad

_ops = torch.ops.rowconv


def _out_width(width, kernel_size, stride, pad_left, pad_right, dilation):
    return (width + pad_left + pad_right - dilation * (kernel_size - 1) - 1) // stride + 1


# Fake kernels: shapes, plus the device and dtype agreement that decides which
# backend runs (a mixed CPU/meta call dispatches here, not to C++). The full
# argument checks live in C++ (csrc/row_conv1d_checks.cpp) and run before every
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
def _row_conv1d_fake(x, weight, bias, stride, pad_left, pad_right, dilation, groups, fft_block=0, prefix=None):
    # What torch.compile traces: the checks a trace needs to make sense (the
    # full set runs in C++ with the real kernels).
    _check_rank("row_conv1d", "x", x, "(B, Cin, H, W)")
    _check_rank("row_conv1d", "weight", weight, "(H, Cout, Cin / groups, K)")
    _check_like("row_conv1d", "x", x, "weight", weight)
    if bias is not None:
        _check_like("row_conv1d", "x", x, "bias", bias)
    if prefix is not None:
        _check_like("row_conv1d", "x", x, "prefix (initial_state)", prefix)
    B, _, H, W = x.shape
    K = weight.shape[3]
    w_out = _out_width(W, K, stride, pad_left, pad_right, dilation)
    torch._check(W + pad_left + pad_right >= dilation * (K - 1) + 1, lambda: (
        f"row_conv1d: the padded input is shorter than the dilated kernel: W + pad_left + pad_right = "
        f"{W} + {pad_left} + {pad_right}, expected at least dilation * (K - 1) + 1 = {dilation * (K - 1) + 1}"))
    return x.new_empty((B, weight.shape[1], H, w_out))


@torch.library.register_fake("rowconv::row_conv1d_grad_input")
def _grad_input_fake(grad_out, weight, width, stride, pad_left, pad_right, dilation, groups, fft_block=0):
    _check_like("row_conv1d_grad_input", "grad_out", grad_out, "weight", weight)
    B, _, H, _ = grad_out.shape
    return grad_out.new_empty((B, weight.shape[2] * groups, H, width))


@torch.library.register_fake("rowconv::row_conv1d_grad_weight")
def _grad_weight_fake(grad_out, x, kernel_size, stride, pad_left, pad_right, dilation, groups,
                      fft_block=0, prefix=None):
    _check_like("row_conv1d_grad_weight", "x", x, "grad_out", grad_out)
    if prefix is not None:
        _check_like("row_conv1d_grad_weight", "x", x, "prefix (initial_state)", prefix)
    _, cin, H, _ = x.shape
    return x.new_empty((H, grad_out.shape[1], cin // groups, kernel_size))


@torch.library.register_fake("rowconv::row_conv1d_grad_bias")
def _grad_bias_fake(grad_out):
    return grad_out.new_empty((grad_out.shape[2], grad_out.shape[1]))


@torch.library.register_fake("rowconv::row_conv1d_update")
def _update_fake(x, conv_state, weight, bias, dilation, groups, cache_seqlens, state_indices):
    # conv_state is mutated (the schema says so); the result is new.
    op = "row_conv1d_update"
    _check_rank(op, "x", x, "(B, Cin, H, T)")
    _check_rank(op, "conv_state", conv_state, "(state batch, Cin, H, S)")
    _check_rank(op, "weight", weight, "(H, Cout, Cin / groups, K)")
    _check_like(op, "x", x, "conv_state", conv_state)
    _check_like(op, "x", x, "weight", weight)
    if bias is not None:
        _check_like(op, "x", x, "bias", bias)
    B, _, H, T = x.shape
    return x.new_empty((B, weight.shape[1], H, T))


# Autograd, reverse and forward mode.
def _sum_terms(*terms):
    """The sum of the tangent terms that exist (None: that input has no
    tangent; forward mode calls jvp only when at least one input has one)."""
    terms = [t for t in terms if t is not None]
    out = terms[0]
    for t in terms[1:]:
        out = out + t
    return out


def _jvp_rule(jvp):
    """autograd.Function calls jvp with forward grads off, so that its ops
    record no tangent at this level; but under nested functorch transforms
    (jacfwd(jacfwd(...)), jvp of jvp) the levels below must still see them.
    As PyTorch's built-in forward formulas do: forward grads on, and the saved
    operands as their primals at this level, so there is no tangent to record
    here while the levels below record theirs."""
    def rule(ctx, *tangents):
        with forward_ad._set_fwd_grad_enabled(True):
            # dual level 0, the only one (not the Python API's record of it,
            # which torch.compile's replay of a jvp does not update)
            primals = tuple(None if t is None else torch._VF._unpack_dual(t, 0).primal
                            for t in ctx.saved_tensors)
            return jvp(ctx, primals, *tangents)
    return staticmethod(rule)


def _bias_broadcast(b, shape):
    """(H, Cout) -> (B, Cout, H, Wout), materialised (a tangent or gradient
    has the output's shape, not a broadcastable one)."""
    B, cout, H, w_out = shape
    return b.t()[None, :, :, None].expand(B, cout, H, w_out).contiguous()


def _forward_below_autograd(op):
    """The forward of an op's autograd.Function: the backend kernel, reached
    by redispatching below the Autograd key with the keyset the dispatcher
    gave (the last argument), as PyTorch's generated kernels do. Under a
    functorch transform, below Autograd is the next transform level, which must
    record the op in turn: grad modes back on, as functorch's own
    autograd.Function support does."""
    def forward(*args):
        *args, keyset = args
        with _C._AutoDispatchBelowAutograd(), torch.enable_grad(), forward_ad._set_fwd_grad_enabled(True):
            return op.redispatch(keyset & _C._after_autograd_keyset, *args)
    return staticmethod(forward)


_CONV_ARGS = 6  # stride, pad_left, pad_right, dilation, groups, fft_block
_PREFIX_AT = 3 + _CONV_ARGS  # row_conv1d's and row_conv1d_grad_weight's prefix argument


def _conv_and_prefix(args):
    """The conv arguments (stride, pad_left, pad_right, dilation, groups,
    fft_block) and the prefix (or None) from an op's arguments after its
    first three: the dispatcher hands a Python kernel its arguments without
    the trailing ones that equal their defaults (fft_block=0, prefix=None)."""
    conv = tuple(args[:_CONV_ARGS])
    return conv + (0,) * (_CONV_ARGS - len(conv)), (args[_CONV_ARGS] if len(args) > _CONV_ARGS else None)


def _grads(count, by_position):
    """A backward's result: `count` entries (one per forward input), the
    gradients given by position, None elsewhere."""
    out = [None] * count
    for position, grad in by_position.items():
        if grad is not None:
            out[position] = grad
    return tuple(out)


def _conj(t):
    return None if t is None else t.conj()


def _virtual_conv(conv, prefix_width):
    """The conv arguments of the virtual input prefix ++ x: the prefix replaces
    that much of the left padding."""
    stride, pad_left, *rest = conv
    return (stride, pad_left - prefix_width, *rest)


def _grad_of_prefixed_input(grad_out, weight, width, conv, prefix):
    """GI(grad_out, weight) for x of `width` positions, and its prefix's
    part: (grad of prefix or None, grad of x). With a prefix, grad_input of
    the virtual input prefix ++ x, split into its two views."""
    if prefix is None:
        return None, _ops.row_conv1d_grad_input.default(grad_out, weight, width, *conv)
    s = prefix.shape[3]
    g = _ops.row_conv1d_grad_input.default(grad_out, weight, s + width, *_virtual_conv(conv, s))
    return g[..., :s], g[..., s:]


def _zeros_like_view(t):
    """Zeros of t's shape, dtype and device as an expanded scalar (no memory;
    the kernels read any strides): a missing tangent where its partner has one."""
    return t.new_zeros(()).expand(t.shape)


def _final_state(x, prefix, state_width):
    """The last state_width inputs of prefix ++ x (zeros for a missing
    prefix), as a new contiguous tensor: the next chunk's initial_state."""
    width = x.shape[3]
    if width >= state_width:
        # (no slice at width == state_width: a whole-width slice is an alias,
        # which gradcheck's batched tangents cannot take)
        tail = x if width == state_width else x[..., width - state_width:]
        return tail.clone(memory_format=torch.contiguous_format)
    older = (x.new_zeros((*x.shape[:3], state_width - width)) if prefix is None
             else prefix[..., width:])
    return torch.cat([older, x], dim=3)


def _setup_row_conv1d(ctx, inputs, y):
    x, weight, bias, *rest = inputs[:-1]  # the last input: the dispatch keyset
    ctx.conv, prefix = _conv_and_prefix(rest)
    ctx.n_inputs = len(inputs)
    ctx.width = x.shape[3]
    ctx.kernel_size = weight.shape[3]
    ctx.has_bias = bias is not None
    ctx.out_shape = y.shape
    ctx.save_for_backward(x, weight, prefix)
    ctx.save_for_forward(x, weight, prefix)


def _under_a_transform(t):
    """Whether t is a functorch or (gradcheck's) legacy vmap wrapper."""
    f = _C._functorch
    return f.is_functorch_wrapped_tensor(t) or f.is_batchedtensor(t) or f.is_legacy_batchedtensor(t)


def _unrecorded_ops():
    """Where the backward's own ops record nothing (no create_graph, no
    forward AD), straight below Autograd: what each op's autograd_kernel
    would do then anyway, without a Python call per op (tens of
    microseconds a backward, felt on small problems)."""
    if _C.is_grad_enabled() or _forward_ad_active():
        return contextlib.nullcontext()
    return _C._AutoDispatchBelowAutograd()


def _row_conv1d_backward(ctx, grad, grad_state=None):
    """The gradients of row_conv1d's inputs; with grad_state, that of the
    final state too (row_conv1d_with_final_state): the final state is the
    tail [W, W + S) of the virtual input v = prefix ++ x, so its gradient is
    added to the tail of v's gradient, one grad_input call for both."""
    with _unrecorded_ops():
        return _row_conv1d_backward_ops(ctx, grad, grad_state)


def _row_conv1d_backward_ops(ctx, grad, grad_state):
    x, weight, prefix = ctx.saved_tensors
    gx = gw = gb = gp = None
    needs = ctx.needs_input_grad
    if needs[0] or (prefix is not None and needs[_PREFIX_AT]):
        if grad_state is None:
            gp, gx = _grad_of_prefixed_input(grad, weight.conj(), ctx.width, ctx.conv, prefix)
        else:
            S = ctx.conv[1]
            g = _ops.row_conv1d_grad_input.default(grad, weight.conj(), S + ctx.width, *_virtual_conv(ctx.conv, S))
            tail = g.narrow(3, ctx.width, S)
            if torch.is_grad_enabled() or any(_under_a_transform(t) for t in (g, grad_state)):
                # Not in place where it would be recorded (create_graph: g may
                # be a custom Function's view) or vmapped (a batched
                # grad_state cannot go into an unbatched g in place).
                g = torch.cat([g.narrow(3, 0, ctx.width), tail + grad_state], 3)
            else:
                tail.add_(grad_state)
            gp, gx = (None if prefix is None else g[..., :S]), g[..., S:]
    if needs[1]:
        gw = _ops.row_conv1d_grad_weight.default(grad, x.conj(), ctx.kernel_size, *ctx.conv, _conj(prefix))
    if ctx.has_bias and needs[2]:
        gb = _ops.row_conv1d_grad_bias.default(grad)
    return _grads(ctx.n_inputs, {0: gx, 1: gw, 2: gb, _PREFIX_AT: gp})


def _row_conv1d_tangent(ctx, saved, tx, tw, tb, rest):
    x, weight, prefix = saved
    tprefix = rest[_CONV_ARGS] if prefix is not None else None
    # The tangent of the virtual input: a missing tx is x's zeros, a
    # missing tprefix the zero padding (no prefix).
    return _sum_terms(
        None if tx is None and tprefix is None else _ops.row_conv1d.default(
            _zeros_like_view(x) if tx is None else tx, weight, None, *ctx.conv, tprefix),
        None if tw is None else _ops.row_conv1d.default(x, tw, None, *ctx.conv, prefix),
        None if tb is None else _bias_broadcast(tb, ctx.out_shape))


class RowConv1dFunction(torch.autograd.Function):
    forward = _forward_below_autograd(_ops.row_conv1d.default)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _setup_row_conv1d(ctx, inputs, output)

    @staticmethod
    def backward(ctx, grad):
        return _row_conv1d_backward(ctx, grad)

    @_jvp_rule
    def jvp(ctx, saved, tx, tw, tb, *rest):
        return _row_conv1d_tangent(ctx, saved, tx, tw, tb, rest)


class RowConv1dWithFinalStateFunction(torch.autograd.Function):
    forward = _forward_below_autograd(_ops.row_conv1d_with_final_state.default)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _setup_row_conv1d(ctx, inputs, output[0])

    @staticmethod
    def backward(ctx, grad, grad_state):
        if grad_state is None:  # not materialised (the state unused): nothing to add
            return _row_conv1d_backward(ctx, grad)
        return _row_conv1d_backward(ctx, grad, grad_state)

    @_jvp_rule
    def jvp(ctx, saved, tx, tw, tb, *rest):
        x, _, prefix = saved
        tprefix = rest[_CONV_ARGS] if prefix is not None else None
        if tx is None and tprefix is None:
            t_state = x.new_zeros((*x.shape[:3], ctx.conv[1]))
        else:
            t_state = _final_state(_zeros_like_view(x) if tx is None else tx,
                                   None if prefix is None else (torch.zeros_like(prefix) if tprefix is None else tprefix),
                                   ctx.conv[1])
        return _row_conv1d_tangent(ctx, saved, tx, tw, tb, rest), t_state


def _grad_op_function(name, op, transposed_op, cotangent_is_input):
    """The autograd.Function of grad_input (other = weight) or grad_weight
    (other = x, with x's optional prefix as the last argument):
    op(grad_out, other, size, *conv), bilinear in (grad_out, other). Its
    cotangent flows back to grad_out through row_conv1d, with the cotangent as
    that conv's input (grad_input) or weight (grad_weight), and to other
    through the transposed op (grad_weight, grad_input), whose size argument
    is other.shape[3] (the kernel size of a weight, the width of x); for
    grad_weight with a prefix, grad_input of the virtual input prefix ++ x."""
    takes_prefix = not cotangent_is_input

    class GradOpFunction(torch.autograd.Function):
        forward = _forward_below_autograd(op)

        @staticmethod
        def setup_context(ctx, inputs, output):
            grad_out, other, size, *rest = inputs[:-1]  # the last input: the dispatch keyset
            ctx.conv, prefix = _conv_and_prefix(rest)
            ctx.n_inputs = len(inputs)
            ctx.size = size
            ctx.other_size = other.shape[3]
            ctx.save_for_backward(grad_out, other, prefix)
            ctx.save_for_forward(grad_out, other, prefix)

        @staticmethod
        def backward(ctx, cotangent):
            grad_out, other, prefix = ctx.saved_tensors
            d_gout = d_other = d_prefix = None
            needs = ctx.needs_input_grad
            if needs[0]:
                x, w = (cotangent, other.conj()) if cotangent_is_input else (other.conj(), cotangent)
                d_gout = _ops.row_conv1d.default(x, w, None, *ctx.conv, _conj(prefix))
            if needs[1] or (prefix is not None and needs[_PREFIX_AT]):
                if takes_prefix:
                    d_prefix, d_other = _grad_of_prefixed_input(grad_out.conj(), cotangent, ctx.other_size,
                                                                ctx.conv, prefix)
                else:
                    d_other = transposed_op(grad_out.conj(), cotangent, ctx.other_size, *ctx.conv)
            return _grads(ctx.n_inputs, {0: d_gout, 1: d_other, _PREFIX_AT: d_prefix})

        @_jvp_rule
        def jvp(ctx, saved, t_gout, t_other, *rest):
            grad_out, other, prefix = saved
            t_prefix = rest[1 + _CONV_ARGS] if prefix is not None else None
            prefix_arg, t_prefix_arg = ((prefix,), (t_prefix,)) if takes_prefix else ((), ())
            return _sum_terms(
                None if t_gout is None else op(t_gout, other, ctx.size, *ctx.conv, *prefix_arg),
                None if t_other is None and t_prefix is None else op(
                    grad_out, _zeros_like_view(other) if t_other is None else t_other, ctx.size, *ctx.conv,
                    *t_prefix_arg))

    GradOpFunction.__name__ = GradOpFunction.__qualname__ = name
    return GradOpFunction


_GradInputFunction = _grad_op_function("RowConv1dGradInputFunction", _ops.row_conv1d_grad_input.default,
                                       _ops.row_conv1d_grad_weight.default, cotangent_is_input=True)
_GradWeightFunction = _grad_op_function("RowConv1dGradWeightFunction", _ops.row_conv1d_grad_weight.default,
                                        _ops.row_conv1d_grad_input.default, cotangent_is_input=False)


class RowConv1dGradBiasFunction(torch.autograd.Function):
    forward = _forward_below_autograd(_ops.row_conv1d_grad_bias.default)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.gout_shape = inputs[0].shape

    @staticmethod
    def backward(ctx, ggb):
        return _bias_broadcast(ggb, ctx.gout_shape), None

    @_jvp_rule
    def jvp(ctx, saved, t_gout, _):
        return _ops.row_conv1d_grad_bias.default(t_gout)


def _forward_ad_active():
    """Whether a dual level is entered (torch.autograd.forward_ad) or a
    functorch transform (jvp, jacfwd, ...) is running, with forward grads on
    (autograd.Function turns them off in forward). Functorch covers the dual
    levels that torch.compile's replay of a jvp enters without the Python API."""
    return _C._is_fwd_grad_enabled() and (forward_ad._current_level >= 0 or
                                          _C._are_functorch_transforms_active())


_autograd_lib = torch.library.Library("rowconv", "IMPL")


def _register_autograd(opname, function):
    op = getattr(_ops, opname).default
    # Function.apply under a functorch transform reroutes to functorch's
    # custom_function_call, which expects to run before the dispatcher; here
    # we already are in the dispatcher, at the Autograd key of the current
    # transform level, like any built-in op: the plain C++ apply records the
    # node (and runs jvp) at this level, and functorch unwraps below it.
    apply = super(torch.autograd.function._SingleLevelFunction, function).apply

    def autograd_kernel(keyset, *args):
        if (_C.is_grad_enabled() and _C._any_requires_grad(*args)) or _forward_ad_active():
            with enable_single_level_autograd_function():
                return apply(*args, keyset)
        # Nothing to differentiate: straight below Autograd, as PyTorch's own
        # generated autograd kernels do.
        with _C._AutoDispatchBelowAutograd():
            return op.redispatch(keyset & _C._after_autograd_keyset, *args)

    _autograd_lib.impl(opname, autograd_kernel, "Autograd", with_keyset=True)


_register_autograd("row_conv1d", RowConv1dFunction)
_register_autograd("row_conv1d_grad_input", _GradInputFunction)
_register_autograd("row_conv1d_grad_weight", _GradWeightFunction)
_register_autograd("row_conv1d_grad_bias", RowConv1dGradBiasFunction)
_register_autograd("row_conv1d_with_final_state", RowConv1dWithFinalStateFunction)


def _with_final_state_composite(x, weight, bias, *rest):
    """row_conv1d_with_final_state on every backend but the CPU (whose C++
    kernel writes the state as it reads x) and under fake tensors: the
    row_conv1d op, then the state copied out of prefix ++ x."""
    conv, prefix = _conv_and_prefix(rest)
    stride, pad_left, pad_right, dilation = conv[:4]
    # (a weight that is not 4-D: row_conv1d's own checks name it, before any kernel)
    K = weight.shape[3] if weight.dim() == 4 else (pad_left // max(dilation, 1) + 1)
    if stride != 1 or pad_right != 0 or pad_left != dilation * (K - 1):
        raise ValueError(
            "row_conv1d_with_final_state: a causal convolution (stride 1, pad_left = dilation * (K - 1), "
            f"pad_right 0) is expected, got stride={stride}, pad_left={pad_left}, pad_right={pad_right}, "
            f"dilation={dilation}, K={K}")
    y = _ops.row_conv1d.default(x, weight, bias, *conv, prefix)
    return y, _final_state(x, prefix, pad_left)


_autograd_lib.impl("row_conv1d_with_final_state", _with_final_state_composite, "CompositeExplicitAutograd")
# Under autocast the same two steps run above autograd: row_conv1d's autocast
# kernel casts its inputs (y in the autocast dtype, its node records the
# casts), while the state keeps x's dtype, as the next chunk's initial_state
# must (two autograd nodes there, as before the fused op).
for _autocast_key in ("AutocastCPU", "AutocastCUDA"):
    _autograd_lib.impl("row_conv1d_with_final_state", _with_final_state_composite, _autocast_key)


# vmap batching rules. A vmapped dimension of size N folds into the batch B
# when only the batch-like operand (x, grad_out) carries it, else into the rows
# H (rows never mix, so N stacked problems are one problem with N * H rows).
def _to_front(t, bdim, n):
    """The operand with its vmapped dimension first; an operand that is not
    vmapped is expanded (no copy) to n copies."""
    if t is None:
        return None
    return t.expand(n, *t.shape) if bdim is None else t.movedim(bdim, 0)


def _fold_into_batch(t, bdim, n):
    """(N, B, ...) -> (N * B, ...); an operand that is not vmapped (x's
    prefix when only x is, or the other way round) is expanded, then copied."""
    if t is None:
        return None
    return _to_front(t, bdim, n).flatten(0, 1)


def _fold_into_rows(t, bdim, n, row_dim):
    """(N, ...) -> the same tensor with N * H rows at row_dim (N outer)."""
    if t is None:
        return None
    return _to_front(t, bdim, n).movedim(0, row_dim).flatten(row_dim, row_dim + 1)


def _vmap_conv_rule(op):
    """The batching rule of row_conv1d and row_conv1d_with_final_state: their
    outputs (y, and the final state, laid out like x) unfold alike."""
    def rule(info, in_dims, x, weight, bias, *conv):
        x_dim, w_dim, b_dim = in_dims[:3]
        conv, prefix = _conv_and_prefix(conv)
        p_dim = in_dims[_PREFIX_AT] if prefix is not None else None
        n = info.batch_size
        if w_dim is None and b_dim is None:  # only x and its prefix: fold into the batch
            out = op(_fold_into_batch(x, x_dim, n), weight, bias, *conv, _fold_into_batch(prefix, p_dim, n))
            dim = 0
        else:
            out = op(_fold_into_rows(x, x_dim, n, 2), _fold_into_rows(weight, w_dim, n, 0),
                     _fold_into_rows(bias, b_dim, n, 0), *conv, _fold_into_rows(prefix, p_dim, n, 2))
            dim = 2

        def unfold(t):
            return t.unflatten(dim, (n, t.shape[dim] // n))
        if isinstance(out, torch.Tensor):
            return unfold(out), dim
        return tuple(unfold(t) for t in out), (dim,) * len(out)
    return rule


def _vmap_grad_input(info, in_dims, grad_out, weight, width, *conv):
    g_dim, w_dim = in_dims[:2]
    n = info.batch_size
    if w_dim is None:
        gx = _ops.row_conv1d_grad_input.default(_fold_into_batch(grad_out, g_dim, n), weight, width, *conv)
        return gx.unflatten(0, (n, gx.shape[0] // n)), 0
    gx = _ops.row_conv1d_grad_input.default(_fold_into_rows(grad_out, g_dim, n, 2),
                                            _fold_into_rows(weight, w_dim, n, 0), width, *conv)
    return gx.unflatten(2, (n, gx.shape[2] // n)), 2


def _vmap_grad_weight(info, in_dims, grad_out, x, kernel_size, *conv):
    g_dim, x_dim = in_dims[:2]
    conv, prefix = _conv_and_prefix(conv)
    p_dim = in_dims[_PREFIX_AT] if prefix is not None else None
    n = info.batch_size
    gw = _ops.row_conv1d_grad_weight.default(_fold_into_rows(grad_out, g_dim, n, 2),
                                             _fold_into_rows(x, x_dim, n, 2), kernel_size, *conv,
                                             _fold_into_rows(prefix, p_dim, n, 2))
    return gw.unflatten(0, (n, gw.shape[0] // n)), 0


def _vmap_grad_bias(info, in_dims, grad_out):
    gb = _ops.row_conv1d_grad_bias.default(_fold_into_rows(grad_out, in_dims[0], info.batch_size, 2))
    return gb.unflatten(0, (info.batch_size, gb.shape[0] // info.batch_size)), 0


torch.library.register_vmap("rowconv::row_conv1d", _vmap_conv_rule(_ops.row_conv1d.default))
torch.library.register_vmap("rowconv::row_conv1d_with_final_state",
                            _vmap_conv_rule(_ops.row_conv1d_with_final_state.default))
torch.library.register_vmap("rowconv::row_conv1d_grad_input", _vmap_grad_input)
torch.library.register_vmap("rowconv::row_conv1d_grad_weight", _vmap_grad_weight)
torch.library.register_vmap("rowconv::row_conv1d_grad_bias", _vmap_grad_bias)
