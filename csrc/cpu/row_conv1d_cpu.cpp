// CPU backend of the rowconv ops: the op bodies of row_conv1d_backend.h with
// the CPU kernels.
#include <torch/library.h>

#include "../row_conv1d_backend.h"
#include "forward_kernel.h"
#include "grad_bias_kernel.h"
#include "grad_input_kernel.h"
#include "grad_weight_kernel.h"
#include "spectrum_mix_kernel.h"
#include "../row_conv1d_update_backend.h"
#include "update_kernel.h"

namespace rowconv {
namespace {

struct CpuKernels {
  static constexpr bool kWritesFinalState = true;
  // the FFT method's channel mix in the spectra's own layout
  static constexpr fft::SpectraProducts kSpectraProducts{&cpu::mix_spectra, &cpu::correlate_spectra};
  template <typename T>
  void forward(const RowConvParams& p, const T* x, const T* w, const T* b, T* y,
               T* final_state = nullptr) const {
    cpu::row_conv1d_forward<T>(cpu::with_operand_residency<T>(p, x, nullptr), x, w, b, y, final_state);
  }
  template <typename T>
  void grad_input(const RowConvParams& p, const T* gy, const T* w, T* gx) const {
    cpu::row_conv1d_grad_input<T>(cpu::with_operand_residency<T>(p, nullptr, gy), gy, w, gx);
  }
  template <typename T>
  void grad_weight(const RowConvParams& p, const T* gy, const T* x, T* gw) const {
    cpu::row_conv1d_grad_weight<T>(cpu::with_operand_residency<T>(p, x, gy), gy, x, gw);
  }
  template <typename T>
  void grad_bias(const RowConvParams& p, const T* gy, T* gb) const {
    cpu::row_conv1d_grad_bias<T>(p, gy, gb);
  }
  template <typename T>
  void update(const RowConvUpdateParams& p, const T* x, T* state, const T* w, const T* b,
              const int64_t* cache_seqlens, const int64_t* state_indices, T* y) const {
    cpu::row_conv1d_update<T>(p, x, state, w, b, cache_seqlens, state_indices, y);
  }
};

at::Tensor forward_cpu(const at::Tensor& x, const at::Tensor& weight,
                       const std::optional<at::Tensor>& bias, int64_t stride, int64_t pad_left,
                       int64_t pad_right, int64_t dilation, int64_t groups, int64_t fft_block,
                       const std::optional<at::Tensor>& prefix) {
  return forward_op(CpuKernels{}, x, weight, bias, stride, pad_left, pad_right, dilation, groups,
                    fft_block, prefix);
}

std::tuple<at::Tensor, at::Tensor> forward_with_final_state_cpu(
    const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias, int64_t stride,
    int64_t pad_left, int64_t pad_right, int64_t dilation, int64_t groups, int64_t fft_block,
    const std::optional<at::Tensor>& prefix) {
  return forward_with_final_state_op(CpuKernels{}, x, weight, bias, stride, pad_left, pad_right, dilation,
                                     groups, fft_block, prefix);
}

at::Tensor grad_input_cpu(const at::Tensor& grad_out, const at::Tensor& weight, int64_t width,
                          int64_t stride, int64_t pad_left, int64_t pad_right, int64_t dilation,
                          int64_t groups, int64_t fft_block) {
  return grad_input_op(CpuKernels{}, grad_out, weight, width, stride, pad_left, pad_right,
                       dilation, groups, fft_block);
}

at::Tensor grad_weight_cpu(const at::Tensor& grad_out, const at::Tensor& x, int64_t kernel_size,
                           int64_t stride, int64_t pad_left, int64_t pad_right, int64_t dilation,
                           int64_t groups, int64_t fft_block,
                           const std::optional<at::Tensor>& prefix) {
  return grad_weight_op(CpuKernels{}, grad_out, x, kernel_size, stride, pad_left, pad_right,
                        dilation, groups, fft_block, prefix);
}

at::Tensor grad_bias_cpu(const at::Tensor& grad_out) { return grad_bias_op(CpuKernels{}, grad_out); }

at::Tensor update_cpu(const at::Tensor& x, const at::Tensor& conv_state, const at::Tensor& weight,
                      const std::optional<at::Tensor>& bias, int64_t dilation, int64_t groups,
                      const std::optional<at::Tensor>& cache_seqlens,
                      const std::optional<at::Tensor>& state_indices) {
  return update_op(CpuKernels{}, x, conv_state, weight, bias, dilation, groups, cache_seqlens,
                   state_indices);
}

}  // namespace
}  // namespace rowconv

TORCH_LIBRARY_IMPL(rowconv, CPU, m) {
  m.impl("row_conv1d", &rowconv::forward_cpu);
  m.impl("row_conv1d_with_final_state", &rowconv::forward_with_final_state_cpu);
  m.impl("row_conv1d_grad_input", &rowconv::grad_input_cpu);
  m.impl("row_conv1d_grad_weight", &rowconv::grad_weight_cpu);
  m.impl("row_conv1d_grad_bias", &rowconv::grad_bias_cpu);
  m.impl("row_conv1d_update", &rowconv::update_cpu);
}
