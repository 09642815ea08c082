"""The ground truth: the contract's definition of a row convolution, built
from stock PyTorch ops only (transpose, grouped F.conv1d, transpose)."""
import torch.nn.functional as F


def reference_row_conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Same signature and result as rowconv_ext.row_conv1d, computed by
    PyTorch's grouped conv1d with H * groups groups. Asymmetric paddings
    ('same' with an even dilated kernel, pairs, 'causal') go through F.pad
    first, as the contract says."""
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
    y2 = F.conv1d(x2, w2, b2, stride, padding, dilation, groups=H * groups)
    return y2.reshape(B, H, cout, y2.shape[-1]).transpose(1, 2)
