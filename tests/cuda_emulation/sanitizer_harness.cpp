// The CUDA kernels run by the CPU emulator under sanitizers, without torch,
// against a naive float64 reference, in float32, float64 and float16.
// Two sets of problems (argv[1]):
//  "tsan": every kernel specialisation the launchers can pick, each on a
//    small grid: per scalar type (acc = float for float32/float16, double
//    for float64; W = 8 channels and P = 4 positions per thread with a
//    4-byte acc, W = 4 and P = 2 with double)
//      row_conv1d_forward_tiled<kOut 1|4|W, kPos 1|P, kTaps 3|0, no slide>
//        and <1, 5, 0, sliding window>,
//      row_conv1d_grad_input_tiled<kIn 1|4|W, kPos 1|P, unit stride or not>,
//      row_conv1d_grad_weight_tiled<kRows 1|4, kTaps 1|2|3|4|5|8>,
//      row_conv1d_forward_direct, row_conv1d_grad_input_direct,
//      row_conv1d_grad_weight_direct<kTaps 4|8>, row_conv1d_grad_bias_partial,
//      row_conv1d_sum_splits (grad-weight and grad-bias split over blocks),
//      row_conv1d_update (the decode step: shifted and circular state,
//        pooled rows, skipped entries, T above S, a capped grid):
//    124 instantiations; the rows of kPos = P cross a tile border (partial
//    last tile), kPos = 1 rows fill whole warps, 9 channels of 8 (4) per
//    thread take two lanes (one partial); each at the "chunked" budget (the
//    kernel picked at 48 KiB, over two or more shared-memory chunks: see
//    Budget) with the grid capped at 2 blocks (several blocks, each striding
//    over several of its tiles), and the direct kernels on a block or two.
//  "asan": those, the same at 48 KiB (one chunk) on the full grid, and the
//    larger problems below at 48 KiB, chunked and (but for two whose direct
//    grids take minutes) 8 bytes, too small for one channel: the direct
//    kernels; several lanes and idle lanes, groups, causal and
//    strided/dilated convolutions, Wout = 1.
// ThreadSanitizer's time goes where a race would be (barriers between
// chunks, block sums); it costs about a millisecond a CUDA thread, so its
// set keeps grids small. Each case's time is printed.
// Both sets run causal cases with a prefix (the carried state read before x,
// every second element of its buffer: strided): the forward and grad-weight
// kernels then read positions < 0 from it, in the tiles' edges and in the
// direct kernels.
// With a second argument, writes the kernels launched (one a line, with the
// launch count and the largest grid) to that file: scripts/cuda_sanitizers.sh
// checks that the "tsan" set launches every kernel the "asan" set does.
// Built by scripts/cuda_sanitizers.sh with AddressSanitizer + UBSan and with
// ThreadSanitizer; with -DROWCONV_PLANTED_MISSING_BARRIER it is the
// self-test that ThreadSanitizer must fail. Prints "N passed, M failed".
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "cuda/launch.h"

using rowconv::RowConvParams;
namespace rc = rowconv::cuda;

namespace {

struct Case {
  int64_t B, cin, H, W, cout, K, stride, pad_left, pad_right, dilation, groups;
  bool prefix = false;  // a prefix of pad_left positions (causal cases only)
  bool asan_only = false;  // not in the "tsan" set (nothing there it would add)
};

// The shared-memory budget a case runs at, for each launcher of its own:
//  kOneChunk: 48 KiB, a GPU's default (the whole channel group in one chunk);
//  kChunked: the most a launcher can have and still not fit the one chunk it
//    took at 48 KiB (found by a dry run): the same tiled kernel over two or
//    more chunks (or shorter tiles), the barriers between them exercised;
//  kDirect: 8 bytes, too small for one channel: the direct kernels.
enum class Budget { kOneChunk, kChunked, kDirect };
const char* name_of(Budget b) {
  return b == Budget::kOneChunk ? "one chunk" : b == Budget::kChunked ? "chunked" : "direct";
}

constexpr int64_t kPrefixStep = 2;  // the prefix's element stride in its buffer

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
  if (c.prefix) {  // (B, Cin, H, pad_left), every kPrefixStep-th element of its buffer
    p.prefix_width = c.pad_left;
    p.pre_stride_w = kPrefixStep, p.pre_stride_h = kPrefixStep * c.pad_left;
    p.pre_stride_c = p.pre_stride_h * c.H, p.pre_stride_b = p.pre_stride_c * c.cin;
  }
  return p;
}

