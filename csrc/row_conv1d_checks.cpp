// The argument checks that every backend runs before its kernels: each error
// names the argument, the expected and the actual value.
#include <ATen/MemoryOverlap.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "row_conv1d.h"

#ifdef ROWCONV_WITH_CUDA
#include <c10/cuda/CUDAGraphsC10Utils.h>
#endif

namespace rowconv {
namespace {

std::string shape_of(const at::Tensor& t) {
  std::ostringstream s;
  s << t.sizes();
  return s.str();
}

void check_defined(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK_VALUE(t.defined(), op, ": ", name, " must be a tensor, got an undefined tensor");
}

void check_rank(const char* op, const char* name, const at::Tensor& t, int64_t rank,
                const char* layout) {
  check_defined(op, name, t);
  TORCH_CHECK_VALUE(t.dim() == rank, op, ": ", name, " must be a ", rank, "-D ", layout,
                    " tensor, got a ", t.dim(), "-D tensor of shape ", shape_of(t));
}

void check_floating(const char* op, const char* name, const at::Tensor& t) {
  const auto dt = t.scalar_type();
  TORCH_CHECK(dt == at::kFloat || dt == at::kDouble || dt == at::kHalf || dt == at::kBFloat16 ||
                  dt == at::kComplexFloat || dt == at::kComplexDouble,
              op, ": ", name,
              " must have dtype float32, float64, float16, bfloat16, complex64 or complex128, got ",
              dt);
}

// `other` must live where `ref` lives and hold the same dtype.
void check_like(const char* op, const char* ref_name, const at::Tensor& ref, const char* name,
                const at::Tensor& other) {
  TORCH_CHECK(other.scalar_type() == ref.scalar_type(), op, ": ", name,
              " must have the same dtype as ", ref_name, " (", ref.scalar_type(), "), got ",
              other.scalar_type());
  TORCH_CHECK(other.device() == ref.device(), op, ": ", name,
              " must be on the same device as ", ref_name, " (", ref.device(), "), got ",
              other.device());
}

void check_dim_equals(const char* op, const char* what, int64_t expected, const char* name,
                      const at::Tensor& t, int64_t dim) {
  TORCH_CHECK_VALUE(t.size(dim) == expected, op, ": ", name, ".shape[", dim, "] must be ", what,
                    " = ", expected, ", got ", t.size(dim), " (", name, " has shape ",
                    shape_of(t), ")");
}

// Checks the scalar arguments and the channel arithmetic shared by all ops,
// and fills everything but the operand strides.
RowConvParams make_params(const char* op, int64_t batch, int64_t in_channels,
                          int64_t out_channels, int64_t rows, int64_t width, int64_t kernel_size,
                          int64_t stride, int64_t pad_left, int64_t pad_right, int64_t dilation,
                          int64_t groups, int64_t fft_block) {
  // Sizes and lengths up to 2^40 keep every index computation of the kernels
  // (tile * stride + dilation * K + padding, ...) far inside int64.
  constexpr int64_t kMaxLength = int64_t{1} << 40;
  const auto check_range = [&](const char* name, int64_t value, int64_t lowest) {
    TORCH_CHECK_VALUE(value >= lowest && value <= kMaxLength, op, ": ", name, " must be ",
                      lowest == 1 ? "a positive integer" : "non-negative", " (at most 2^40), got ",
                      value);
  };
  check_range("stride", stride, 1);
  check_range("dilation", dilation, 1);
  check_range("groups", groups, 1);
  check_range("kernel size", kernel_size, 1);
  TORCH_CHECK_VALUE(kernel_size <= (int64_t{1} << 20), op, ": kernel size must be at most 2^20, got ",
                    kernel_size);
  TORCH_CHECK_VALUE(pad_left >= 0 && pad_right >= 0 && pad_left <= kMaxLength &&
                        pad_right <= kMaxLength,
                    op, ": padding must be non-negative (at most 2^40), got (left=", pad_left,
                    ", right=", pad_right, ")");
  check_range("width", width, 0);
  TORCH_CHECK_VALUE(in_channels % groups == 0, op, ": in_channels (", in_channels,
                    ") must be divisible by groups (", groups, ")");
  TORCH_CHECK_VALUE(out_channels % groups == 0, op, ": out_channels (", out_channels,
                    ") must be divisible by groups (", groups, ")");
  const int64_t out_width =
      conv_output_length(width, kernel_size, stride, pad_left, pad_right, dilation);
  TORCH_CHECK_VALUE(out_width >= 1, op,
                    ": the padded input is shorter than the dilated kernel: W + pad_left + "
                    "pad_right = ",
                    width, " + ", pad_left, " + ", pad_right, " = ",
                    width + pad_left + pad_right, ", expected at least dilation * (K - 1) + 1 = ",
                    dilation, " * (", kernel_size, " - 1) + 1 = ",
                    dilation * (kernel_size - 1) + 1);
  const int64_t span = dilation * (kernel_size - 1) + 1;
  TORCH_CHECK_VALUE(fft_block >= -2 && fft_block <= kMaxLength && (fft_block <= 0 || fft_block >= span),
                    op, ": fft_block must be 0 (direct), -1 (auto), -2 (fft, planned length) or an "
                    "FFT length of at least the dilated kernel's span dilation * (K - 1) + 1 = ",
                    span, " (at most 2^40), got ", fft_block);
  RowConvParams p{};
  p.batch = batch;
  p.in_channels = in_channels;
  p.out_channels = out_channels;
  p.rows = rows;
  p.width = width;
  p.out_width = out_width;
  p.kernel_size = kernel_size;
  p.groups = groups;
  p.in_per_group = in_channels / groups;
  p.out_per_group = out_channels / groups;
  p.stride = stride;
  p.pad_left = pad_left;
  p.pad_right = pad_right;
  p.dilation = dilation;
  p.fft_block = fft_block;
  return p;
}

void set_input_strides(RowConvParams& p, const at::Tensor& x) {
  p.in_stride_b = x.stride(0);
  p.in_stride_c = x.stride(1);
  p.in_stride_h = x.stride(2);
  p.in_stride_w = x.stride(3);
}

void set_grad_out_strides(RowConvParams& p, const at::Tensor& grad_out) {
  p.gout_stride_b = grad_out.stride(0);
  p.gout_stride_c = grad_out.stride(1);
  p.gout_stride_h = grad_out.stride(2);
  p.gout_stride_w = grad_out.stride(3);
}

// The prefix read before x (the initial_state of a streaming causal
// convolution): shaped and typed like x, `pad_left` wide, and only for the
// causal padding at stride 1, where the virtual row prefix ++ x is read
// without padding.
void set_prefix(const char* op, RowConvParams& p, const at::Tensor& x,
                const std::optional<at::Tensor>& prefix) {
  if (!prefix.has_value() || !prefix->defined()) return;
  const at::Tensor& s = *prefix;
  check_rank(op, "prefix (initial_state)", s, 4, "(B, Cin, H, dilation * (K - 1))");
  check_like(op, "x", x, "prefix (initial_state)", s);
  const int64_t causal = p.dilation * (p.kernel_size - 1);
  TORCH_CHECK_VALUE(p.stride == 1 && p.pad_right == 0 && p.pad_left == causal, op,
                    ": a prefix (initial_state) needs the causal padding (left = dilation * (K - 1) = ",
                    causal, ", right = 0) and stride 1, got padding (left=", p.pad_left,
                    ", right=", p.pad_right, ") and stride ", p.stride);
  const int64_t expected[] = {p.batch, p.in_channels, p.rows, causal};
  TORCH_CHECK_VALUE(s.size(0) == expected[0] && s.size(1) == expected[1] &&
                        s.size(2) == expected[2] && s.size(3) == expected[3],
                    op, ": prefix (initial_state) must have shape (B, Cin, H, dilation * (K - 1)) = [",
                    expected[0], ", ", expected[1], ", ", expected[2], ", ", expected[3], "], got ",
                    shape_of(s));
  p.prefix_width = causal;
  p.pre_stride_b = s.stride(0);
  p.pre_stride_c = s.stride(1);
  p.pre_stride_h = s.stride(2);
  p.pre_stride_w = s.stride(3);
}

void check_grad_out_width(const char* op, const RowConvParams& p, const at::Tensor& grad_out) {
  check_dim_equals(op, "the output width Wout", p.out_width, "grad_out", grad_out, 3);
}

}  // namespace

RowConvParams check_forward(const at::Tensor& x, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, int64_t stride,
                            int64_t pad_left, int64_t pad_right, int64_t dilation,
                            int64_t groups, int64_t fft_block,
                            const std::optional<at::Tensor>& prefix) {
  const char* op = "row_conv1d";
  check_rank(op, "x", x, 4, "(B, Cin, H, W)");
  check_rank(op, "weight", weight, 4, "(H, Cout, Cin / groups, K)");
  check_floating(op, "x", x);
  check_like(op, "x", x, "weight", weight);
  const bool has_bias = bias.has_value() && bias->defined();
  if (has_bias) {
    check_rank(op, "bias", *bias, 2, "(H, Cout)");
    check_like(op, "x", x, "bias", *bias);
  }
  check_dim_equals(op, "the number of rows H = x.shape[2]", x.size(2), "weight", weight, 0);
  RowConvParams p =
      make_params(op, x.size(0), x.size(1), weight.size(1), x.size(2), x.size(3), weight.size(3),
                  stride, pad_left, pad_right, dilation, groups, fft_block);
  check_dim_equals(op, "in_channels / groups", p.in_per_group, "weight", weight, 2);
  if (has_bias) {
    check_dim_equals(op, "H = x.shape[2]", p.rows, "bias", *bias, 0);
    check_dim_equals(op, "out_channels = weight.shape[1]", p.out_channels, "bias", *bias, 1);
  }
  set_input_strides(p, x);
  set_prefix(op, p, x, prefix);
  return p;
}

RowConvParams check_forward_with_final_state(const at::Tensor& x, const at::Tensor& weight,
                                             const std::optional<at::Tensor>& bias, int64_t stride,
                                             int64_t pad_left, int64_t pad_right, int64_t dilation,
                                             int64_t groups, int64_t fft_block,
                                             const std::optional<at::Tensor>& prefix) {
  // (a weight that is not 4-D: check_forward names it, after this)
  const int64_t K = weight.defined() && weight.dim() == 4 ? weight.size(3)
                                                          : pad_left / std::max<int64_t>(dilation, 1) + 1;
  TORCH_CHECK_VALUE(stride == 1 && pad_right == 0 && pad_left == dilation * (K - 1),
                    "row_conv1d_with_final_state: a causal convolution (stride 1, pad_left = dilation * (K - 1), "
                    "pad_right 0) is expected, got stride=", stride, ", pad_left=", pad_left,
                    ", pad_right=", pad_right, ", dilation=", dilation, ", K=", K);
  return check_forward(x, weight, bias, stride, pad_left, pad_right, dilation, groups, fft_block, prefix);
}

RowConvParams check_grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                               int64_t width, int64_t stride, int64_t pad_left,
                               int64_t pad_right, int64_t dilation, int64_t groups,
                               int64_t fft_block) {
  const char* op = "row_conv1d_grad_input";
  check_rank(op, "grad_out", grad_out, 4, "(B, Cout, H, Wout)");
  check_rank(op, "weight", weight, 4, "(H, Cout, Cin / groups, K)");
  check_floating(op, "grad_out", grad_out);
  check_like(op, "grad_out", grad_out, "weight", weight);
  check_dim_equals(op, "the number of rows H = weight.shape[0]", weight.size(0), "grad_out",
                   grad_out, 2);
  check_dim_equals(op, "out_channels = weight.shape[1]", weight.size(1), "grad_out", grad_out, 1);
  RowConvParams p = make_params(op, grad_out.size(0), weight.size(2) * groups, weight.size(1),
                                weight.size(0), width, weight.size(3), stride, pad_left,
                                pad_right, dilation, groups, fft_block);
  check_grad_out_width(op, p, grad_out);
  set_grad_out_strides(p, grad_out);
  return p;
}

