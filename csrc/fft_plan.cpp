// The cost model of fft_plan.h. Each term counts work the way
// row_conv1d_fft.cpp does it.
#include "fft_plan.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace rowconv::fft {
namespace {

// Measured on our CPU machines by rowconv_ext.method.measure_cost_constants
// (float32, 2 threads, AMD EPYC Zen 5: benchmarks/results/cost_model_cpu.json).
CostConstants cpu_constants{3.3e-12, 7.7e-12, 4.4e-4, 6.0e-11, 1.1e-10, 3.0e-10, 2.0e-3};
// Not measured yet (no GPU run): the CPU's scaled by the H200's rates (about
// 60x the FMA rate, 40x the memory bandwidth), to be replaced by a
// measurement on the GPU (scripts/gpu_session.sh prints one).
CostConstants cuda_constants{6e-14, 1.2e-13, 1e-5, 1.5e-12, 3e-12, 8e-12, 1e-4};

int64_t span_of(const RowConvParams& p) { return p.dilation * (p.kernel_size - 1) + 1; }

int64_t stride1_outputs(const RowConvParams& p) {
  return p.width + p.pad_left + p.pad_right - span_of(p) + 1;
}

// The smallest 5-smooth number (2^a 3^b 5^c: fast for every FFT library) >= n.
int64_t next_smooth(int64_t n) {
  int64_t best = std::numeric_limits<int64_t>::max();
  for (int64_t p5 = 1; p5 < best; p5 *= 5) {
    for (int64_t p35 = p5; p35 < best; p35 *= 3) {
      int64_t m = p35;
      while (m < n) m *= 2;
      if (m < best) best = m;
      if (p35 > n) break;
    }
    if (p5 > n) break;
  }
  return best;
}

}  // namespace

CostConstants& cost_constants(c10::DeviceType device) {
  return device == c10::DeviceType::CUDA ? cuda_constants : cpu_constants;
}

CostTerms cost_terms(const RowConvParams& p, bool complex, int64_t block) {
  const double c = complex ? 2.0 : 1.0;
  const int64_t outputs = stride1_outputs(p);
  const double blocks = static_cast<double>(ceil_div(outputs, block - span_of(p) + 1));
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
  t.spectrum_elements = signals * freqs;
  return t;
}

double direct_seconds(const CostConstants& c, const CostTerms& t) {
  return c.direct_call + c.direct_mac * t.direct_macs + c.direct_narrow * t.narrow_macs;
}

double fft_seconds(const CostConstants& c, const CostTerms& t) {
  return c.fft_call + c.fft_point * t.transform_points + c.fft_mix * t.mix_macs +
         c.fft_pass * t.spectrum_elements;
}

int64_t planned_block(const RowConvParams& p, bool complex, c10::DeviceType device) {
  const CostConstants& c = cost_constants(device);
  const int64_t span = span_of(p);
  // One block holding every output is the longest transform worth trying.
  const int64_t longest = next_smooth(stride1_outputs(p) + span - 1);
  int64_t best = longest;
  double best_seconds = fft_seconds(c, cost_terms(p, complex, longest));
  for (int64_t p5 = 1; p5 <= longest; p5 *= 5) {
    for (int64_t p35 = p5; p35 <= longest; p35 *= 3) {
      for (int64_t n = p35; n <= longest; n *= 2) {
        if (n < span) continue;
        const double seconds = fft_seconds(c, cost_terms(p, complex, n));
        if (seconds < best_seconds || (seconds == best_seconds && n < best)) {
          best = n;
          best_seconds = seconds;
        }
      }
    }
  }
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
