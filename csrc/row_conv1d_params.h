// The geometry of one row convolution and the index rules that every backend
// (CPU, CUDA, CUDA emulated on the CPU) shares, so they live in one place.
//
// Notation (also used in every kernel):
//   x      (B, Cin,  H, W)      input, any strides
//   weight (H, Cout, Cin_g, K)  contiguous
//   bias   (H, Cout)            contiguous
//   y      (B, Cout, H, Wout)   contiguous
// Output position t of row h, group g, reads input positions
//   t * stride - pad_left + k * dilation,   k = 0 .. K-1,
// and positions outside [0, W) read as zero (the padding is never materialised),
// except those of an optional prefix (the carried state of a streaming causal
// convolution): then the kernels read the "virtual" row prefix ++ x, whose
// positions [-prefix_width, 0) come from the prefix (see virtual_source).
#pragma once

#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define ROWCONV_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define ROWCONV_HOST_DEVICE inline
#endif

namespace rowconv {

// Floor division and remainder for a positive divisor (C++ '/' truncates).
ROWCONV_HOST_DEVICE int64_t floor_div(int64_t a, int64_t b) {
  const int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}
ROWCONV_HOST_DEVICE int64_t floor_mod(int64_t a, int64_t b) { return a - floor_div(a, b) * b; }
ROWCONV_HOST_DEVICE int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

// Where position `pos` of the virtual row prefix ++ x lies, for x of `width`
// positions and a prefix of `prefix_width` (0: none): x's own positions
// [0, width), the prefix's [-prefix_width, 0) (its element pos + prefix_width),
// and the zero padding everywhere else. Every backend gathers its input by
// this one rule.
enum class RowSource { kInput, kPrefix, kPadding };
ROWCONV_HOST_DEVICE RowSource virtual_source(int64_t pos, int64_t width, int64_t prefix_width) {
  if (pos >= 0) return pos < width ? RowSource::kInput : RowSource::kPadding;
  return pos >= -prefix_width ? RowSource::kPrefix : RowSource::kPadding;
}
ROWCONV_HOST_DEVICE int64_t prefix_position(int64_t pos, int64_t prefix_width) {
  return pos + prefix_width;
}

// Length of the output, as F.conv1d defines it; < 1 when the padded input is
// shorter than the dilated kernel.
ROWCONV_HOST_DEVICE int64_t conv_output_length(int64_t width, int64_t kernel_size, int64_t stride,
                                               int64_t pad_left, int64_t pad_right,
                                               int64_t dilation) {
  const int64_t padded = width + pad_left + pad_right;
  const int64_t span = dilation * (kernel_size - 1) + 1;
  return padded < span ? 0 : (padded - span) / stride + 1;
}

struct RowConvParams {
  int64_t batch, in_channels, out_channels, rows, width, out_width, kernel_size;
  int64_t groups, in_per_group, out_per_group;
  int64_t stride, pad_left, pad_right, dilation;
  // 0: the direct kernels; n > 0: the FFT method, in overlap-save blocks of
  // n points (row_conv1d_fft.h); -1, -2: chosen by the cost model (fft_plan.h).
  int64_t fft_block;
  // Element strides of x and grad_out: kernels read both in place, whatever
  // their layout (permuted, sliced, or expanded with zero strides).
  int64_t in_stride_b, in_stride_c, in_stride_h, in_stride_w;
  int64_t gout_stride_b, gout_stride_c, gout_stride_h, gout_stride_w;
  // The prefix (B, Cin, H, prefix_width) of the forward's and grad-weight's x,
  // any strides; prefix_width 0 and a null pointer without one. Only causal
  // convolutions take one (pad_left == prefix_width, stride 1, pad_right 0):
  // the virtual row is then read without padding.
  int64_t prefix_width;
  int64_t pre_stride_b, pre_stride_c, pre_stride_h, pre_stride_w;
  const void* prefix;
  // CPU: whether this call's operands come from memory rather than the
  // caches (cpu::with_operand_residency, decided once a call); the products
  // then fetch their next operands ahead.
  bool operands_from_memory = false;