RowConvParams check_grad_weight(const at::Tensor& grad_out, const at::Tensor& x,
                                int64_t kernel_size, int64_t stride, int64_t pad_left,
                                int64_t pad_right, int64_t dilation, int64_t groups,
                                int64_t fft_block, const std::optional<at::Tensor>& prefix) {
  const char* op = "row_conv1d_grad_weight";
  check_rank(op, "grad_out", grad_out, 4, "(B, Cout, H, Wout)");
  check_rank(op, "x", x, 4, "(B, Cin, H, W)");
  check_floating(op, "x", x);
  check_like(op, "x", x, "grad_out", grad_out);
  check_dim_equals(op, "the batch size B = x.shape[0]", x.size(0), "grad_out", grad_out, 0);
  check_dim_equals(op, "the number of rows H = x.shape[2]", x.size(2), "grad_out", grad_out, 2);
  RowConvParams p = make_params(op, x.size(0), x.size(1), grad_out.size(1), x.size(2), x.size(3),
                                kernel_size, stride, pad_left, pad_right, dilation, groups,
                                fft_block);
  check_grad_out_width(op, p, grad_out);
  set_input_strides(p, x);
  set_grad_out_strides(p, grad_out);
  set_prefix(op, p, x, prefix);
  return p;
}

RowConvParams check_grad_bias(const at::Tensor& grad_out) {
  const char* op = "row_conv1d_grad_bias";
  check_rank(op, "grad_out", grad_out, 4, "(B, Cout, H, Wout)");
  check_floating(op, "grad_out", grad_out);
  RowConvParams p{};
  p.batch = grad_out.size(0);
  p.out_channels = grad_out.size(1);
  p.rows = grad_out.size(2);
  p.out_width = grad_out.size(3);
  set_grad_out_strides(p, grad_out);
  return p;
}

