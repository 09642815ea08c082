// A CPU emulator for the CUDA kernels (host compilers only): launch() runs a
// kernel body with one std::thread per CUDA thread of a block, the blocks of
// the grid one after another; sync_threads() is a std::barrier over the
// block, shfl_down() exchanges through per-warp slots between two warp
// barriers, and dynamic shared memory is a per-launch buffer refilled with
// 0xFF bytes (NaN for floating types) before every block, so that reading
// shared memory no thread of the block wrote shows up in the results. Under
// ThreadSanitizer a missing barrier is a reported data race.
// The rules a GPU enforces fail here too, loudly, naming the kernel: at
// launch (std::invalid_argument) 1-D launches only, 1 to 2^31 - 1 blocks,
// 1 to the kernel's launch bound threads per block (1024 without one),
// dynamic shared memory up to the kernel's limit (48 KiB without an
// opt-in); in a kernel (a message, then abort, as a GPU's fault ends the
// process's context) a 16-byte load from an address not 16-byte aligned.
#pragma once

#include <algorithm>
#include <barrier>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
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
inline thread_local const char* kernel_name = nullptr;  // the running kernel, for messages

// The kernel of a Kernel's name (make_kernel's signature), for messages.
inline std::string kernel_of(const char* name) {
  const std::string s = name != nullptr ? name : "a kernel";
  const size_t at = s.find("kFunction = ");
  if (at == std::string::npos) return s;
  std::string kernel = s.substr(at + 12);
  kernel = kernel.substr(0, kernel.find_first_of(";]"));
  if (kernel.rfind("& ", 0) == 0) kernel.erase(0, 2);
  if (kernel.rfind("&", 0) == 0) kernel.erase(0, 1);
  return kernel;
}

[[noreturn]] inline void misaligned_load16(const void* p) {
  std::fprintf(stderr,
               "emulator: %s: misaligned address: load16 from %p (address %% 16 = %u) in block %u, "
               "thread %u; a GPU faults on a 16-byte load that is not 16-byte aligned\n",
               kernel_of(kernel_name).c_str(), p, static_cast<unsigned>(reinterpret_cast<uintptr_t>(p) % 16),
               blockIdx.x, threadIdx.x);
  std::fflush(stderr);
  std::abort();
}

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

// Throws std::invalid_argument, naming the kernel and the values, for a
// launch a GPU refuses: the limits of a 1-D launch, the kernel's launch
// bound and its dynamic shared memory limit.
inline void check_launch(const char* name, int max_threads, int64_t max_dynamic_shared_bytes,
                         int64_t grid_blocks, int64_t block_threads, int64_t shared_bytes) {
  auto fail = [&](const std::string& what) {
    throw std::invalid_argument("emulator: " + kernel_of(name) + ": " + what);
  };
  if (grid_blocks < 1 || grid_blocks > kMaxGridBlocksX)
    fail("grid of " + std::to_string(grid_blocks) + " blocks, outside 1 .. " +
         std::to_string(kMaxGridBlocksX) + " (gridDim.x)");
  const int64_t bound = std::min<int64_t>(max_threads, kMaxBlockThreads);
  if (block_threads < 1 || block_threads > bound)
    fail(std::to_string(block_threads) + " threads per block, outside 1 .. " + std::to_string(bound) +
         (max_threads < kMaxBlockThreads ? " (its launch bound)" : " (the limit of every block)"));
  if (shared_bytes < 0 || shared_bytes > max_dynamic_shared_bytes)
    fail(std::to_string(shared_bytes) + " bytes of dynamic shared memory, more than its limit of " +
         std::to_string(max_dynamic_shared_bytes) +
         (max_dynamic_shared_bytes == kDefaultMaxDynamicSharedBytes ? " (48 KiB: no opt-in)" : " (opted in)"));
}

// Called, if set, with the name of every kernel the emulator launches and its
// geometry (the sanitizer harness's coverage record).
inline void (*on_launch)(const char* name, unsigned grid, unsigned block, size_t shared_bytes) = nullptr;

// Runs body() as the kernel `name` on a 1-D launch of `grid` blocks of
// `block` threads; Launch checks the rest of a GPU's rules (check_launch).
template <typename Body>
void launch(const char* name, Dim grid, Dim block, size_t shared_bytes, const Body& body) {
  if (block.y != 1 || block.z != 1 || grid.y != 1 || grid.z != 1 || grid.x < 1 || block.x < 1 ||
      block.x > static_cast<unsigned>(kMaxBlockThreads))
    throw std::invalid_argument("emulator: " + kernel_of(name) +
                                ": only 1-D launches of at least one block of 1 to 1024 threads");
  if (on_launch != nullptr) on_launch(name, grid.x, block.x, shared_bytes);
  BlockState state(block.x, shared_bytes);
  // Kernels do not throw: one that did would leave the others waiting at a
  // barrier, so an exception escaping a thread ends the process (std::terminate)
  // rather than hanging it.
  std::vector<std::thread> threads;
  threads.reserve(block.x);
  for (unsigned t = 0; t < block.x; ++t) {
    threads.emplace_back([&, t] {
      block_state = &state;
      kernel_name = name;
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

// launch.h's launcher for the emulator: launch(kernel, grid, block, shared_bytes, args...),
// with the checks of a GPU's launch.
struct Launch {
  template <typename F, typename... Args>
  void operator()(const Kernel<F>& kernel, int64_t grid, int64_t block, int64_t shared_bytes,
                  Args... args) const {
    check_launch(kernel.name, kernel.max_threads, kernel.max_dynamic_shared_bytes, grid, block, shared_bytes);
    emu::launch(kernel.name, Dim{static_cast<unsigned>(grid)}, Dim{static_cast<unsigned>(block)},
                static_cast<size_t>(shared_bytes), [&] { kernel.function(args...); });
  }
};

}  // namespace emu
}  // namespace rowconv::cuda
