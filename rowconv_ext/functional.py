"""row_conv1d: the public function. Resolves the padding forms of the contract
into (left, right) and the method into the ops' fft_block argument
(method.py), and calls the registered operator, whose C++ checks name the
argument, the expected and the actual value of anything that is wrong."""
import operator

import torch
from torch._C import _has_torch_function
from torch.compiler import is_compiling as _is_compiling

from ._C import _forward_fast, _update_fast
from .method import fft_block_arg

PADDING_STRINGS = ("valid", "same", "causal")


def int_arg(name, value, owner="row_conv1d"):
    """An int, or a one-element sequence of one (as F.conv1d accepts)."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool):
        raise ValueError(f"{owner}: {name} must be an int, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{owner}: {name} must be an int, got {type(value).__name__} {value!r}") from None


def resolve_padding(padding, kernel_size, stride, dilation, owner="row_conv1d"):
    """(left, right) padding for any padding form of the contract: an int,
    a pair (left, right), or 'valid', 'same', 'causal'."""
    if isinstance(padding, str):
        total = dilation * (kernel_size - 1)
        if padding == "valid":
            return 0, 0
        if padding == "same":
            if stride > 1:  # a non-positive stride is the stride check's to report
                raise ValueError(f"{owner}: padding='same' needs stride=1 (as F.conv1d), got stride={stride}")
            # The odd element goes to the right, as in PyTorch.
            return total // 2, total - total // 2
        if padding == "causal":
            return total, 0
        raise ValueError(
            f"{owner}: padding must be an int, a pair (left, right) or one of {PADDING_STRINGS}, got {padding!r}")
    if isinstance(padding, (tuple, list)):
        if len(padding) == 1:
            left = right = int_arg("padding", padding[0], owner)
        elif len(padding) == 2:
            left, right = (int_arg("padding", p, owner) for p in padding)
        else:
            raise ValueError(
                f"{owner}: padding as a sequence must be (left, right), got {len(padding)} values: "
                f"{tuple(padding)!r}")
    else:
        left = right = int_arg("padding", padding, owner)
    if left < 0 or right < 0:
        raise ValueError(f"{owner}: padding must be non-negative, got (left={left}, right={right})")
    return left, right


def check_tensor(name, value, owner="row_conv1d"):
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{owner}: {name} must be a torch.Tensor, got {type(value).__name__}")


def check_streaming_args(x, kernel_size, stride, pads, dilation, initial_state, owner="row_conv1d"):
    """The checks of initial_state / return_final_state, before any kernel
    runs: causal padding, stride 1, and a state of x's dtype and device shaped
    (B, Cin, H, dilation * (K - 1))."""
    if stride != 1:
        raise ValueError(f"{owner}: initial_state and return_final_state need stride=1, got stride={stride}")
    causal = (dilation * (kernel_size - 1), 0)
    if tuple(pads) != causal:
        raise ValueError(f"{owner}: initial_state and return_final_state need padding='causal' (left = dilation * "
                         f"(K - 1) = {causal[0]}, right = 0), got padding (left={pads[0]}, right={pads[1]})")
    if initial_state is None:
        return
    check_tensor("initial_state", initial_state, owner)
    if x.dim() != 4:
        return  # the op reports x's rank
    expected = (x.shape[0], x.shape[1], x.shape[2], causal[0])
    if tuple(initial_state.shape) != expected:
        raise ValueError(f"{owner}: initial_state must have shape (B, Cin, H, dilation * (K - 1)) = "
                         f"{list(expected)}, got {list(initial_state.shape)}")
    if initial_state.dtype != x.dtype:
        raise RuntimeError(f"{owner}: initial_state must have the same dtype as x ({x.dtype}), "
                           f"got {initial_state.dtype}")
    if initial_state.device != x.device:
        raise RuntimeError(f"{owner}: initial_state must be on the same device as x ({x.device}), "
                           f"got {initial_state.device}")


def row_conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, method="auto",
               initial_state=None, return_final_state=False):
    """An independent conv1d per row h of x:
        out[:, :, h, :] = F.conv1d(x[:, :, h, :], weight[h], bias[h], stride, padding, dilation, groups)

    x: (B, Cin, H, W); weight: (H, Cout, Cin // groups, K); bias: (H, Cout) or None.
    padding: int, (left, right), 'valid', 'same' (stride 1) or 'causal'.
    method: 'direct' (multiply-adds per tap), 'fft' (an FFT convolution: its
    error is relative to the norms, not per element) or 'auto' (the faster by a
    cost model: what choose_method returns).
    initial_state: (B, Cin, H, dilation * (K - 1)), the inputs before x, for
    padding='causal' and stride 1 only (None: zeros, the plain causal result).
    return_final_state: also return the last dilation * (K - 1) inputs of
    initial_state ++ x, the next chunk's initial_state: a sequence run chunk by
    chunk gives the outputs of one pass.
    Returns a contiguous (B, Cout, H, Wout) tensor, or (y, final_state).
    """
    check_tensor("x", x)
    check_tensor("weight", weight)
    if bias is not None:
        check_tensor("bias", bias)
    stride = int_arg("stride", stride)
    dilation = int_arg("dilation", dilation)
    groups = int_arg("groups", groups)
    kernel_size = weight.shape[-1] if weight.dim() > 0 else 0
    pad_left, pad_right = resolve_padding(padding, kernel_size, stride, dilation)
    if initial_state is not None or return_final_state:
        check_streaming_args(x, kernel_size, stride, (pad_left, pad_right), dilation, initial_state)
    args = (x, weight, bias, stride, pad_left, pad_right, dilation, groups, fft_block_arg(method), initial_state)
    # Eager calls (inference, or plain reverse mode) take the op's direct entry
    # (python_fast_calls.cpp: the same kernels, without torch.ops' boxing and
    # the Python Autograd kernel); it returns None where it declines.
    if not _is_compiling() and not _has_torch_function((x, weight, bias, initial_state)):
        out = _forward_fast(return_final_state, *args)
        if out is not None:
            return out
    if return_final_state:
        return tuple(torch.ops.rowconv.row_conv1d_with_final_state(*args))
    return torch.ops.rowconv.row_conv1d(*args)


_update_op = torch.ops.rowconv.row_conv1d_update.default


def row_conv1d_update(x, conv_state, weight, bias=None, dilation=1, groups=1, *, cache_seqlens=None,
                      state_indices=None):
    """One decoding step of a causal row convolution: the outputs at the T
    newest inputs x (B, Cin, H, T) given the inputs held in conv_state, which
    is updated in place. Returns (B, Cout, H, T).

    conv_state (B, Cin, H, S), S >= dilation * (K - 1): the last S inputs,
    oldest first, shifted by T; with cache_seqlens ((B,) integers) a circular
    buffer whose next input for entry b goes to position cache_seqlens[b] % S
    (the caller advances cache_seqlens). With state_indices ((B,) integers),
    entry b uses row state_indices[b] of a larger pool conv_state; a negative
    index skips it (zero outputs, state untouched).
    An inference op: operands that require grad under grad mode are refused.
    """
    # Thin on purpose: a decode step's time is mostly call overhead, and the
    # op's C++ checks name the argument, the expected and the actual value.
    # Eager calls take the op's direct entry (python_fast_calls.cpp: the same
    # dispatch without torch.ops' boxing); torch.compile and __torch_function__
    # overrides see the op itself.
    if not _is_compiling() and not _has_torch_function((x, conv_state, weight, bias, cache_seqlens, state_indices)):
        y = _update_fast(x, conv_state, weight, bias, dilation, groups, cache_seqlens, state_indices)
        if y is not None:
            return y
    return _update_op(x, conv_state, weight, bias, dilation, groups, cache_seqlens, state_indices)
