"""The ground truth: the contract's definition of a row convolution, built
from stock PyTorch ops only (transpose, grouped F.conv1d, transpose)."""
import torch.nn.functional as F


def reference_row_conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Same signature and result as rowconv_ext.row_conv1d, computed by
    PyTorch's grouped conv1d with H * groups groups. String paddings other than
    'causal' are handed to F.conv1d itself; int pairs and 'causal' pad with
    F.pad first."""
    B, cin, H, W = x.shape
    _, cout, cin_g, K = weight.shape
    if isinstance(stride, (tuple, list)):
        (stride,) = stride
    if isinstance(dilation, (tuple, list)):
        (dilation,) = dilation
    x2 = x.transpose(1, 2).reshape(B, H * cin, W)
    if padding == "causal":
        x2 = F.pad(x2, (dilation * (K - 1), 0))
        padding = 0
    elif isinstance(padding, (tuple, list)) and len(padding) == 2:
        x2 = F.pad(x2, tuple(padding))
        padding = 0
    w2 = weight.reshape(H * cout, cin_g, K)
    b2 = None if bias is None else bias.reshape(H * cout)
    y2 = F.conv1d(x2, w2, b2, stride, padding, dilation, groups=H * groups)
    return y2.reshape(B, H, cout, y2.shape[-1]).transpose(1, 2)
