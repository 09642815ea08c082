// Whether memory is in the caches or must come from memory, by timing loads
// of a few of its lines: the one thing a call's sizes cannot tell. A chunk of
// a long stream (10 MB of x) comes from memory; the same chunk written a
// moment earlier by the layer before is in the last-level cache; and how much
// of that cache a VM gets depends on its neighbours.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace rowconv::cpu {

// A stretch of memory, [begin, begin + bytes).
struct MemoryRange {
  const char* begin;
  int64_t bytes;
};

// Whether a quarter or more of `ranges`' lines come from memory, judged from
// 16 lines sampled evenly over them: each is loaded in a chain (every load's
// address depends on the one before, so their latencies add up) and the
// chain is timed. Each sampled line is 2 KiB into its 4 KiB page, whose first
// line is read untimed first (the page's translation, a page walk that costs
// tens of ns either way), and far from it (the adjacent-line prefetchers).
// Zen 4 VM, averages a line: lines in the L3 10-16 ns, from memory
// 130-160 ns, a 20 MB buffer read a moment before 50 ns (a third of it gone
// to memory). The chains are two of 8 lines; the faster one decides, so an
// interrupt in one does not. Below the threshold (40 ns: a quarter of the
// lines from memory) fetching ahead costs more than it saves (1.03-1.12x in
// cache, against 0.7-0.8x from memory). About 2-3 us a call.
inline bool sampled_lines_from_memory(const MemoryRange* ranges, int count) {
  constexpr int kChains = 2, kSamples = 16;
  constexpr uintptr_t kPage = 4096, kInPage = 2048;
  constexpr double kMemoryNs = 40.0;
  int64_t total = 0;
  for (int r = 0; r < count; ++r) total += std::max<int64_t>(ranges[r].bytes, 0);
  if (total < static_cast<int64_t>(kPage)) return false;
  const char* lines[kSamples];
  int found = 0;
  for (int i = 0; i < kSamples; ++i) {
    // sample i sits at i/16 of the ranges, laid end to end; visited in a
    // scrambled order (7i mod 16) that no stride prefetcher follows
    int64_t at = total / kSamples * ((i * 7) % kSamples);
    int r = 0;
    while (r + 1 < count && at >= ranges[r].bytes) at -= std::max<int64_t>(ranges[r++].bytes, 0);
    const uintptr_t begin = reinterpret_cast<uintptr_t>(ranges[r].begin);
    const uintptr_t end = begin + static_cast<uintptr_t>(ranges[r].bytes);
    const uintptr_t page = (begin + static_cast<uintptr_t>(at) + kPage - 1) & ~(kPage - 1);  // (rounded up)
    const uintptr_t line = page + kInPage;
    if (line + 64 > end) continue;  // (a range's last page)
    (void)*reinterpret_cast<const volatile char*>(page);
    lines[found++] = reinterpret_cast<const char*>(line);
  }
  if (found < kSamples / 2) return false;
  static volatile int64_t zero_source = 0;
  const int64_t zero = zero_source;  // zero, unknown to the compiler: the chain's link
  double fastest = 1e30;
  int64_t link = 0;
  for (int c = 0; c < kChains; ++c) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = c; i < found; i += kChains)
      link = *reinterpret_cast<const volatile char*>(lines[i] + link) & zero;
    const auto stop = std::chrono::steady_clock::now();
    const int chain = (found - c + kChains - 1) / kChains;
    fastest = std::min(fastest, std::chrono::duration<double, std::nano>(stop - start).count() / chain);
  }
  return fastest + static_cast<double>(link) >= kMemoryNs;
}

}  // namespace rowconv::cpu