  // Points the dilated kernel spans, and the outputs at stride 1 (the
  // FFT method computes them all and keeps every stride-th).
  ROWCONV_HOST_DEVICE int64_t span() const { return dilation * (kernel_size - 1) + 1; }
  ROWCONV_HOST_DEVICE int64_t stride1_outputs() const {
    return width + pad_left + pad_right - span() + 1;
  }

  // Input position read by output position t through tap k.
  ROWCONV_HOST_DEVICE int64_t input_position(int64_t t, int64_t k) const {
    return t * stride - pad_left + k * dilation;
  }

  // Forward tiles: output positions [t0, t0 + n) read the input window that
  // starts at input_position(t0, 0) and spans this many positions.
  ROWCONV_HOST_DEVICE int64_t forward_window(int64_t n) const {
    return (n - 1) * stride + (kernel_size - 1) * dilation + 1;
  }

  // Grad-input: tap k carries output t = (j + pad_left - k * dilation) / stride
  // back to input position j, when that division is exact and 0 <= t < Wout.
  ROWCONV_HOST_DEVICE int64_t grad_numerator(int64_t j, int64_t k) const {
    return j + pad_left - k * dilation;
  }

  // Offsets into the contiguous weight, bias and output tensors.
  ROWCONV_HOST_DEVICE int64_t weight_offset(int64_t h, int64_t co, int64_t ci_in_group,
                                            int64_t k) const {
    return ((h * out_channels + co) * in_per_group + ci_in_group) * kernel_size + k;
  }
  ROWCONV_HOST_DEVICE int64_t bias_offset(int64_t h, int64_t co) const {
    return h * out_channels + co;
  }
  ROWCONV_HOST_DEVICE int64_t output_offset(int64_t b, int64_t co, int64_t h, int64_t t) const {
    return ((b * out_channels + co) * rows + h) * out_width + t;
  }
  // Offset of the contiguous grad_x, shaped like x.
  ROWCONV_HOST_DEVICE int64_t grad_input_offset(int64_t b, int64_t ci, int64_t h,
                                                int64_t j) const {
    return ((b * in_channels + ci) * rows + h) * width + j;
  }
  ROWCONV_HOST_DEVICE int64_t in_offset(int64_t b, int64_t c, int64_t h, int64_t pos) const {
    return b * in_stride_b + c * in_stride_c + h * in_stride_h + pos * in_stride_w;
  }
  ROWCONV_HOST_DEVICE int64_t prefix_offset(int64_t b, int64_t c, int64_t h, int64_t pos) const {
    return b * pre_stride_b + c * pre_stride_c + h * pre_stride_h +
           prefix_position(pos, prefix_width) * pre_stride_w;
  }
  // The prefix row (b, c, h) from its first position, -prefix_width (null without a prefix).
  template <typename scalar_t>
  ROWCONV_HOST_DEVICE const scalar_t* prefix_row(int64_t b, int64_t c, int64_t h) const {
    return prefix_width > 0
               ? static_cast<const scalar_t*>(prefix) + prefix_offset(b, c, h, -prefix_width)
               : nullptr;
  }
  // Element `pos` of the virtual row (b, c, h): x, the prefix or zero.
  template <typename scalar_t>
  ROWCONV_HOST_DEVICE scalar_t virtual_input(const scalar_t* x, int64_t b, int64_t c, int64_t h,
                                             int64_t pos) const {
    switch (virtual_source(pos, width, prefix_width)) {
      case RowSource::kInput: return x[in_offset(b, c, h, pos)];
      case RowSource::kPrefix: return static_cast<const scalar_t*>(prefix)[prefix_offset(b, c, h, pos)];
      default: return scalar_t(0);
    }
  }
  ROWCONV_HOST_DEVICE int64_t gout_offset(int64_t b, int64_t co, int64_t h, int64_t t) const {
    return b * gout_stride_b + co * gout_stride_c + h * gout_stride_h + t * gout_stride_w;
  }
};

}  // namespace rowconv
