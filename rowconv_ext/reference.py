"""The ground truth: the contract's definition of a row convolution, built
from stock PyTorch ops only (transpose, grouped F.conv1d, transpose)."""
import torch
import torch.nn.functional as F


def reference_row_conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Same signature and result as rowconv_ext.row_conv1d, computed by
    PyTorch's grouped conv1d with H * groups groups. Asymmetric paddings
    ('same' with an even dilated kernel, pairs, 'causal') go through F.pad
    first, as the contract says.

    Zero input or output channels: F.conv1d gets those wrong (torch 2.13:
    in_channels = 0 returns (B, 0, Wout) without the bias; out_channels = 0
    raises), so each group is given one more input channel of zeros, and one
    more output channel (zero weights) that is dropped afterwards. An empty
    sum is zero, so the result is exact: the bias broadcast (or zeros), and
    x, weight and bias stay in the autograd graph with the right gradients."""
    B, cin, H, W = x.shape
    _, cout, cin_g, K = weight.shape
    if isinstance(stride, (tuple, list)):
        (stride,) = stride
    if isinstance(dilation, (tuple, list)):
        (dilation,) = dilation
    x2 = x.transpose(1, 2).reshape(B, H * cin, W)
    total = dilation * (K - 1)
    if padding == "causal":
        padding = (total, 0)
    elif padding == "same" and stride == 1:  # the odd element goes right, as in F.conv1d
        padding = (total // 2, total - total // 2)
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        x2 = F.pad(x2, tuple(padding))
        padding = 0
    w2 = weight.reshape(H * cout, cin_g, K)
    b2 = None if bias is None else bias.reshape(H * cout)
    n_groups = H * groups
    if cin_g == 0:  # x2: (B, 0, W) -> one zero channel per group; w2: (H*cout, 0, K) -> (H*cout, 1, K)
        x2 = torch.cat([x2, x2.new_zeros(B, n_groups, x2.shape[-1])], dim=1)
        w2 = torch.cat([w2, w2.new_zeros(H * cout, 1, K)], dim=1)
    extra = n_groups if cout == 0 else 0
    if extra:  # w2: (0, Cin_g', K) -> one output channel of zero weights per group, dropped below
        w2 = torch.cat([w2, w2.new_zeros(extra, w2.shape[1], K)], dim=0)
        if b2 is not None:
            b2 = torch.cat([b2, b2.new_zeros(extra)])
    y2 = F.conv1d(x2, w2, b2, stride, padding, dilation, groups=n_groups)
    if extra:
        y2 = y2[:, :0]
    return y2.reshape(B, H, cout, y2.shape[-1]).transpose(1, 2)
