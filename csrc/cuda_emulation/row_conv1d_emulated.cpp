// The CUDA kernels run on the CPU by the emulator (cuda/emulator.h), as ops
// torch.ops.rowconv_emulated.* on CPU tensors, for the tests: the very kernel
// and launch code of the CUDA backend, with the same checks and op bodies.
// Each op takes the shared-memory budget last, so that tests can force
// multi-chunk tiles and the direct kernels with small problems.
#include <torch/library.h>

#include <vector>

#include "../cuda/launch.h"
#include "../row_conv1d_backend.h"
#include "../row_conv1d_update_backend.h"

namespace rowconv::cuda {
namespace {

struct EmulatedKernels {
  static constexpr bool kWritesFinalState = false;  // forward_with_final_state_op copies it
  int64_t shared_bytes;
  template <typename T>
  void forward(const RowConvParams& p, const T* x, const T* w, const T* b, T* y) const {
    launch_forward<T>(emu::Launch{}, p, x, w, b, y, shared_bytes);
  }
  template <typename T>
  void grad_input(const RowConvParams& p, const T* gy, const T* w, T* gx) const {
    launch_grad_input<T>(emu::Launch{}, p, gy, w, gx, shared_bytes);
  }
  template <typename T>
  void grad_weight(const RowConvParams& p, const T* gy, const T* x, T* gw) const {
    std::vector<at::opmath_type<T>> holder;
    launch_grad_weight<T>(emu::Launch{}, p, gy, x, gw, workspace(holder), shared_bytes);
  }
  template <typename T>
  void grad_bias(const RowConvParams& p, const T* gy, T* gb) const {
    std::vector<at::opmath_type<T>> holder;
    launch_grad_bias<T>(emu::Launch{}, p, gy, gb, workspace(holder));
  }
  template <typename T>
  void update(const RowConvUpdateParams& p, const T* x, T* state, const T* w, const T* b,
              const int64_t* cache_seqlens, const int64_t* state_indices, T* y) const {
    launch_update<T>(emu::Launch{}, p, x, state, w, b, cache_seqlens, state_indices, y);
  }
  template <typename acc_t>
  static auto workspace(std::vector<acc_t>& holder) {
    return [&holder](int64_t n) { return holder.resize(n), holder.data(); };
  }
};

at::Tensor forward_emulated(const at::Tensor& x, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, int64_t stride,
                            int64_t pad_left, int64_t pad_right, int64_t dilation, int64_t groups,
                            int64_t shared_bytes, const std::optional<at::Tensor>& prefix) {
  return forward_op(EmulatedKernels{shared_bytes}, x, weight, bias, stride, pad_left, pad_right,
                    dilation, groups, 0, prefix);
}

at::Tensor grad_input_emulated(const at::Tensor& grad_out, const at::Tensor& weight,
                               int64_t width, int64_t stride, int64_t pad_left, int64_t pad_right,
                               int64_t dilation, int64_t groups, int64_t shared_bytes) {
  return grad_input_op(EmulatedKernels{shared_bytes}, grad_out, weight, width, stride, pad_left,
                       pad_right, dilation, groups);
}

at::Tensor grad_weight_emulated(const at::Tensor& grad_out, const at::Tensor& x,
                                int64_t kernel_size, int64_t stride, int64_t pad_left,
                                int64_t pad_right, int64_t dilation, int64_t groups,
                                int64_t shared_bytes, const std::optional<at::Tensor>& prefix) {
  return grad_weight_op(EmulatedKernels{shared_bytes}, grad_out, x, kernel_size, stride,
                        pad_left, pad_right, dilation, groups, 0, prefix);
}

at::Tensor grad_bias_emulated(const at::Tensor& grad_out) {
  return grad_bias_op(EmulatedKernels{kDefaultSharedBytes}, grad_out);
}

at::Tensor update_emulated(const at::Tensor& x, const at::Tensor& conv_state,
                           const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                           int64_t dilation, int64_t groups,
                           const std::optional<at::Tensor>& cache_seqlens,
                           const std::optional<at::Tensor>& state_indices) {
  return update_op(EmulatedKernels{kDefaultSharedBytes}, x, conv_state, weight, bias, dilation,
                   groups, cache_seqlens, state_indices);
}

}  // namespace
}  // namespace rowconv::cuda

TORCH_LIBRARY(rowconv_emulated, m) {
  m.def(
      "row_conv1d(Tensor x, Tensor weight, Tensor? bias, int stride, int pad_left, "
      "int pad_right, int dilation, int groups, int shared_bytes=49152, "
      "Tensor? prefix=None) -> Tensor");
  m.def(
      "row_conv1d_grad_input(Tensor grad_out, Tensor weight, int width, int stride, "
      "int pad_left, int pad_right, int dilation, int groups, int shared_bytes=49152) -> Tensor");
  m.def(
      "row_conv1d_grad_weight(Tensor grad_out, Tensor x, int kernel_size, int stride, "
      "int pad_left, int pad_right, int dilation, int groups, int shared_bytes=49152, "
      "Tensor? prefix=None) -> Tensor");
  m.def("row_conv1d_grad_bias(Tensor grad_out) -> Tensor");
  m.def(
      "row_conv1d_update(Tensor x, Tensor(a!) conv_state, Tensor weight, Tensor? bias, "
      "int dilation, int groups, Tensor? cache_seqlens, Tensor? state_indices) -> Tensor");
}

TORCH_LIBRARY_IMPL(rowconv_emulated, CPU, m) {
  m.impl("row_conv1d", &rowconv::cuda::forward_emulated);
  m.impl("row_conv1d_grad_input", &rowconv::cuda::grad_input_emulated);
  m.impl("row_conv1d_grad_weight", &rowconv::cuda::grad_weight_emulated);
  m.impl("row_conv1d_grad_bias", &rowconv::cuda::grad_bias_emulated);
  m.impl("row_conv1d_update", &rowconv::cuda::update_emulated);
}