void check_state_has_no_math_bits(const char* op, const at::Tensor& conv_state) {
  TORCH_CHECK(!conv_state.is_conj() && !conv_state.is_neg(), op,
              ": conv_state is written in place, so it must not be a lazy conjugate or negative "
              "view (call .resolve_conj() or .resolve_neg() first)");
}

namespace {

// Whether the host may read an index vector's values before the kernels:
// not from a CUDA stream that a graph is capturing (the copy to the host
// would synchronize it, which capture forbids: a decode step captured into
// a CUDA graph). The kernels then skip rows past the pool themselves
// (update_state_row); repeated rows are the caller's to avoid.
bool host_reads_values(const at::Tensor& t) {
#ifdef ROWCONV_WITH_CUDA
  if (t.is_cuda()) {  // (the op's CUDA kernel runs under a guard for x's device, t's)
    return c10::cuda::currentStreamCaptureStatusMayInitCtx() == c10::cuda::CaptureStatus::None;
  }
#endif
  (void)t;
  return true;
}

// cache_seqlens / state_indices of row_conv1d_update: (B,) int32 or int64 on x's device.
void check_index_vector(const char* op, const char* name, const at::Tensor& t, const at::Tensor& x) {
  check_rank(op, name, t, 1, "(B,)");
  check_dim_equals(op, "the batch size B = x.shape[0]", x.size(0), name, t, 0);
  TORCH_CHECK(t.scalar_type() == at::kInt || t.scalar_type() == at::kLong, op, ": ", name,
              " must have dtype int32 or int64, got ", t.scalar_type());
  TORCH_CHECK(t.device() == x.device(), op, ": ", name, " must be on the same device as x (",
              x.device(), "), got ", t.device());
}

// conv_state is written in place: it must own each of its elements once and
// share no memory with an operand that is read.
void check_writable_state(const char* op, const at::Tensor& state,
                          const std::vector<std::pair<const char*, const at::Tensor*>>& reads) {
  TORCH_CHECK(at::has_internal_overlap(state) != at::MemOverlap::Yes, op,
              ": conv_state is written in place, so it must not be an expanded view (several "
              "elements at one address), got strides ",
              state.strides());
  check_state_has_no_math_bits(op, state);
  // The address ranges each tensor spans (strides are never negative): two
  // views that interleave without touching are refused too, which is simpler
  // than proving them apart.
  const auto span_of = [](const at::Tensor& t) {
    const auto* first = static_cast<const char*>(t.const_data_ptr());
    int64_t last = 0;
    for (int64_t d = 0; d < t.dim(); ++d) last += (t.size(d) - 1) * t.stride(d);
    return std::make_pair(first, first + (last + 1) * static_cast<int64_t>(t.element_size()));
  };
  for (const auto& [name, t] : reads) {
    if (t == nullptr || !t->defined() || t->numel() == 0 || state.numel() == 0) continue;
    if (!t->storage().is_alias_of(state.storage())) continue;
    const auto [lo, hi] = span_of(state);
    const auto [t_lo, t_hi] = span_of(*t);
    TORCH_CHECK(hi <= t_lo || t_hi <= lo, op,
                ": conv_state is written in place, so it must not share memory with ", name);
  }
}

}  // namespace