// Naive float64 reference: every term of every output. Positions
// [-prefix_width, 0) read `prefix` (laid out as params_of says); grad_x is
// x's part only (the prefix's is the op layer's grad-input at width S + W).
void reference(const RowConvParams& p, const std::vector<double>& x, const std::vector<double>& prefix,
               const std::vector<double>& w, const std::vector<double>& bias, const std::vector<double>& gy,
               std::vector<double>& y, std::vector<double>& gx, std::vector<double>& gw,
               std::vector<double>& gb) {
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
              const int64_t ci = co / p.out_per_group * p.in_per_group + c;
              const int64_t wi = p.weight_offset(h, co, c, k);
              if (pos < 0 && pos >= -p.prefix_width) {
                const double v = prefix[(((b * p.in_channels + ci) * p.rows + h) * p.prefix_width +
                                         pos + p.prefix_width) * kPrefixStep];
                y[o] += w[wi] * v;
                gw[wi] += v * gy[o];
              }
              if (pos < 0 || pos >= p.width) continue;
              const int64_t xi = p.in_offset(b, ci, h, pos);
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

// The emulator's launcher with the grid capped at `cap` blocks: the
// kernels' grid-stride loops then run several blocks' work in one block.
struct CappedLaunch {
  int64_t cap;
  template <typename F, typename... Args>
  void operator()(const rc::Kernel<F>& kernel, int64_t grid, int64_t block, int64_t shared_bytes,
                  Args... args) const {
    rc::emu::Launch{}(kernel, std::min(grid, cap), block, shared_bytes, args...);
  }
};

// A launcher that runs nothing and keeps the first kernel it is given (the
// main one: grad-weight's sum of splits follows it) and its shared memory.
struct DryLaunch {
  std::string* kernel;
  int64_t* shared_bytes;
  template <typename F, typename... Args>
  void operator()(const rc::Kernel<F>& k, int64_t, int64_t, int64_t bytes, Args...) const {
    if (!kernel->empty()) return;
    *kernel = rc::emu::kernel_of(k.name);
    *shared_bytes = bytes;
  }
};

// The budget to hand `launcher(launch, budget)` for `b` (see Budget).
template <typename Launcher>
int64_t budget_for(Budget b, const Launcher& launcher) {
  if (b == Budget::kOneChunk) return rc::kDefaultSharedBytes;
  if (b == Budget::kDirect) return 8;
  auto pick = [&](int64_t budget, int64_t* bytes) {
    std::string kernel;
    launcher(DryLaunch{&kernel, bytes}, budget);
    return kernel;
  };
  int64_t one_chunk = 0, bytes = 0;
  const std::string tiled = pick(rc::kDefaultSharedBytes, &one_chunk);
  // one byte short of the one chunk; where that is no longer the tiled kernel
  // (one channel: nothing to split), the one chunk again
  return one_chunk > 0 && pick(one_chunk - 1, &bytes) == tiled ? one_chunk - 1 : rc::kDefaultSharedBytes;
}

template <typename T>
bool run_case(const Case& c, Budget budget, int64_t grid_cap, double tol, std::mt19937& rng) {
  RowConvParams p = params_of(c);
  std::normal_distribution<double> normal;
  auto draw = [&](int64_t n) {
    std::vector<T> v(n);
    for (auto& e : v) e = static_cast<T>(normal(rng));
    return v;
  };
  auto widen = [](const std::vector<T>& v) { return std::vector<double>(v.begin(), v.end()); };
  const auto x = draw(c.B * c.cin * c.H * c.W), w = draw(c.H * c.cout * (c.cin / c.groups) * c.K);
  const auto bias = draw(c.H * c.cout), gy = draw(c.B * c.cout * c.H * p.out_width);
  const auto prefix = draw(c.prefix ? c.B * c.cin * c.H * c.pad_left * kPrefixStep : 0);
  if (c.prefix) p.prefix = prefix.data();
  std::vector<T> y(gy.size()), gx(x.size()), gw(w.size()), gb(bias.size());
  const CappedLaunch launch{grid_cap};
  std::vector<at::opmath_type<T>> workspace;
  const auto room = [&](int64_t n) { return workspace.resize(n), workspace.data(); };
  const auto forward = [&](const auto& l, int64_t bytes) {
    rc::launch_forward<T>(l, p, x.data(), w.data(), bias.data(), y.data(), bytes);
  };
  const auto grad_input = [&](const auto& l, int64_t bytes) {
    rc::launch_grad_input<T>(l, p, gy.data(), w.data(), gx.data(), bytes);
  };
  const auto grad_weight = [&](const auto& l, int64_t bytes) {
    rc::launch_grad_weight<T>(l, p, gy.data(), x.data(), gw.data(), room, bytes);
  };
  forward(launch, budget_for(budget, forward));
#ifndef ROWCONV_PLANTED_MISSING_BARRIER
  grad_input(launch, budget_for(budget, grad_input));
  grad_weight(launch, budget_for(budget, grad_weight));
  rc::launch_grad_bias<T>(launch, p, gy.data(), gb.data(), room);
#endif
  std::vector<double> ry, rgx, rgw, rgb;
  reference(p, widen(x), widen(prefix), widen(w), widen(bias), widen(gy), ry, rgx, rgw, rgb);
  bool ok = close("y", y, ry, tol);
#ifndef ROWCONV_PLANTED_MISSING_BARRIER
  ok = close("grad_x", gx, rgx, tol) && close("grad_w", gw, rgw, tol) && close("grad_b", gb, rgb, tol) && ok;
#endif
  return ok;
}

std::map<std::string, std::pair<int64_t, unsigned>> launched;  // kernel: (launches, largest grid)
std::mutex launched_mutex;

bool print_launches = false;  // "one": every launch printed

void record_launch(const char* name, unsigned grid, unsigned block, size_t shared_bytes) {
  const std::lock_guard<std::mutex> lock(launched_mutex);
  if (print_launches)
    std::printf("  launch %s: %u blocks of %u threads, %zu bytes of shared memory\n", rc::emu::kernel_of(name).c_str(),
                grid, block, shared_bytes);
  auto& entry = launched[rc::emu::kernel_of(name)];
  ++entry.first;
  entry.second = std::max(entry.second, grid);
}

// (B, Cin, H, W, Cout, K, stride, pad_left, pad_right, dilation, groups)
// Every specialisation: the forward's kOut follows Cout / groups, its kPos
// Wout, kTaps K; grad-input's kIn follows Cin / groups, kPos W, the unit
// stride; grad-weight's kRows Cout / groups (>= 4: 4), kTaps K (> 5: 8).
// Short rows of 64 positions (kPos 1: every thread of a lane of 64, or of 32
// for the 32 outputs of stride 2, owns a position); long rows of 520 or 1100
// positions (kPos P: tiles of 512, 256 in float64, the last one partial).
const std::vector<Case> kSpecialisations = {
    {1, 1, 1, 64, 1, 3, 1, 1, 1, 1, 1},      // fwd <1, 1, 3>, gi <1, 1, unit>, gw <1, 3>
    {2, 1, 1, 64, 1, 1, 2, 0, 0, 1, 1},      // fwd <1, 1, 0>, gi <1, 1, strided>, gw <1, 1>, split sums
    {1, 1, 2, 520, 1, 3, 1, 1, 1, 1, 1},     // fwd <1, P, 3>, gi <1, P, unit>
    {1, 1, 1, 1100, 1, 2, 2, 1, 0, 1, 1},    // fwd <1, P, 0>, gi <1, P, strided>, gw <1, 2>
    {1, 3, 1, 64, 4, 3, 1, 1, 1, 1, 1},      // fwd <4, 1, 3>, gi <4, 1, unit>, gw <4, 3>
    {2, 3, 1, 130, 4, 1, 2, 0, 0, 1, 1},     // fwd <4, P, 0>, gi <4, P, strided>, gw <4, 1>, split sums
    {1, 3, 1, 520, 4, 3, 1, 1, 1, 1, 1},     // fwd <4, P, 3>, gi <4, P, unit>
    {1, 3, 1, 1100, 4, 2, 2, 0, 1, 1, 1},    // fwd <4, P, 0>, gi <4, P, strided>, gw <4, 2>
    {1, 9, 1, 64, 9, 3, 1, 1, 1, 1, 1},      // fwd <W, 1, 3>, gi <W, 1, unit>, two lanes
    {1, 9, 1, 64, 9, 4, 2, 2, 1, 1, 1},      // fwd <W, 1, 0>, gi <W, 1, strided>, gw <4, 4>
    {1, 9, 1, 520, 9, 3, 1, 1, 1, 1, 1},     // fwd <W, P, 3>, gi <W, P, unit>
    {1, 9, 1, 1100, 9, 5, 2, 2, 2, 1, 1},    // fwd <W, P, 0>, gi <W, P, strided>, gw <4, 5>
    {1, 1, 1, 520, 1, 13, 1, 12, 0, 1, 1},   // fwd sliding window <1, 5, 0, slide> (13 taps: 5 + 5 + 3), gw <1, 8>
    {1, 2, 1, 64, 2, 4, 1, 2, 1, 1, 1},      // fwd <4, 1, 0>, gi <4, 1, unit>, gw <1, 4>
    {2, 3, 1, 64, 3, 5, 1, 2, 2, 1, 1},      // fwd <4, 1, 0>, gw <1, 5>, split sums
    {1, 8, 1, 64, 8, 6, 2, 2, 3, 2, 2},      // groups of 4, fwd <4, 1, 0>, gi <4, 1, strided>, gw <4, 8>
    // causal with a prefix: positions < 0 read from it
    {1, 3, 1, 64, 4, 3, 1, 2, 0, 1, 1, true},      // fwd <4, 1, 3>, gw <4, 3>
    {2, 9, 2, 70, 9, 4, 1, 6, 0, 2, 1, true},      // fwd <W, P, 0>, gw <4, 4>, dilation 2
    {1, 1, 1, 520, 1, 13, 1, 12, 0, 1, 1, true},   // fwd sliding window, gw <1, 8>
    {1, 2, 1, 3, 2, 4, 1, 6, 0, 2, 1, true},       // W < prefix: every output reads it
};
// The direct kernels (a budget of 8 bytes): grad-weight with 4 and 8 taps.
// ThreadSanitizer pays for every thread (one OS thread each): its two have
// a block or two of grad-weight (block sums, barriers); the others add
// nothing a race would need.
const std::vector<Case> kDirect = {
    {1, 1, 1, 40, 1, 3, 1, 1, 1, 1, 1},                // grad-weight <4>, one block
    {1, 2, 1, 12, 2, 6, 2, 3, 1, 2, 2},                // grad-weight <8>, groups, stride, dilation
    {2, 2, 1, 40, 3, 3, 1, 1, 1, 1, 1, false, true},
    {1, 4, 2, 33, 4, 6, 2, 3, 1, 2, 2, false, true},
    {2, 2, 1, 40, 3, 3, 1, 2, 0, 1, 1, true, true},   // a prefix
    {1, 4, 2, 5, 4, 6, 1, 10, 0, 2, 2, true, true},   // a prefix longer than x
};
// Larger problems, for AddressSanitizer + UBSan, at 48 KiB and 1 KiB, and at
// 8 bytes (the direct kernels) where their grids stay modest.
struct Larger {
  Case c;
  bool direct;  // also at 8 bytes
};
const std::vector<Larger> kLarger = {
    {{2, 4, 2, 37, 6, 3, 1, 1, 1, 1, 1}, true},  // 8 channels per thread (partial), K = 3
    {{1, 1, 2, 129, 1, 5, 1, 2, 2, 1, 1}, true},  // depthwise, 4 positions per thread (2 in float64)
    {{2, 2, 1, 33, 2, 4, 2, 3, 1, 2, 1}, true},  // 4 per thread, strided grad-input
    {{1, 6, 1, 32, 9, 2, 1, 0, 0, 1, 3}, true},  // groups
    {{1, 5, 1, 20, 10, 7, 3, 18, 0, 3, 5}, true},  // causal, stride 3, dilation 3
    {{3, 2, 1, 5, 3, 5, 1, 0, 0, 1, 1}, true},  // Wout = 1
    {{1, 12, 1, 130, 72, 3, 1, 1, 1, 1, 1}, false},  // lanes: 9 channel blocks in 2 blocks, an idle lane (direct: grad-weight in 864 blocks of 256 threads)
    {{2, 3, 2, 50, 6, 1, 1, 0, 0, 1, 3}, true},  // depthwise multiplier 2, K = 1
    {{2, 16, 1, 40, 12, 6, 2, 2, 3, 2, 2}, false},  // groups of 8 in / 6 out, 8 taps per thread tile (direct: grad-weight in 96 blocks of 8 block sums each)
    {{1, 3, 1, 700, 3, 13, 1, 12, 0, 1, 3}, true},  // depthwise sliding window (13 taps: 5 + 5 + 3), causal, 2 tiles
    {{1, 2, 1, 600, 4, 3, 1, 1, 1, 1, 1}, true},  // 4 positions per thread, a partial second tile
    {{1, 5, 1, 20, 10, 7, 1, 18, 0, 3, 5, true}, true},  // a prefix, dilation 3, groups
    {{1, 3, 1, 700, 3, 13, 1, 12, 0, 1, 3, true}, true},  // a prefix, depthwise sliding window, 2 tiles
};

// The decode step (row_conv1d_update): a pool of state rows, shifted or
// circular, entries skipped or not, T below and above S. The reference
// unrolls each state row oldest first, z = [held inputs, x], and takes the
// causal outputs and the last S inputs of z.
struct UpdateCase {
  int64_t B, cin, H, T, cout, K, dilation, groups, extra_state, pool;
  bool circular, pooled;
};

template <typename T>
bool run_update_case(const UpdateCase& c, int64_t grid_cap, double tol, std::mt19937& rng) {
  rowconv::RowConvUpdateParams p{};
  const int64_t history = c.dilation * (c.K - 1);
  // the new steps as a causal convolution, contiguous
  p.conv = params_of({c.B, c.cin, c.H, c.T, c.cout, c.K, 1, history, 0, c.dilation, c.groups});
  const int64_t S = history + c.extra_state, pool = c.pooled ? c.pool : c.B;
  p.state_len = S, p.pool_size = pool, p.channel_parts = 1;
  // a state laid out (pool, H, S, Cin): permuted, as a view of the caller's would be
  p.state_stride_c = 1, p.state_stride_s = c.cin, p.state_stride_h = S * c.cin;
  p.state_stride_b = c.H * S * c.cin, p.state_stride_part = 0;
  std::normal_distribution<double> normal;
  auto draw = [&](int64_t n) {
    std::vector<T> v(n);
    for (auto& e : v) e = static_cast<T>(normal(rng));
    return v;
  };
  const auto x = draw(c.B * c.cin * c.H * c.T), w = draw(c.H * c.cout * p.conv.in_per_group * c.K);
  const auto bias = draw(c.H * c.cout);
  auto state = draw(pool * c.H * S * c.cin);
  const std::vector<T> old_state = state;
  std::vector<int64_t> seqlens(c.B), indices(c.B);
  std::vector<int64_t> rows(pool);
  for (int64_t r = 0; r < pool; ++r) rows[r] = r;
  std::shuffle(rows.begin(), rows.end(), rng);
  for (int64_t b = 0; b < c.B; ++b) {
    seqlens[b] = static_cast<int64_t>(rng() % 50);
    // every third entry skipped; some rows past the pool, which the kernel
    // skips too (what it sees from a CUDA graph's capture, where the host
    // cannot read the indices to refuse them)
    indices[b] = b % 3 == 1 ? -1 : b % 5 == 3 ? pool + b : rows[b];
  }
  const int64_t* sl = c.circular ? seqlens.data() : nullptr;
  const int64_t* ix = c.pooled ? indices.data() : nullptr;
  std::vector<T> y(c.B * c.cout * c.H * c.T);
  rc::launch_update<T>(CappedLaunch{grid_cap}, p, x.data(), state.data(), w.data(), bias.data(), sl, ix,
                       y.data());
  std::vector<double> ry(y.size(), 0.0), rstate(old_state.begin(), old_state.end());
  for (int64_t b = 0; b < c.B; ++b) {
    const int64_t row = c.pooled ? indices[b] : b;
    if (row < 0 || row >= pool) continue;
    const int64_t start = c.circular ? seqlens[b] % S : 0;  // position of the oldest held input
    for (int64_t h = 0; h < c.H; ++h) {
      std::vector<std::vector<double>> z(c.cin, std::vector<double>(S + c.T));
      for (int64_t ci = 0; ci < c.cin; ++ci) {
        for (int64_t i = 0; i < S; ++i)
          z[ci][i] = static_cast<double>(old_state[p.state_row_offset(row, ci, h) + (start + i) % S * p.state_stride_s]);
        for (int64_t t = 0; t < c.T; ++t) z[ci][S + t] = static_cast<double>(x[p.conv.in_offset(b, ci, h, t)]);
        // the newest S, oldest first from position (start + T) % S (circular) or 0 (shifted)
        const int64_t new_start = c.circular ? (start + c.T) % S : 0;
        for (int64_t i = 0; i < S; ++i)
          rstate[p.state_row_offset(row, ci, h) + (new_start + i) % S * p.state_stride_s] = z[ci][c.T + i];
      }
      for (int64_t co = 0; co < c.cout; ++co)
        for (int64_t t = 0; t < c.T; ++t) {
          double acc = static_cast<double>(bias[p.conv.bias_offset(h, co)]);
          const int64_t g = co / p.conv.out_per_group;
          for (int64_t ci = 0; ci < p.conv.in_per_group; ++ci)
            for (int64_t k = 0; k < c.K; ++k)
              acc += static_cast<double>(w[p.conv.weight_offset(h, co, ci, k)]) *
                     z[g * p.conv.in_per_group + ci][S + t - (c.K - 1 - k) * c.dilation];
          ry[p.conv.output_offset(b, co, h, t)] = acc;
        }
    }
  }
  bool ok = close("update y", y, ry, tol);
  for (size_t i = 0; i < state.size(); ++i)  // copies: exact
    if (static_cast<double>(state[i]) != rstate[i]) {
      std::printf("  update state[%zu] = %.9g, expected %.9g\n", i, static_cast<double>(state[i]), rstate[i]);
      return false;
    }
  return ok;
}

// (B, Cin, H, T, Cout, K, dilation, groups, extra state, pool, circular, pooled)
const std::vector<UpdateCase> kUpdateCases = {
    {3, 2, 2, 1, 3, 3, 1, 1, 0, 3, false, false},   // one step, shifted
    {4, 4, 3, 2, 6, 4, 2, 2, 1, 7, true, true},     // circular, pooled, groups
    {2, 3, 1, 9, 3, 3, 1, 3, 1, 2, false, false},   // T > S, depthwise, shifted
    {5, 3, 2, 11, 3, 3, 2, 3, 0, 9, true, true},    // T > S: the circular buffer wraps
    {70, 1, 3, 1, 1, 4, 1, 1, 0, 80, false, true},  // many items: several blocks of 128 threads
    {2, 2, 2, 3, 40, 2, 1, 1, 2, 2, true, false},   // 120 (channel, step) pairs per item
};

}  // namespace

