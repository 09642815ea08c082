// A CPU emulator for the CUDA kernels (host compilers only): launch() runs a
// kernel body with one std::thread per CUDA thread of a block, the blocks of
// the grid one after another; sync_threads() is a std::barrier over the
// block, shfl_down() exchanges through per-warp slots between two warp
// barriers, and dynamic shared memory is a per-launch buffer refilled with
// 0xFF bytes (NaN for floating types) before every block, so that reading
// shared memory no thread of the block wrote shows up in the results. Under
// ThreadSanitizer a missing barrier is a reported data race.
#pragma once

#include <algorithm>
#include <barrier>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <vector>

namespace rowconv::cuda {

struct Dim {
  unsigned x = 1, y = 1, z = 1;
};

// The kernels' view of the launch, per emulated thread.
inline thread_local Dim threadIdx, blockIdx, blockDim, gridDim;

namespace emu {

constexpr unsigned kWarpSize = 32;

struct BlockState {
  BlockState(unsigned threads, size_t shared_bytes)
      : barrier(threads), shared(shared_bytes), slots(threads) {
    for (unsigned first = 0; first < threads; first += kWarpSize)
      warp_barriers.push_back(std::make_unique<std::barrier<>>(std::min(kWarpSize, threads - first)));
  }
  std::barrier<> barrier;
  std::vector<std::unique_ptr<std::barrier<>>> warp_barriers;
  // Exactly the launch's bytes, so that AddressSanitizer sees any overrun
  // (operator new aligns to 16 bytes, like CUDA's shared memory).
  std::vector<unsigned char> shared;
  std::vector<uint64_t> slots;  // one shuffle slot per thread
};

inline thread_local BlockState* block_state = nullptr;

}  // namespace emu

inline void sync_threads() { emu::block_state->barrier.arrive_and_wait(); }

template <typename T>
T shfl_down(T v, unsigned delta) {
  static_assert(sizeof(T) <= sizeof(uint64_t) && std::is_trivially_copyable_v<T>);
  emu::BlockState& s = *emu::block_state;
  const unsigned tid = threadIdx.x, warp = tid / emu::kWarpSize, lane = tid % emu::kWarpSize;
  const unsigned warp_threads = std::min(emu::kWarpSize, blockDim.x - warp * emu::kWarpSize);
  std::memcpy(&s.slots[tid], &v, sizeof(T));
  s.warp_barriers[warp]->arrive_and_wait();
  T out = v;  // like CUDA: lanes past the end of the warp keep their own value
  if (lane + delta < warp_threads) std::memcpy(&out, &s.slots[tid + delta], sizeof(T));
  s.warp_barriers[warp]->arrive_and_wait();
  return out;
}

template <typename T>
T* dynamic_shared() {
  return reinterpret_cast<T*>(emu::block_state->shared.data());
}

namespace emu {

// Runs body() as the kernel of a 1-D launch of `grid` blocks of `block` threads.
template <typename Body>
void launch(Dim grid, Dim block, size_t shared_bytes, const Body& body) {
  if (block.x < 1 || block.x > 1024 || block.y != 1 || block.z != 1 || grid.y != 1 || grid.z != 1)
    throw std::invalid_argument("emulator: only 1-D launches of 1 to 1024 threads per block");
  BlockState state(block.x, shared_bytes);
  // Kernels do not throw: one that did would leave the others waiting at a
  // barrier, so an exception escaping a thread ends the process (std::terminate)
  // rather than hanging it.
  std::vector<std::thread> threads;
  threads.reserve(block.x);
  for (unsigned t = 0; t < block.x; ++t) {
    threads.emplace_back([&, t] {
      block_state = &state;
      threadIdx = Dim{t, 0, 0};
      blockDim = block;
      gridDim = grid;
      for (unsigned b = 0; b < grid.x; ++b) {
        if (t == 0 && !state.shared.empty()) std::memset(state.shared.data(), 0xFF, state.shared.size());
        state.barrier.arrive_and_wait();  // shared memory poisoned for this block
        blockIdx = Dim{b, 0, 0};
        body();
        state.barrier.arrive_and_wait();  // every thread is done with this block
      }
    });
  }
  for (std::thread& th : threads) th.join();
}

// launch.h's launcher for the emulator: launch(kernel, grid, block, shared_bytes, args...).
struct Launch {
  template <typename Kernel, typename... Args>
  void operator()(Kernel kernel, int64_t grid, int64_t block, int64_t shared_bytes,
                  Args... args) const {
    emu::launch(Dim{static_cast<unsigned>(grid)}, Dim{static_cast<unsigned>(block)},
                static_cast<size_t>(shared_bytes), [&] { kernel(args...); });
  }
};

}  // namespace emu
}  // namespace rowconv::cuda
