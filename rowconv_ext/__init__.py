"""rowconv_ext: an independent 1-D convolution per row of a (B, C, H, W) tensor.

row_conv1d            the operator (torch.ops.rowconv.row_conv1d and its backward ops)
row_conv1d_update     one decoding step of a causal row convolution, its state updated in place
choose_method         what row_conv1d(..., method='auto') runs: 'direct' or 'fft'
RowConv1d             the module: one nn.Conv1d per row, with conversions from and to nn.Conv1d
convolve_rows         row i of A convolved with row i of B, as scipy.signal.convolve
reference_row_conv1d  the same as row_conv1d from stock PyTorch ops: the ground truth
"""
import torch  # noqa: F401  (first: _C links against torch's libraries)

from . import _C  # noqa: F401  (loads the library: registers torch.ops.rowconv.*)
from . import _registrations  # noqa: F401  (fake kernels and autograd for those ops)
from .convolve import convolve_rows
from .functional import row_conv1d, row_conv1d_update
from .method import choose_method
from .modules import RowConv1d
from .reference import reference_row_conv1d

__all__ = ["row_conv1d", "row_conv1d_update", "choose_method", "RowConv1d", "convolve_rows", "reference_row_conv1d"]
