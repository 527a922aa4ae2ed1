// Plain-data descriptions shared by the CPU optimizer ops (adam.cpp, sgd.cpp) and their per-ISA element
// loops (optim_isa.cpp + optim_cpu_body.inc). No ATen here: the loops are compiled per ISA and must not
// pull in inline code compiled for another one.
#pragma once
#include <cstdint>
#include <string>

namespace fastlight {
namespace cpu {

enum class ElemType : int { Float = 0, Double = 1, Half = 2, BFloat16 = 3 };

// Storage-only stand-ins for 16-bit floats: the loops convert them explicitly.
struct BF16Bits {
  uint16_t x;
};
struct F16Bits {
  uint16_t x;
};

// One parameter and its same-sized companions (grad, state0..2), all of one dtype and one layout.
//   Adam: state0 = exp_avg, state1 = exp_avg_sq, state2 = max_exp_avg_sq (amsgrad only)
//   SGD:  state0 = momentum_buffer (momentum != 0 only)
struct OptimTensor {
  void* param;
  const void* grad;
  void* state0;
  void* state1;
  void* state2;
  int64_t numel;
  ElemType dtype;
};

// Per-call constants, computed in double by the host and cast to the compute type in the loop (as torch
// casts a Python float scalar to the tensor's compute type).
struct AdamConsts {
  double decay_mul;        // 1 - lr * weight_decay (AdamW)
  double weight_decay;     // Adam (L2): g + weight_decay * p
  double one_minus_beta1;  // lerp weight
  double beta2;
  double one_minus_beta2;
  double eps;
  double grad_scale;  // multiplier applied to the gradient (AMP inv_scale x clip coefficient)
  bool has_grad_scale;
  bool lerp_small;  // torch's lerp picks its formula by weight < 0.5
  bool amsgrad;
  bool maximize;
  bool decoupled_weight_decay;
};

// Per-tensor constants (each parameter has its own step counter).
struct AdamTensorConsts {
  double neg_step_size;  // -lr / (1 - beta1^step)
  double bc2_sqrt;       // (1 - beta2^step) ** 0.5
};

struct SgdConsts {
  double neg_lr;
  double weight_decay;
  double momentum;
  double one_minus_dampening;
  double grad_scale;
  bool has_grad_scale;
  bool has_momentum;
  bool first_step;  // momentum buffer := gradient (torch clones the first gradient)
  bool nesterov;
  bool maximize;
};

using AdamRangeFn = void (*)(const OptimTensor&, int64_t begin, int64_t len, const AdamConsts&,
                             const AdamTensorConsts&);
using SgdRangeFn = void (*)(const OptimTensor&, int64_t begin, int64_t len, const SgdConsts&);

struct OptimKernels {
  AdamRangeFn adam;
  SgdRangeFn sgd;
  const char* isa;  // "avx512", "avx2" or "baseline"
};

// The element loops for the best ISA this CPU supports (chosen once). FASTLIGHT_CPU_ISA=baseline|avx2|avx512
// caps the choice (for tests and benchmarks).
const OptimKernels& optim_kernels();
// Re-picks the variant with a cap ("" = best available); returns the one now in use. Not thread-safe
// against running steps: for tests and benchmarks.
std::string set_optim_isa(const std::string& cap);

}  // namespace cpu
}  // namespace fastlight
