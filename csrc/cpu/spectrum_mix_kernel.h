// The FFT method's channel mix on the CPU (row_conv1d_fft.cpp): per row,
// group and frequency a small complex matrix product, computed in the
// spectra's own layout with vectors over the frequencies
// (MicroKernels::complex_products). at::matmul needs the frequencies
// outside the matrices: a strided copy of both operands and of the result,
// and on batches of small matrices a copy per matrix; those copies took
// 50-70% of a channel-mixing FFT convolution (docs/design.md, "The channel
// mix").
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <vector>

#include "microkernels.h"

namespace rowconv::cpu {

// Frequencies an item of work covers: a multiple of every instruction set's
// complex numbers a vector (8 floats, 4 doubles on AVX-512), so the split of
// a row, and with it each sum's bits, is fixed by the shape alone.
constexpr int64_t kMixFrequencies = 64;

namespace spectra_detail {

// body(T{}) for the real type T of complex t's parts (complex64: float, complex128: double)
template <class Body>
void with_part_type(const at::Tensor& t, const Body& body) {
  if (t.scalar_type() == at::kComplexDouble) {
    body(double{});
  } else {
    body(float{});
  }
}

template <typename T>
const T* floats(const at::Tensor& t) {
  return reinterpret_cast<const T*>(t.data_ptr());
}

// Runs body(item, f0, count) for items [0, items) times the frequency
// chunks of F, in parallel, `macs_per_frequency` complex multiply-adds an
// item's frequency.
template <typename Body>
void for_each_chunk(int64_t items, int64_t F, int64_t macs_per_frequency, const Body& body) {
  const int64_t chunks = (F + kMixFrequencies - 1) / kMixFrequencies;
  const int64_t per_chunk = std::max<int64_t>(1, macs_per_frequency * std::min(F, kMixFrequencies));
  // pieces of about 64k multiply-adds: the region's start-up is a few microseconds
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / per_chunk);
  at::parallel_for(0, items * chunks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t w = begin; w < end; ++w) {
      const int64_t f0 = w % chunks * kMixFrequencies;
      body(w / chunks, f0, std::min(kMixFrequencies, F - f0));
    }
  });
}

template <typename T>
void mix(const at::Tensor& S, const at::Tensor& R, at::Tensor& out, int64_t groups) {
  const int64_t B = S.size(0), Cin = S.size(1), H = S.size(2), blocks = S.size(3), F = S.size(4);
  const int64_t Cout = R.size(1), in_g = R.size(2), out_g = Cout / groups;
  // Columns: the batch entries where each has one block (one circular
  // transform), else the blocks of one entry (entries one call each).
  const bool by_entry = blocks == 1;
  const int64_t columns = by_entry ? B : blocks, calls = by_entry ? 1 : B;
  const int64_t s_column = by_entry ? Cin * H * F : F, o_column = by_entry ? Cout * H * F : F;
  const T* s = floats<T>(S);
  const T* r = floats<T>(R);
  T* o = reinterpret_cast<T*>(out.data_ptr());
  const auto& k = micro_kernels<T>();
  for_each_chunk(H * groups * calls, F, out_g * columns * in_g, [&](int64_t item, int64_t f0, int64_t count) {
    const int64_t b = item % calls, hg = item / calls, h = hg / groups, g = hg % groups;
    std::vector<const T*> a_rows(in_g), b_rows(in_g);
    for (int64_t c = 0; c < in_g; ++c) {
      a_rows[c] = r + 2 * (((h * Cout + g * out_g) * in_g + c) * F + f0);
      b_rows[c] = s + 2 * (((b * Cin + g * in_g + c) * H + h) * blocks * F + f0);
    }
    k.complex_products(out_g, columns, in_g, count, a_rows.data(), in_g * F, b_rows.data(), s_column,
                       o + 2 * (((b * Cout + g * out_g) * H + h) * blocks * F + f0), H * blocks * F, o_column);
  });
}

template <typename T>
void correlate(const at::Tensor& G, const at::Tensor& X, at::Tensor& out, int64_t groups) {
  const int64_t B = G.size(0), Cout = G.size(1), H = G.size(2), blocks = G.size(3), F = G.size(4);
  const int64_t Cin = X.size(1), out_g = Cout / groups, in_g = Cin / groups;
  const T* gp = floats<T>(G);
  const T* xp = floats<T>(X);
  T* o = reinterpret_cast<T*>(out.data_ptr());
  const auto& k = micro_kernels<T>();
  for_each_chunk(H * groups, F, out_g * in_g * B * blocks, [&](int64_t hg, int64_t f0, int64_t count) {
    const int64_t h = hg / groups, g = hg % groups;
    std::vector<const T*> a_rows(B * blocks), b_rows(B * blocks);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < blocks; ++i) {
        a_rows[b * blocks + i] = gp + 2 * ((((b * Cout + g * out_g) * H + h) * blocks + i) * F + f0);
        b_rows[b * blocks + i] = xp + 2 * ((((b * Cin + g * in_g) * H + h) * blocks + i) * F + f0);
      }
    k.complex_products(out_g, in_g, B * blocks, count, a_rows.data(), H * blocks * F, b_rows.data(),
                       H * blocks * F, o + 2 * ((h * Cout + g * out_g) * in_g * F + f0), in_g * F, F);
  });
}

}  // namespace spectra_detail

// out[b, g*Og + o, h, i, f] = sum_c R[h, g*Og + o, c, f] * S[b, g*Cg + c, h, i, f]
// for S (B, groups*Cg, H, blocks, F) and R (H, groups*Og, Cg, F), complex
// (float or double parts), contiguous; out (B, groups*Og, H, blocks, F).
inline at::Tensor mix_spectra(const at::Tensor& S, const at::Tensor& R, int64_t groups) {
  at::Tensor out = at::empty({S.size(0), R.size(1), S.size(2), S.size(3), S.size(4)}, S.options());
  if (out.numel() > 0) {
    spectra_detail::with_part_type(S, [&](auto part) { spectra_detail::mix<decltype(part)>(S, R, out, groups); });
  }
  return out;
}

// out[h, g*Og + o, c, f] = sum_{b, i} G[b, g*Og + o, h, i, f] * X[b, g*Cg + c, h, i, f]
// for G (B, groups*Og, H, blocks, F) and X (B, groups*Cg, H, blocks, F),
// complex, contiguous; out (H, groups*Og, Cg, F), each sum over (b, i) in
// that order.
inline at::Tensor correlate_spectra(const at::Tensor& G, const at::Tensor& X, int64_t groups) {
  at::Tensor out = at::empty({G.size(2), G.size(1), X.size(1) / groups, G.size(4)}, G.options());
  if (out.numel() > 0) {
    spectra_detail::with_part_type(G, [&](auto part) { spectra_detail::correlate<decltype(part)>(G, X, out, groups); });
  }
  return out;
}

}  // namespace rowconv::cpu
