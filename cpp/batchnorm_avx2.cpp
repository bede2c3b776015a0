// AVX2+FMA batch norm loops: batchnorm_kernels.inc compiled with -mavx2 -mfma, so the compiler
// vectorises them 8 floats wide and fuses multiply-adds. Only used after the run-time CPU check
// in cpu.cpp. With the data in L1/L2 (the shapes of an MLP batch) these loops are bound by
// instruction throughput, not memory, so the wider vectors pay.
#include <cstddef>

#include "batchnorm_impl.h"

#define FASTMLP_BN_NS avx2
#include "batchnorm_kernels.inc"
#undef FASTMLP_BN_NS
