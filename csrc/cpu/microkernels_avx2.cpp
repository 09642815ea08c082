// The micro-kernels compiled for AVX2 and FMA (x86-64-v3) (microkernels_impl.h).
#include "microkernels_impl.h"
#include "microkernels_isa.h"

#if defined(__x86_64__)
ROWCONV_COMPILE_ISA(avx2, __attribute__((target("arch=x86-64-v3"))), 32, 6, 2, 2, 4, 3, 12)
#endif
