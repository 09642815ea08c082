// The CUDA kernels run by the CPU emulator under sanitizers, without torch:
// every kernel and specialisation (tiled with one and several shared-memory
// chunks, one and several lanes, direct fallbacks, 1/4/8 channels and 1, 2,
// 4 positions per thread, the sliding window, K = 3, unit and other strides, grad-weight thread tiles of 1 or 4 rows and
// 1, 3, 4 or 8 taps, with and without split sums) on small random problems, against a naive float64 reference.
// Built by scripts/cuda_sanitizers.sh with AddressSanitizer + UBSan and with
// ThreadSanitizer; with -DROWCONV_PLANTED_MISSING_BARRIER it is the
// self-test that ThreadSanitizer must fail. Prints "N passed, M failed".
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda/launch.h"

using rowconv::RowConvParams;
namespace rc = rowconv::cuda;

namespace {

struct Case {
  int64_t B, cin, H, W, cout, K, stride, pad_left, pad_right, dilation, groups;
};

RowConvParams params_of(const Case& c) {  // contiguous x and grad_out
  RowConvParams p{};
  p.batch = c.B, p.in_channels = c.cin, p.out_channels = c.cout, p.rows = c.H, p.width = c.W;
  p.kernel_size = c.K, p.groups = c.groups, p.in_per_group = c.cin / c.groups;
  p.out_per_group = c.cout / c.groups, p.stride = c.stride, p.pad_left = c.pad_left;
  p.pad_right = c.pad_right, p.dilation = c.dilation;
  p.out_width = rowconv::conv_output_length(c.W, c.K, c.stride, c.pad_left, c.pad_right, c.dilation);
  p.in_stride_w = 1, p.in_stride_h = c.W, p.in_stride_c = c.H * c.W, p.in_stride_b = c.cin * c.H * c.W;
  p.gout_stride_w = 1, p.gout_stride_h = p.out_width, p.gout_stride_c = c.H * p.out_width;
  p.gout_stride_b = c.cout * c.H * p.out_width;
  return p;
}

// Naive float64 reference: every term of every output.
void reference(const RowConvParams& p, const std::vector<double>& x, const std::vector<double>& w,
               const std::vector<double>& bias, const std::vector<double>& gy, std::vector<double>& y,
               std::vector<double>& gx, std::vector<double>& gw, std::vector<double>& gb) {
  y.assign(p.batch * p.out_channels * p.rows * p.out_width, 0.0);
  gx.assign(p.batch * p.in_channels * p.rows * p.width, 0.0);
  gw.assign(p.rows * p.out_channels * p.in_per_group * p.kernel_size, 0.0);
  gb.assign(p.rows * p.out_channels, 0.0);
  for (int64_t b = 0; b < p.batch; ++b)
    for (int64_t co = 0; co < p.out_channels; ++co)
      for (int64_t h = 0; h < p.rows; ++h)
        for (int64_t t = 0; t < p.out_width; ++t) {
          const int64_t o = p.output_offset(b, co, h, t);
          y[o] += bias[p.bias_offset(h, co)];
          gb[p.bias_offset(h, co)] += gy[o];
          for (int64_t c = 0; c < p.in_per_group; ++c)
            for (int64_t k = 0; k < p.kernel_size; ++k) {
              const int64_t pos = p.input_position(t, k);
              if (pos < 0 || pos >= p.width) continue;
              const int64_t xi = p.in_offset(b, co / p.out_per_group * p.in_per_group + c, h, pos);
              const int64_t wi = p.weight_offset(h, co, c, k);
              y[o] += w[wi] * x[xi];
              gx[xi] += w[wi] * gy[o];
              gw[wi] += x[xi] * gy[o];
            }
        }
}

template <typename T>
bool close(const char* what, const std::vector<T>& got, const std::vector<double>& want, double tol) {
  for (size_t i = 0; i < want.size(); ++i) {
    const double g = static_cast<double>(got[i]);
    if (!(std::fabs(g - want[i]) <= tol * (1.0 + std::fabs(want[i])))) {
      std::printf("  %s[%zu] = %.9g, expected %.9g\n", what, i, g, want[i]);
      return false;
    }
  }
  return true;
}

template <typename T>
bool run_case(const Case& c, int64_t shared_bytes, double tol, std::mt19937& rng) {
  const RowConvParams p = params_of(c);
  std::normal_distribution<double> normal;
  auto draw = [&](int64_t n) {
    std::vector<T> v(n);
    for (auto& e : v) e = static_cast<T>(normal(rng));
    return v;
  };
  auto widen = [](const std::vector<T>& v) { return std::vector<double>(v.begin(), v.end()); };
  const auto x = draw(c.B * c.cin * c.H * c.W), w = draw(c.H * c.cout * (c.cin / c.groups) * c.K);
  const auto bias = draw(c.H * c.cout), gy = draw(c.B * c.cout * c.H * p.out_width);
  std::vector<T> y(gy.size()), gx(x.size()), gw(w.size()), gb(bias.size());
  const rc::emu::Launch launch;
  rc::launch_forward<T>(launch, p, x.data(), w.data(), bias.data(), y.data(), shared_bytes);
#ifndef ROWCONV_PLANTED_MISSING_BARRIER
  rc::launch_grad_input<T>(launch, p, gy.data(), w.data(), gx.data(), shared_bytes);
  std::vector<at::opmath_type<T>> workspace;
  const auto room = [&](int64_t n) { return workspace.resize(n), workspace.data(); };
  rc::launch_grad_weight<T>(launch, p, gy.data(), x.data(), gw.data(), room, shared_bytes);
  rc::launch_grad_bias<T>(launch, p, gy.data(), gb.data(), room);
#endif
  std::vector<double> ry, rgx, rgw, rgb;
  reference(p, widen(x), widen(w), widen(bias), widen(gy), ry, rgx, rgw, rgb);
  bool ok = close("y", y, ry, tol);
#ifndef ROWCONV_PLANTED_MISSING_BARRIER
  ok = close("grad_x", gx, rgx, tol) && close("grad_w", gw, rgw, tol) && close("grad_b", gb, rgb, tol) && ok;
#endif
  return ok;
}

}  // namespace

