// C++ use of the rowconv ops through the dispatcher, checked against ATen's
// grouped conv1d on the transposed layout (the contract's reference).
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cstdio>
#include <optional>

namespace {

using ForwardFn = at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                             int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                             const std::optional<at::Tensor>&);
// The last argument, fft_block: 0 = the direct kernels, -2 = the FFT method.
constexpr int64_t kDirect = 0, kFft = -2;

at::Tensor reference(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, int64_t stride,
                     int64_t pad_left, int64_t pad_right, int64_t dilation, int64_t groups) {
  const int64_t B = x.size(0), cin = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t cout = w.size(1), K = w.size(3);
  at::Tensor x2 = at::constant_pad_nd(x.transpose(1, 2).reshape({B, H * cin, W}), {pad_left, pad_right});
  at::Tensor y2 = at::conv1d(x2, w.reshape({H * cout, w.size(2), K}), b.reshape({H * cout}), {stride},
                             at::IntArrayRef{0}, {dilation}, H * groups);
  return y2.reshape({B, H, cout, y2.size(-1)}).transpose(1, 2);
}

}  // namespace

int main() {
  auto op = c10::Dispatcher::singleton().findSchemaOrThrow("rowconv::row_conv1d", "").typed<ForwardFn>();
  at::manual_seed(0);
  int failures = 0;
  struct Case { int64_t B, cin, H, W, cout, K, stride, pl, pr, dilation, groups; };
  for (const Case& c : {Case{32, 15, 10, 100, 15, 3, 1, 0, 0, 1, 1}, Case{3, 6, 4, 151, 9, 5, 2, 3, 1, 2, 3},
                        Case{2, 4, 5, 129, 4, 4, 1, 6, 0, 2, 4}}) {
    for (auto dtype : {at::kFloat, at::kDouble}) {
      at::Tensor x = at::randn({c.B, c.cin, c.H, c.W}, at::dtype(dtype));
      at::Tensor w = at::randn({c.H, c.cout, c.cin / c.groups, c.K}, at::dtype(dtype));
      at::Tensor b = at::randn({c.H, c.cout}, at::dtype(dtype));
      at::Tensor r = reference(x, w, b, c.stride, c.pl, c.pr, c.dilation, c.groups);
      for (const int64_t method : {kDirect, kFft}) {
        at::Tensor y = op.call(x, w, b, c.stride, c.pl, c.pr, c.dilation, c.groups, method, std::nullopt);
        // direct: sums of Cin/groups * K <= 75 products, elementwise well inside 1e-4 in
        // float32; the FFT's error is relative to the norms: norm-wise, the same bounds.
        const double tol = dtype == at::kFloat ? 1e-4 : 1e-10;
        const bool ok = y.sizes() == r.sizes() &&
                        (method == kDirect ? at::allclose(y, r, tol, tol)
                                           : (y - r).norm().item<double>() <= tol * r.norm().item<double>());
        std::printf("%s %s B=%ld Cin=%ld H=%ld W=%ld Cout=%ld K=%ld: %s\n", c10::toString(dtype),
                    method == kDirect ? "direct" : "fft", c.B, c.cin, c.H, c.W, c.cout, c.K,
                    ok ? "ok" : "MISMATCH");
        failures += !ok;
      }
    }
  }
  // A causal convolution with a prefix (the carried state, read before x):
  // the reference with no padding on the concatenation.
  for (const int64_t method : {kDirect, kFft}) {
    const Case c{2, 4, 5, 129, 4, 4, 1, 6, 0, 2, 4};
    at::Tensor x = at::randn({c.B, c.cin, c.H, c.W}, at::kDouble);
    at::Tensor s = at::randn({c.B, c.cin, c.H, c.pl}, at::kDouble);
    at::Tensor w = at::randn({c.H, c.cout, c.cin / c.groups, c.K}, at::kDouble);
    at::Tensor b = at::randn({c.H, c.cout}, at::kDouble);
    at::Tensor r = reference(at::cat({s, x}, 3), w, b, 1, 0, 0, c.dilation, c.groups);
    at::Tensor y = op.call(x, w, b, 1, c.pl, 0, c.dilation, c.groups, method, s);
    const bool ok = y.sizes() == r.sizes() && (y - r).norm().item<double>() <= 1e-10 * r.norm().item<double>();
    std::printf("double %s causal with a prefix: %s\n", method == kDirect ? "direct" : "fft", ok ? "ok" : "MISMATCH");
    failures += !ok;
  }
  // Bad input: a ValueError (c10::ValueError) naming the argument.
  try {
    op.call(at::randn({2, 4, 3, 10}), at::randn({2, 6, 4, 3}), std::nullopt, 1, 0, 0, 1, 1, kDirect, std::nullopt);
    std::printf("bad rows: no error\n");
    ++failures;
  } catch (const c10::ValueError& e) {
    const bool named = std::string(e.what()).find("weight.shape[0]") != std::string::npos;
    std::printf("bad rows: %s\n", named ? "clear error" : e.what());
    failures += !named;
  }
  std::printf("%s\n", failures ? "FAILED" : "all passed");
  return failures ? 1 : 0;
}
