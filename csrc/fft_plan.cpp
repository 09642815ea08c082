// The cost model of fft_plan.h. Each term counts work the way
// row_conv1d_fft.cpp does it.
#include "fft_plan.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace rowconv::fft {
namespace {

// Measured on our CPU machines by rowconv_ext.method.measure_cost_constants
// (float32, 2 threads, stable allocator): AMD EPYC Zen 4, 32 KiB L1d, with
// the CPU's own channel mix (benchmarks/results/cost_model_cpu.json). Zen 5's
// fit (cost_model_cpu_zen5.json, before that mix) had a direct multiply-add
// 1.9x cheaper and a transform point 1.5x: there the direct method is 1.2x
// cheaper against the FFT than these constants say.
CostConstants cpu_constants{9.2e-12, 2.41e-13, 1.17e-05, 6.27e-11, 1.05e-10, 2.64e-08, 3.97e-10, 5.28e-05};
// Not measured yet (no GPU run): the CPU's divided by the H200's advantage
// (about 150x the FMA rate, 100x the memory bandwidth), with launch costs of
// 10 us per kernel; scripts/gpu_session.sh measures them (cost_model_cuda.json).
CostConstants cuda_constants{3e-14, 5.6e-14, 1e-5, 4e-13, 1.3e-12, 1e-10, 7.7e-12, 1e-4};

// Transform lengths: odd * 2^a for a few small odd parts, with at least a
// factor 8 of two beside a part above 1. MKL, pocketfft and cuFFT cost the same
// per point (n log2 n) on these within 10% (measured: 9216, 10240, 11520,
// 12288, 15360 rows), while lengths that are mostly odd (729 = 3^6, 1215 =
// 5 * 3^5) measured up to 1.7x slower per point than the model. The odd parts
// keep consecutive lengths within 12% of each other, so a transform is never
// much longer than needed.
template <class Visit>
void for_each_length(int64_t lowest, int64_t highest, Visit visit) {
  for (const int64_t odd : {1, 3, 5, 9, 15, 25, 27, 45}) {
    for (int64_t n = odd == 1 ? 1 : odd * 8; n <= highest; n *= 2) {
      if (n >= lowest) visit(n);
    }
  }
}

// The smallest transform length >= n.
int64_t next_length(int64_t n) {
  int64_t best = std::numeric_limits<int64_t>::max();
  for_each_length(n, 2 * n, [&](int64_t m) { best = std::min(best, m); });
  return best;
}

}  // namespace

CostConstants& cost_constants(c10::DeviceType device) {
  return device == c10::DeviceType::CUDA ? cuda_constants : cpu_constants;
}

bool one_circular_block(const RowConvParams& p, int64_t n) {
  return n >= p.width + std::max(p.pad_left, p.pad_right) && n >= p.stride1_outputs();
}

CostTerms cost_terms(const RowConvParams& p, bool complex, int64_t block) {
  const double c = complex ? 2.0 : 1.0;
  const double blocks = one_circular_block(p, block)
                            ? 1.0
                            : static_cast<double>(ceil_div(p.stride1_outputs(), block - p.span() + 1));
  const double n = static_cast<double>(block);
  const double freqs = complex ? n : std::floor(n / 2) + 1;
  const double rows = static_cast<double>(p.rows), batch = static_cast<double>(p.batch);
  const double pairs = static_cast<double>(p.out_channels * p.in_per_group);
  const double signals = batch * static_cast<double>(p.in_channels + p.out_channels) * rows * blocks;
  CostTerms t{};
  t.direct_macs = (complex ? 4.0 : 1.0) * batch * rows * pairs *
                  static_cast<double>(p.kernel_size * p.out_width);
  t.narrow_macs = t.direct_macs / static_cast<double>(std::clamp<int64_t>(p.out_per_group, 1, 8));
  t.transform_points = c * (signals + rows * pairs) * n * std::log2(std::max(n, 2.0));
  t.mix_macs = rows * freqs * batch * blocks * pairs;
  // depthwise mixes are products per frequency, not matrices
  t.mix_matrices = p.in_per_group == 1 && p.out_per_group == 1
                       ? 0.0
                       : rows * static_cast<double>(p.groups) * freqs;
  t.spectrum_elements = signals * freqs;
  return t;
}

double direct_seconds(const CostConstants& c, const CostTerms& t) {
  return c.direct_call + c.direct_mac * t.direct_macs + c.direct_narrow * t.narrow_macs;
}

double fft_seconds(const CostConstants& c, const CostTerms& t) {
  return c.fft_call + c.fft_point * t.transform_points + c.fft_mix * t.mix_macs +
         c.fft_matrix * t.mix_matrices + c.fft_pass * t.spectrum_elements;
}

int64_t planned_block(const RowConvParams& p, bool complex, c10::DeviceType device) {
  const CostConstants& c = cost_constants(device);
  const int64_t span = p.span();
  // One circular block holding the whole row is the longest transform worth trying.
  const int64_t longest = next_length(
      std::max({span, p.width + std::max(p.pad_left, p.pad_right), p.stride1_outputs()}));
  int64_t best = longest;
  double best_seconds = fft_seconds(c, cost_terms(p, complex, longest));
  for_each_length(span, longest, [&](int64_t n) {
    const double seconds = fft_seconds(c, cost_terms(p, complex, n));
    if (seconds < best_seconds || (seconds == best_seconds && n < best)) {
      best = n;
      best_seconds = seconds;
    }
  });
  return best;
}

int64_t resolve_block(const RowConvParams& p, bool complex, c10::DeviceType device,
                      int64_t fft_block) {
  if (fft_block >= 0) return fft_block;
  const int64_t block = planned_block(p, complex, device);
  if (fft_block == kFftPlanned) return block;
  const CostConstants& c = cost_constants(device);
  return fft_seconds(c, cost_terms(p, complex, block)) <
                 direct_seconds(c, cost_terms(p, complex, block))
             ? block
             : 0;
}

}  // namespace rowconv::fft
