// The micro-kernels compiled for the baseline (SSE2 on x86-64; any other CPU) (microkernels_impl.h).
#include "microkernels_impl.h"
#include "microkernels_isa.h"

ROWCONV_COMPILE_ISA(baseline, , 16, 6, 2, 2, 4, 3, 12)