int main() {
  std::mt19937 rng(2026);
  // (B, Cin, H, W, Cout, K, stride, pad_left, pad_right, dilation, groups)
  const std::vector<Case> cases = {
      {2, 4, 2, 37, 6, 3, 1, 1, 1, 1, 1},    // 8 channels per thread (partial), K = 3
      {1, 1, 2, 129, 1, 5, 1, 2, 2, 1, 1},   // depthwise, 4 positions per thread (2 in float64)
      {2, 2, 1, 33, 2, 4, 2, 3, 1, 2, 1},    // 4 per thread, strided grad-input
      {1, 6, 1, 32, 9, 2, 1, 0, 0, 1, 3},    // groups
      {1, 5, 1, 20, 10, 7, 3, 18, 0, 3, 5},  // causal, stride 3, dilation 3
      {3, 2, 1, 5, 3, 5, 1, 0, 0, 1, 1},     // Wout = 1
      {1, 12, 1, 130, 72, 3, 1, 1, 1, 1, 1},  // lanes: 9 channel blocks in 2 blocks, an idle lane
      {2, 3, 2, 50, 6, 1, 1, 0, 0, 1, 3},    // depthwise multiplier 2, K = 1
      {2, 16, 1, 40, 12, 6, 2, 2, 3, 2, 2},  // groups of 8 in / 6 out, 8 taps per thread tile
      {1, 3, 1, 700, 3, 13, 1, 12, 0, 1, 3},  // depthwise sliding window (13 taps: 5 + 5 + 3), causal, 2 tiles
      {1, 2, 1, 600, 4, 3, 1, 1, 1, 1, 1},   // 4 positions per thread, a partial second tile
  };
  const int64_t budgets[] = {rc::kDefaultSharedBytes, 1024, 8};  // one chunk, several, direct
  int passed = 0, failed = 0;
#ifdef ROWCONV_PLANTED_MISSING_BARRIER
  // Several chunks: without the barrier the next chunk's loads race the reads.
  const bool ok = run_case<float>({1, 8, 1, 64, 4, 5, 1, 2, 2, 1, 1}, 1024, 1e-4, rng);
  std::printf("%d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
  return ok ? 0 : 1;
#endif
  for (const Case& c : cases) {
    for (int64_t budget : budgets) {
      // float32: sums of a few dozen products; float16 results carry one rounding of 2^-11.
      const bool results[] = {run_case<float>(c, budget, 1e-5, rng), run_case<double>(c, budget, 1e-12, rng),
                              run_case<c10::Half>(c, budget, 4e-3, rng)};
      for (bool r : results) r ? ++passed : ++failed;
      if (!(results[0] && results[1] && results[2]))
        std::printf("FAILED: case W=%ld K=%ld budget=%ld\n", static_cast<long>(c.W), static_cast<long>(c.K),
                    static_cast<long>(budget));
    }
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
