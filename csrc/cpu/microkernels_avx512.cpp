// The micro-kernels compiled for AVX-512 (x86-64-v4) (microkernels_impl.h).
#include "microkernels_impl.h"
#include "microkernels_isa.h"

#if defined(__x86_64__)
ROWCONV_COMPILE_ISA(avx512, __attribute__((target("arch=x86-64-v4"))), 64, 8, 2, 4, 4, 8, 16)
#endif
