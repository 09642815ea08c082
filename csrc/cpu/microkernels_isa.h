// The micro-kernels of each instruction set, one translation unit each
// (microkernels_<set>.cpp); microkernels.cpp picks one at run time.
#pragma once

#include "microkernels.h"

namespace rowconv::cpu {

template <typename T>
MicroKernels<T> isa_kernels_baseline();
#if defined(__x86_64__)
template <typename T>
MicroKernels<T> isa_kernels_avx2();
template <typename T>
MicroKernels<T> isa_kernels_avx512();
#endif

}  // namespace rowconv::cpu
