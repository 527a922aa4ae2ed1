// Run-time ISA selection for CPU kernels without fast-math.
//
// FASTLIGHT_CPU_CLONES on a function makes GCC/Clang compile it once per listed ISA and pick the best
// one for the running CPU when the library loads (an ifunc). Kernel bodies live in always-inline
// templates so that each clone vectorizes the whole body for its ISA; `#pragma omp simd` marks the loops
// whose reductions may be reordered across lanes (allowed without -ffast-math).
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define FASTLIGHT_CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FASTLIGHT_CPU_CLONES
#endif

#define FASTLIGHT_INLINE inline __attribute__((always_inline))
