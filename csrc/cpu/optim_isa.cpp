// The CPU optimizer element loops compiled three times (baseline x86-64 / AVX2+F16C / AVX-512) from one
// source, optim_cpu_body.inc, and picked once at run time with __builtin_cpu_supports. The build flags stay
// portable (no -march), so the .so runs on any x86-64 CPU and still uses the widest vectors available.
#include "fastlight/optim_cpu.h"

#include <c10/util/Exception.h>
#include <c10/util/Half.h>

#include <cstdlib>
#include <cstring>
#include <string>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define FL_X86 1
#else
#define FL_X86 0
#endif

namespace fastlight {
namespace cpu {

namespace {
// float16 conversions for the baseline variant (no F16C): c10's bit manipulation.
inline float half_bits_to_float(uint16_t h) { return c10::detail::fp16_ieee_to_fp32_value(h); }
inline uint16_t float_to_half_bits(float f) { return c10::detail::fp16_ieee_from_fp32_value(f); }
}  // namespace

// The build passes -fno-math-errno (fastlight/_build.py): without it sqrt may set errno, and GCC then keeps
// every loop that calls sqrt scalar. (`#pragma GCC optimize("no-math-errno")` does not have that effect.)
namespace isa_baseline {
#define FL_F16C 0
#include "fastlight/optim_cpu_body.inc"
#undef FL_F16C
}  // namespace isa_baseline

#if FL_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace isa_avx2 {
#define FL_F16C 1
#include "fastlight/optim_cpu_body.inc"
#undef FL_F16C
}  // namespace isa_avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
namespace isa_avx512 {
#define FL_F16C 1
#include "fastlight/optim_cpu_body.inc"
#undef FL_F16C
}  // namespace isa_avx512
#pragma GCC pop_options
#endif

namespace {
// best: the widest variant this CPU runs, capped by `cap` ("" = no cap).
OptimKernels pick(const std::string& cap) {
#if FL_X86
  __builtin_cpu_init();
  const bool has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("f16c");
  const bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
  if (has512 && (cap.empty() || cap == "avx512")) return {&isa_avx512::adam_range, &isa_avx512::sgd_range, "avx512"};
  if (has2 && (cap.empty() || cap == "avx512" || cap == "avx2"))
    return {&isa_avx2::adam_range, &isa_avx2::sgd_range, "avx2"};
#endif
  return {&isa_baseline::adam_range, &isa_baseline::sgd_range, "baseline"};
}

OptimKernels& current() {
  static OptimKernels k = [] {
    const char* cap = std::getenv("FASTLIGHT_CPU_ISA");
    return pick(cap ? cap : "");
  }();
  return k;
}
}  // namespace

const OptimKernels& optim_kernels() { return current(); }

std::string set_optim_isa(const std::string& cap) {
  TORCH_CHECK(cap.empty() || cap == "baseline" || cap == "avx2" || cap == "avx512",
              "fastlight: CPU ISA must be '', 'baseline', 'avx2' or 'avx512', got '", cap, "'");
  current() = pick(cap);
  return current().isa;
}

}  // namespace cpu
}  // namespace fastlight