RowConvUpdateParams check_update(const at::Tensor& x, const at::Tensor& conv_state,
                                 const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                                 int64_t dilation, int64_t groups,
                                 const std::optional<at::Tensor>& cache_seqlens,
                                 const std::optional<at::Tensor>& state_indices) {
  const char* op = "row_conv1d_update";
  check_rank(op, "x", x, 4, "(B, Cin, H, T)");
  check_rank(op, "conv_state", conv_state, 4, "(state batch, Cin, H, S)");
  check_rank(op, "weight", weight, 4, "(H, Cout, Cin / groups, K)");
  check_floating(op, "x", x);
  check_like(op, "x", x, "conv_state", conv_state);
  check_like(op, "x", x, "weight", weight);
  const bool has_bias = bias.has_value() && bias->defined();
  if (has_bias) {
    check_rank(op, "bias", *bias, 2, "(H, Cout)");
    check_like(op, "x", x, "bias", *bias);
  }
  TORCH_CHECK_VALUE(x.size(3) >= 1, op, ": x must hold at least one new step, got T = x.shape[3] = ",
                    x.size(3), " (x has shape ", shape_of(x), ")");
  check_dim_equals(op, "the number of rows H = x.shape[2]", x.size(2), "weight", weight, 0);
  // The convolution of the T new steps after the held history: the checks
  // of a causal row_conv1d over them.
  const RowConvParams conv =
      make_params(op, x.size(0), x.size(1), weight.size(1), x.size(2), x.size(3), weight.size(3),
                  1, dilation * (weight.size(3) - 1), 0, dilation, groups, 0);
  check_dim_equals(op, "in_channels / groups", conv.in_per_group, "weight", weight, 2);
  if (has_bias) {
    check_dim_equals(op, "H = x.shape[2]", conv.rows, "bias", *bias, 0);
    check_dim_equals(op, "out_channels = weight.shape[1]", conv.out_channels, "bias", *bias, 1);
  }
  check_dim_equals(op, "in_channels = x.shape[1]", conv.in_channels, "conv_state", conv_state, 1);
  check_dim_equals(op, "the number of rows H = x.shape[2]", conv.rows, "conv_state", conv_state, 2);
  const int64_t history = dilation * (conv.kernel_size - 1);
  const int64_t state_len = conv_state.size(3);
  TORCH_CHECK_VALUE(state_len >= history, op, ": conv_state.shape[3] (S) must be at least "
                    "dilation * (K - 1) = ", dilation, " * (", conv.kernel_size, " - 1) = ", history,
                    ", got ", state_len, " (conv_state has shape ", shape_of(conv_state), ")");
  const bool circular = cache_seqlens.has_value() && cache_seqlens->defined();
  if (circular) {
    check_index_vector(op, "cache_seqlens", *cache_seqlens, x);
    TORCH_CHECK_VALUE(state_len >= 1, op, ": a circular conv_state (cache_seqlens given) needs "
                      "conv_state.shape[3] (S) >= 1, got ", state_len);
  }
  const bool pooled = state_indices.has_value() && state_indices->defined();
  if (pooled) {
    check_index_vector(op, "state_indices", *state_indices, x);
    if (host_reads_values(*state_indices)) {
      // The values decide which memory is written: checked before any kernel.
      const at::Tensor rows = state_indices->to(at::kCPU, at::kLong).contiguous();
      const int64_t* r = rows.const_data_ptr<int64_t>();
      std::vector<int64_t> user(conv_state.size(0), -1);  // the batch entry using each pool row
      for (int64_t b = 0; b < rows.numel(); ++b) {
        if (r[b] < 0) continue;  // skipped entry
        TORCH_CHECK_VALUE(r[b] < conv_state.size(0), op, ": state_indices[", b, "] = ", r[b],
                          " is outside the pool: expected a negative value (skip) or one below "
                          "conv_state.shape[0] = ", conv_state.size(0));
        TORCH_CHECK_VALUE(user[r[b]] < 0, op, ": state_indices[", user[r[b]], "] and state_indices[",
                          b, "] are both ", r[b], ": two batch entries cannot update one state row");
        user[r[b]] = b;
      }
    }
  } else {
    check_dim_equals(op, "the batch size B = x.shape[0] (without state_indices)", x.size(0),
                     "conv_state", conv_state, 0);
  }
  check_writable_state(op, conv_state,
                       {{"x", &x}, {"weight", &weight}, {"bias", has_bias ? &*bias : nullptr},
                        {"cache_seqlens", circular ? &*cache_seqlens : nullptr},
                        {"state_indices", pooled ? &*state_indices : nullptr}});
  RowConvUpdateParams p{};
  p.conv = conv;
  set_input_strides(p.conv, x);
  p.state_len = state_len;
  p.pool_size = conv_state.size(0);
  p.channel_parts = 1;
  p.state_stride_b = conv_state.stride(0);
  p.state_stride_c = conv_state.stride(1);
  p.state_stride_part = 0;
  p.state_stride_h = conv_state.stride(2);
  p.state_stride_s = conv_state.stride(3);
  return p;
}

}  // namespace rowconv