int main(int argc, char** argv) {
  rc::emu::on_launch = record_launch;
  std::mt19937 rng(2026);
  int passed = 0, failed = 0;
  // Each case's time goes to the log: the sanitizer stage's budget is spent
  // where these say (ThreadSanitizer runs one OS thread per CUDA thread).
  auto seconds_since = [](std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  auto run = [&](const Case& c, Budget budget, int64_t grid_cap) {
    const auto t0 = std::chrono::steady_clock::now();
    // float32 and float64: rounding errors of sums of n products grow like
    // sqrt(n) (n: the longest reduction, of grad-input, forward or
    // grad-weight), 1e-5 up to 16 terms; float16 results carry one rounding of 2^-11.
    const int64_t n = std::max({c.cout / c.groups * c.K, c.cin / c.groups * c.K, c.B * c.W});
    const double growth = std::max(1.0, std::sqrt(static_cast<double>(n) / 16.0));
    const bool results[] = {run_case<float>(c, budget, grid_cap, 1e-5 * growth, rng),
                            run_case<double>(c, budget, grid_cap, 1e-12 * growth, rng),
                            run_case<c10::Half>(c, budget, grid_cap, 4e-3, rng)};
    for (bool r : results) r ? ++passed : ++failed;
    if (!(results[0] && results[1] && results[2]))
      std::printf("FAILED: ");
    std::printf("%7.2f s  case B=%ld Cin=%ld H=%ld W=%ld Cout=%ld K=%ld stride=%ld prefix=%d, %s, grid cap %ld\n",
                seconds_since(t0), static_cast<long>(c.B), static_cast<long>(c.cin), static_cast<long>(c.H),
                static_cast<long>(c.W), static_cast<long>(c.cout), static_cast<long>(c.K),
                static_cast<long>(c.stride), c.prefix ? 1 : 0, name_of(budget), static_cast<long>(grid_cap));
    std::fflush(stdout);
  };
#ifdef ROWCONV_PLANTED_MISSING_BARRIER
  // Several chunks: without the barrier the next chunk's loads race the reads.
  const bool ok = run_case<float>({1, 8, 1, 64, 4, 5, 1, 2, 2, 1, 1}, Budget::kChunked, INT64_MAX, 1e-4, rng);
  std::printf("%d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
  return ok ? 0 : 1;
#endif
  const std::string set = argc > 1 ? argv[1] : "asan";
  if (set == "one" && argc == 16) {  // one case, to time or debug it: its 12 fields, the budget and the grid cap
    int64_t v[14];
    for (int i = 0; i < 14; ++i) v[i] = std::stoll(argv[2 + i]);
    print_launches = true;
    run({v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11] != 0}, static_cast<Budget>(v[12]),
        v[13]);
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
  }
  if (set != "tsan" && set != "asan") {
    std::fprintf(stderr,
                 "usage: %s tsan|asan [kernels.txt]\n"
                 "       %s one B Cin H W Cout K stride pad_left pad_right dilation groups prefix budget grid_cap\n"
                 "         (budget: 0 one chunk, 1 chunked, 2 direct)\n",
                 argv[0], argv[0]);
    return 2;
  }
  const bool asan = set == "asan";
  // ThreadSanitizer: the chunked budget on a grid capped at 2 blocks (several
  // chunks and tiles a block, barriers between them, several blocks): where
  // a race would be; AddressSanitizer: the one chunk on the full grid too.
  for (const Case& c : kSpecialisations) {
    if (asan) run(c, Budget::kOneChunk, INT64_MAX);
    if (asan || !c.asan_only) run(c, Budget::kChunked, 2);
  }
  for (const Case& c : kDirect)
    if (asan || !c.asan_only) run(c, Budget::kDirect, INT64_MAX);
  for (const UpdateCase& c : kUpdateCases)
    for (int64_t grid_cap : {INT64_MAX, int64_t{1}}) {  // a capped grid: blocks stride over several
      const auto t0 = std::chrono::steady_clock::now();
      const bool results[] = {run_update_case<float>(c, grid_cap, 1e-5, rng),
                              run_update_case<double>(c, grid_cap, 1e-12, rng),
                              run_update_case<c10::Half>(c, grid_cap, 4e-3, rng)};
      for (bool r : results) r ? ++passed : ++failed;
      if (!(results[0] && results[1] && results[2]))
        std::printf("FAILED: update case B=%ld T=%ld K=%ld grid cap=%ld\n", static_cast<long>(c.B),
                    static_cast<long>(c.T), static_cast<long>(c.K), static_cast<long>(grid_cap));
      std::printf("%7.2f s  update case B=%ld Cin=%ld H=%ld T=%ld Cout=%ld K=%ld grid cap=%ld\n", seconds_since(t0),
                  static_cast<long>(c.B), static_cast<long>(c.cin), static_cast<long>(c.H), static_cast<long>(c.T),
                  static_cast<long>(c.cout), static_cast<long>(c.K), static_cast<long>(grid_cap));
      std::fflush(stdout);
    }
  if (asan)
    for (const Larger& l : kLarger)
      for (Budget budget : {Budget::kOneChunk, Budget::kChunked, Budget::kDirect})
        if (budget != Budget::kDirect || l.direct) run(l.c, budget, INT64_MAX);
  std::printf("%s set: %d passed, %d failed, %zu kernels launched\n", set.c_str(), passed, failed, launched.size());
  if (argc > 2) {
    FILE* f = std::fopen(argv[2], "w");
    if (f == nullptr) return 2;
    for (const auto& [kernel, entry] : launched)
      std::fprintf(f, "%s\t%ld launches\tgrid <= %u\n", kernel.c_str(), static_cast<long>(entry.first), entry.second);
    std::fclose(f);
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
