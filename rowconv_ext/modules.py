"""RowConv1d: one nn.Conv1d per row of a (B, C, H, W) tensor, as one module."""
import types
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .functional import int_arg, resolve_padding, row_conv1d, row_conv1d_update
from .method import FFT_BLOCK, METHODS

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_PAD_MODULES = {"zeros": nn.ConstantPad1d, "reflect": nn.ReflectionPad1d,
                "replicate": nn.ReplicationPad1d, "circular": nn.CircularPad1d}
# nn.Conv1d settings that every layer folded into one RowConv1d must share.
_SHARED_SETTINGS = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
                    "groups", "padding_mode")


def _int_at_least(cls_name, name, value, lowest):
    """An int of at least `lowest` (1: positive; 0: non-negative, as channel counts)."""
    value = int_arg(name, value, cls_name)
    if value < lowest:
        kind = "a positive" if lowest == 1 else "a non-negative"
        raise ValueError(f"{cls_name}: {name} must be {kind} integer, got {value}")
    return value


class RowConv1d(nn.Module):
    """An independent nn.Conv1d for each of `rows` rows:
        out[:, :, h, :] = Conv1d_h(x[:, :, h, :])   for x of shape (B, in_channels, rows, W).

    Arguments as nn.Conv1d, plus `rows` first and padding='causal'
    (dilation * (kernel_size - 1) on the left only). Parameters:
    weight (rows, out_channels, in_channels // groups, kernel_size) and
    bias (rows, out_channels), each row initialised as nn.Conv1d initialises
    its own (same seed, same numbers as `rows` Conv1d built one after another).

    Input (B, in_channels, rows, W) -> (B, out_channels, rows, Wout), or
    unbatched (in_channels, rows, W) -> (out_channels, rows, Wout), as
    nn.Conv1d takes (C, L). Zero in_channels or out_channels are allowed, as
    nn.Conv1d allows them; with in_channels = 0 the output is the bias
    broadcast (zeros without bias).

    Causal modules (padding='causal', padding_mode='zeros', stride 1) carry
    state across chunks: forward(x, initial_state, return_final_state) as
    row_conv1d's arguments of those names (unbatched: a state without the
    batch dimension).
    Causal modules also decode step by step: state = init_state(B), then
    step(x_new, state) per block of new inputs (row_conv1d_update).
    """

    # The ops' fft_block argument of each method (method.FFT_BLOCK), as the
    # attributes that the TorchScript forward reads (it reads no globals)
    _fft_block_auto, _fft_block_direct, _fft_block_fft = FFT_BLOCK["auto"], FFT_BLOCK["direct"], FFT_BLOCK["fft"]
    __constants__ = ["_fft_block_auto", "_fft_block_direct", "_fft_block_fft"]

    def __init__(self, rows, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None, method="auto"):
        super().__init__()
        name = type(self).__name__
        self.rows = _int_at_least(name, "rows", rows, 1)
        self.in_channels = _int_at_least(name, "in_channels", in_channels, 0)
        self.out_channels = _int_at_least(name, "out_channels", out_channels, 0)
        self.kernel_size = (_int_at_least(name, "kernel_size", kernel_size, 1),)
        self.stride = (_int_at_least(name, "stride", stride, 1),)
        self.dilation = (_int_at_least(name, "dilation", dilation, 1),)
        self.groups = _int_at_least(name, "groups", groups, 1)
        for what, channels in (("in_channels", self.in_channels), ("out_channels", self.out_channels)):
            if channels % self.groups:
                raise ValueError(f"{name}: {what} ({channels}) must be divisible by groups ({self.groups})")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        if method not in METHODS:
            raise ValueError(f"{name}: method must be one of {METHODS}, got {method!r}")
        self.method = method
        # Resolved once: (left, right) zero or mode padding.
        self._pads = resolve_padding(padding, self.kernel_size[0], self.stride[0], self.dilation[0], name)
        self.padding = padding if isinstance(padding, str) else tuple(
            padding if isinstance(padding, (tuple, list)) else (padding,))
        factory = dict(device=device, dtype=dtype)
        self.weight = nn.Parameter(torch.empty(
            (self.rows, self.out_channels, self.in_channels // self.groups, self.kernel_size[0]), **factory))
        if bias:
            # zeros, not empty: with in_channels = 0 some torch versions' Conv1d
            # init leaves the bias as it is (its bound would be 1 / sqrt(0))
            self.bias = nn.Parameter(torch.zeros((self.rows, self.out_channels), **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        # Row by row, by nn.Conv1d's own reset_parameters on that row's
        # weight and bias, so that the values and the random numbers drawn
        # match `rows` Conv1d layers built one after another, whatever the
        # torch version does (with in_channels = 0 torch 2.11 leaves the bias
        # alone, 2.13 draws it from U(-0, 0)).
        for h in range(self.rows):
            row = types.SimpleNamespace(weight=self.weight[h], bias=None if self.bias is None else self.bias[h])
            nn.Conv1d.reset_parameters(row)

    def _is_causal(self) -> bool:
        """Left padding dilation * (K - 1) of zeros, stride 1: what carried state needs."""
        causal = (self.dilation[0] * (self.kernel_size[0] - 1), 0)
        return self._pads == causal and self.padding_mode == "zeros" and self.stride[0] == 1

    def _check_streaming(self):
        """initial_state / return_final_state mean something for causal modules only."""
        if not self._is_causal():
            raise ValueError(
                f"{type(self).__name__}: initial_state and return_final_state need a causal module "
                f"(padding='causal', padding_mode='zeros', stride=1), got padding={self.padding!r}, "
                f"padding_mode={self.padding_mode!r}, stride={self.stride[0]}")

    def forward(self, x: torch.Tensor, initial_state: Optional[torch.Tensor] = None,
                return_final_state: bool = False):
        if torch.jit.is_scripting():
            return self._forward_scripted(x, initial_state, return_final_state)
        return self._forward_eager(x, initial_state, return_final_state)

    def _forward_scripted(self, x: torch.Tensor, initial_state: Optional[torch.Tensor],
                          return_final_state: bool) -> torch.Tensor:
        """forward under torch.jit.script: the ops straight (what TorchScript
        compiles, and a saved module calls); their C++ checks name what is
        wrong. A Tensor, so that scripted models compose it as any layer: the
        final state (a pair) is eager mode's and torch.compile's."""
        if return_final_state:
            raise ValueError("RowConv1d: return_final_state=True is not supported under torch.jit.script (the "
                             "scripted forward returns one tensor); run the module eagerly or under torch.compile")
        if x.dim() != 3 and x.dim() != 4:
            raise ValueError("RowConv1d: input x must be a 3-D (in_channels, rows, W) unbatched or 4-D "
                             "(B, in_channels, rows, W) batched tensor, got a {}-D tensor".format(x.dim()))
        if initial_state is not None and not self._is_causal():
            raise ValueError("RowConv1d: initial_state needs a causal module (padding='causal', "
                             "padding_mode='zeros', stride=1)")
        left, right = self._pads
        unbatched = x.dim() == 3
        if unbatched:
            x = x.unsqueeze(0)
            if initial_state is not None:
                initial_state = initial_state.unsqueeze(0)
        if self.padding_mode != "zeros":
            x = pad_rows(x, (left, right), self.padding_mode)
            left, right = 0, 0
        fft_block = self._fft_block_auto
        if self.method == "direct":
            fft_block = self._fft_block_direct
        elif self.method == "fft":
            fft_block = self._fft_block_fft
        y = torch.ops.rowconv.row_conv1d(x, self.weight, self.bias, self.stride[0], left, right, self.dilation[0],
                                         self.groups, fft_block, initial_state)
        return y.squeeze(0) if unbatched else y

    @torch.jit.unused
    def _forward_eager(self, x: torch.Tensor, initial_state: Optional[torch.Tensor], return_final_state: bool):
        if initial_state is not None or return_final_state:
            self._check_streaming()
        if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4):
            got = (f"a {x.dim()}-D tensor of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor)
                   else type(x).__name__)
            raise ValueError(f"{type(self).__name__}: input x must be a 3-D (in_channels, rows, W) unbatched or "
                             f"4-D (B, in_channels, rows, W) batched tensor, got {got}")
        unbatched = x.dim() == 3
        if unbatched:  # as nn.Conv1d with (C, L): a batch of one, removed again
            x = x.unsqueeze(0)
            if isinstance(initial_state, torch.Tensor):
                initial_state = initial_state.unsqueeze(0)
        if self.padding_mode == "zeros":
            y = row_conv1d(x, self.weight, self.bias, self.stride[0], self._pads, self.dilation[0], self.groups,
                           method=self.method, initial_state=initial_state, return_final_state=return_final_state)
            if return_final_state:
                return tuple(t.squeeze(0) for t in y) if unbatched else y
        else:
            y = row_conv1d(pad_rows(x, self._pads, self.padding_mode), self.weight, self.bias, self.stride[0],
                           0, self.dilation[0], self.groups, method=self.method)
        return y.squeeze(0) if unbatched else y

    def extra_repr(self):
        s = (f"{self.rows}, {self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding not in ((0,), (0, 0), "valid"):
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else f", padding={self.padding}"
        if self.dilation != (1,):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        if self.method != "auto":
            s += f", method={self.method!r}"
        return s

    # Streaming (decoding step by step) for causal modules.
    def _check_streams(self, what):
        """A causal module: stride 1 and only dilation * (K - 1) zeros on the
        left, so that a step sees the held inputs where the forward sees its padding."""
        history = self.dilation[0] * (self.kernel_size[0] - 1)
        if self.stride[0] != 1 or self._pads != (history, 0):
            raise ValueError(
                f"{type(self).__name__}.{what}: streaming needs a causal module (padding='causal', i.e. "
                f"(dilation * (kernel_size - 1), 0) = ({history}, 0), and stride 1), got padding={self.padding!r} "
                f"(resolved {self._pads}) and stride={self.stride[0]}")
        if self.padding_mode != "zeros" and history > 0:
            raise ValueError(
                f"{type(self).__name__}.{what}: streaming needs padding_mode='zeros' (the state starts as the "
                f"zeros the forward pads with), got padding_mode={self.padding_mode!r}")
        return history

    def init_state(self, batch_size=None):
        """A zero conv_state (batch_size, in_channels, rows, dilation * (kernel_size - 1))
        on the module's device and dtype, for step(); batch_size=None: the
        unbatched (in_channels, rows, ...) state for unbatched steps."""
        history = self._check_streams("init_state")
        shape = (self.in_channels, self.rows, history)
        if batch_size is not None:
            shape = (_int_at_least(f"{type(self).__name__}.init_state", "batch_size", batch_size, 0),) + shape
        return torch.zeros(shape, device=self.weight.device, dtype=self.weight.dtype)

    def step(self, x, state):
        """The outputs at the T new inputs x (B, in_channels, rows, T), or
        unbatched (in_channels, rows, T), given the inputs held in `state`
        (from init_state), which is updated in place: row_conv1d_update with
        the module's parameters. Steps over a sequence equal forward() over
        it. An inference step: run it under torch.no_grad() or
        torch.inference_mode() (the parameters require grad)."""
        self._check_streams("step")
        if isinstance(x, torch.Tensor) and x.dim() == 3:  # unbatched, as forward: a batch of one
            if not isinstance(state, torch.Tensor) or state.dim() != 3:
                got = f"shape {tuple(state.shape)}" if isinstance(state, torch.Tensor) else type(state).__name__
                raise ValueError(f"{type(self).__name__}.step: an unbatched x needs the unbatched state "
                                 f"(in_channels, rows, S) of init_state(), got {got}")
            return row_conv1d_update(x.unsqueeze(0), state.unsqueeze(0), self.weight, self.bias, self.dilation[0],
                                     self.groups).squeeze(0)
        return row_conv1d_update(x, state, self.weight, self.bias, self.dilation[0], self.groups)

    # Conversions from and to stock PyTorch layers.
    @classmethod
    def from_conv1d(cls, convs):
        """One RowConv1d from a sequence of `rows` nn.Conv1d with equal
        settings: the result applies convs[h] to x[:, :, h, :]."""
        convs = list(convs)
        if not convs:
            raise ValueError("RowConv1d.from_conv1d: convs must hold at least one nn.Conv1d, got none")
        for i, conv in enumerate(convs):
            if type(conv) is not nn.Conv1d:
                raise ValueError(f"RowConv1d.from_conv1d: convs[{i}] must be an nn.Conv1d, got {type(conv).__name__}")
        first = convs[0]
        for i, conv in enumerate(convs[1:], start=1):
            for attr in _SHARED_SETTINGS:
                if getattr(conv, attr) != getattr(first, attr):
                    raise ValueError(
                        f"RowConv1d.from_conv1d: convs[{i}].{attr} = {getattr(conv, attr)!r} differs from "
                        f"convs[0].{attr} = {getattr(first, attr)!r}; all layers must share their settings")
            for what, a, b in (("bias", conv.bias is not None, first.bias is not None),
                               ("weight dtype", conv.weight.dtype, first.weight.dtype),
                               ("weight device", conv.weight.device, first.weight.device)):
                if a != b:
                    raise ValueError(f"RowConv1d.from_conv1d: convs[{i}] {what} = {a} differs from convs[0] "
                                     f"{what} = {b}; all layers must share their settings")
        module = cls._like(first, rows=len(convs), in_channels=first.in_channels, out_channels=first.out_channels,
                           groups=first.groups)
        with torch.no_grad():
            module.weight.copy_(torch.stack([c.weight for c in convs]))
            if module.bias is not None:
                module.bias.copy_(torch.stack([c.bias for c in convs]))
        return module

    @classmethod
    def from_grouped_conv1d(cls, conv, rows):
        """From one nn.Conv1d with groups = rows * g applied to the transposed
        layout x.transpose(1, 2).reshape(B, rows * C, W): the same numbers,
        computed on (B, C, rows, W) directly. Also takes what
        to_grouped_conv1d returns for asymmetric padding: nn.Sequential(pad, conv)."""
        owner = "RowConv1d.from_grouped_conv1d"
        pad = None
        if isinstance(conv, nn.Sequential) and len(conv) == 2 and isinstance(conv[0], tuple(_PAD_MODULES.values())):
            pad, conv = conv
        if type(conv) is not nn.Conv1d:
            raise ValueError(f"{owner}: conv must be an nn.Conv1d (or nn.Sequential(padding layer, nn.Conv1d)), "
                             f"got {type(conv).__name__}")
        rows = _int_at_least(owner, "rows", rows, 1)
        if conv.groups % rows:
            raise ValueError(f"{owner}: conv.groups ({conv.groups}) must be a multiple of rows ({rows})")
        settings = {}
        if pad is not None:
            if conv.padding not in ((0,), "valid"):
                raise ValueError(f"{owner}: a conv after a padding layer must have padding 0, got {conv.padding}")
            mode = next(m for m, c in _PAD_MODULES.items() if isinstance(pad, c))  # ZeroPad1d: a ConstantPad1d
            if mode == "zeros" and pad.value != 0:
                raise ValueError(f"{owner}: a constant padding layer must pad with 0, got {pad.value}")
            settings = dict(padding=tuple(pad.padding), padding_mode=mode)
        module = cls._like(conv, rows=rows, in_channels=conv.in_channels // rows,
                           out_channels=conv.out_channels // rows, groups=conv.groups // rows, **settings)
        with torch.no_grad():
            module.weight.copy_(conv.weight.reshape(module.weight.shape))
            if module.bias is not None:
                module.bias.copy_(conv.bias.reshape(module.bias.shape))
        return module

    def to_grouped_conv1d(self):
        """The inverse of from_grouped_conv1d, for places without this
        package (ONNX, TorchScript, other runtimes): a module computing the
        same numbers on the transposed layout (B, rows * in_channels, W) ->
        (B, rows * out_channels, Wout). An nn.Conv1d, preceded by a padding
        layer (in an nn.Sequential) where the padding is not symmetric."""
        left, right = self._pads
        if self.padding in ("same", "valid"):
            padding = self.padding  # nn.Conv1d resolves these as we do
        elif left == right:
            padding = left
        else:
            padding = None
        conv = nn.Conv1d(self.rows * self.in_channels, self.rows * self.out_channels, self.kernel_size,
                         self.stride, 0 if padding is None else padding, self.dilation, self.rows * self.groups,
                         self.bias is not None, "zeros" if padding is None else self.padding_mode,
                         device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            conv.weight.copy_(self.weight.reshape(conv.weight.shape))
            if conv.bias is not None:
                conv.bias.copy_(self.bias.reshape(-1))
        if padding is not None:
            return conv
        pad_cls = _PAD_MODULES[self.padding_mode]
        pad = pad_cls((left, right), 0.0) if self.padding_mode == "zeros" else pad_cls((left, right))
        return nn.Sequential(pad, conv)

    @classmethod
    def _like(cls, conv, **settings):
        """A RowConv1d with the settings of nn.Conv1d `conv`, updated by `settings`."""
        padding = conv.padding if isinstance(conv.padding, str) else conv.padding[0]
        kw = dict(kernel_size=conv.kernel_size[0], stride=conv.stride[0], padding=padding,
                  dilation=conv.dilation[0], bias=conv.bias is not None, padding_mode=conv.padding_mode,
                  device=conv.weight.device, dtype=conv.weight.dtype)
        return cls(**(kw | settings))


def pad_rows(x: torch.Tensor, pads: Tuple[int, int], mode: str) -> torch.Tensor:
    """F.pad of the last dim of a (B, C, H, W) tensor with a non-zero mode
    (F.pad's reflect/replicate/circular take 2- or 3-D input for 1-D padding).
    (TorchScript compiles it too: RowConv1d's scripted forward.)"""
    B, C, H, W = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
    # F.pad's reflect/replicate refuse a zero channel count (C * H = 0), not a
    # zero batch: an empty x goes through as (B * C * H, 1, W), which still
    # checks the padding against W.
    flat = x.reshape(B * C * H, 1, W) if x.numel() == 0 else x.reshape(B, C * H, W)
    padded = F.pad(flat, [pads[0], pads[1]], mode=mode)
    return padded.reshape(B, C, H, padded.shape[-1])
