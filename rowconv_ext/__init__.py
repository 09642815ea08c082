"""rowconv_ext: an independent 1-D convolution per row of a (B, C, H, W) tensor.

See the README for usage; the public contract is row_conv1d and
reference_row_conv1d (more arrives with the module layer).
"""
from . import _C  # noqa: F401  (loads the library: registers torch.ops.rowconv.*)
from . import _registrations  # noqa: F401  (fake kernels and autograd for those ops)
from .functional import row_conv1d
from .reference import reference_row_conv1d

__all__ = ["row_conv1d", "reference_row_conv1d"]
