// The choice between the direct kernels and the FFT method, and the FFT's
// transform length: a cost model of both from the checked params, dtype and
// device (as scipy.signal.choose_conv_method and oaconvolve choose), made
// where the ops run so that 'auto' decides on the shapes of each call, also
// under torch.compile with dynamic shapes.
//
//   direct  seconds = direct_call + direct_mac * MACs + direct_narrow * MACs / min(Cout_g, 8),
//           MACs = B * H * Cout * Cin_g * K * Wout (4 real per complex one);
//           the kernels' register block spans 8 output channels, which share
//           each input load: fewer per group (depthwise) cost more per MAC.
//   fft     seconds = fft_call + fft_point * transform points
//                   + fft_mix * channel-mix MACs + fft_matrix * mix matrices
//                   + fft_pass * spectrum elements
//           (the mix is one small complex matrix product per row, group and
//           frequency, each with a fixed cost that dominates when few
//           columns (batch x blocks) share it)
//           for the transform length n that minimises it (n >= span, n = odd * 2^a for
//           small odd parts: fft_plan.cpp).
//
// The constants are per device type, measured by
// rowconv_ext.method.measure_cost_constants (docs/design.md).
#pragma once

#include <c10/core/DeviceType.h>

#include <array>
#include <cstdint>

#include "row_conv1d_params.h"

namespace rowconv::fft {

// The ops' fft_block argument: 0 = the direct kernels, n > 0 = the FFT in
// blocks of n points, or one of these, resolved per call by the cost model.
constexpr int64_t kAuto = -1;        // method='auto'
constexpr int64_t kFftPlanned = -2;  // method='fft', the planned length

struct CostConstants {
  double direct_mac, direct_narrow, direct_call, fft_point, fft_mix, fft_matrix, fft_pass, fft_call;
};
constexpr int kCostConstants = 8;

// The constants in use for a device type (CUDA, or the CPU's for any other).
CostConstants& cost_constants(c10::DeviceType device);

// The work of both methods for p, with the FFT at transform length `block`.
struct CostTerms {
  double direct_macs, narrow_macs, transform_points, mix_macs, mix_matrices, spectrum_elements;
};
CostTerms cost_terms(const RowConvParams& p, bool complex, int64_t block);
double direct_seconds(const CostConstants& c, const CostTerms& t);
double fft_seconds(const CostConstants& c, const CostTerms& t);

// Whether one circular transform of n points does the whole row: the
// padding's zeros are then not stored but read around the circle (the left
// padding from the end of the buffer), which needs n >= W + max(pad_left,
// pad_right) and n >= the outputs at stride 1 (scipy's fftconvolve length
// for a full convolution, where overlap-save blocks would need W + both pads).
bool one_circular_block(const RowConvParams& p, int64_t n);

// The cheapest transform length for p.
int64_t planned_block(const RowConvParams& p, bool complex, c10::DeviceType device);

// fft_block as the op runs it: 0 (direct) or a transform length.
int64_t resolve_block(const RowConvParams& p, bool complex, c10::DeviceType device,
                      int64_t fft_block);

}  // namespace rowconv::fft
