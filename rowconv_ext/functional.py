"""row_conv1d: the public function. Resolves the padding forms of the contract
into (left, right) and the method into the ops' fft_block argument
(method.py), and calls the registered operator, whose C++ checks name the
argument, the expected and the actual value of anything that is wrong."""
import operator

import torch

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


def row_conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, method="auto"):
    """An independent conv1d per row h of x:
        out[:, :, h, :] = F.conv1d(x[:, :, h, :], weight[h], bias[h], stride, padding, dilation, groups)

    x: (B, Cin, H, W); weight: (H, Cout, Cin // groups, K); bias: (H, Cout) or None.
    padding: int, (left, right), 'valid', 'same' (stride 1) or 'causal'.
    method: 'direct' (multiply-adds per tap), 'fft' (an FFT convolution: its
    error is relative to the norms, not per element) or 'auto' (the faster by a
    cost model: what choose_method returns).
    Returns a contiguous (B, Cout, H, Wout) tensor.
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
    return torch.ops.rowconv.row_conv1d(x, weight, bias, stride, pad_left, pad_right, dilation, groups,
                                        fft_block_arg(method))


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
    return _update_op(x, conv_state, weight, bias, dilation, groups, cache_seqlens, state_indices)
