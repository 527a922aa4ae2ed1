// Declarations of every op implementation; ops.cpp binds them to the schemas.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <string>

namespace fastlight {

// grad_stats: one read-only pass over a list of tensors -> float32 [2]:
//   [0] sum of squares of all elements (accumulated in higher precision), [1] 1.0 if any element is inf/nan.
at::Tensor grad_stats_cpu(at::TensorList tensors);
#ifdef FASTLIGHT_WITH_CUDA
at::Tensor grad_stats_cuda(at::TensorList tensors);
#endif

// adam_step_: Adam (decoupled_weight_decay=false) or AdamW (true) in place over a list of params, torch's
// single-tensor order of operations in float32 (float64 for float64 params), scalar terms in double.
// state_steps[i] += 1 per param. grad_scale (one element) multiplies every gradient in registers (grads are
// not written); found_inf (one element) != 0 skips the step entirely (params, states, steps untouched).
// lr, grad_scale and found_inf are read where they live: the CUDA path never copies them to the host.
void adam_step_cpu(at::TensorList params, at::TensorList grads, at::TensorList exp_avgs,
                   at::TensorList exp_avg_sqs, at::TensorList max_exp_avg_sqs, at::TensorList state_steps,
                   const at::Tensor& lr, double beta1, double beta2, double weight_decay, double eps,
                   bool amsgrad, bool maximize, bool decoupled_weight_decay,
                   const c10::optional<at::Tensor>& grad_scale, const c10::optional<at::Tensor>& found_inf);
// sgd_step_: torch.optim.SGD in place. momentum_buffers empty when momentum == 0; is_first_step makes every
// buffer a copy of its (decayed) gradient, as torch does for a buffer that does not exist yet.
void sgd_step_cpu(at::TensorList params, at::TensorList grads, at::TensorList momentum_buffers,
                  const at::Tensor& lr, double weight_decay, double momentum, double dampening, bool nesterov,
                  bool maximize, bool is_first_step, const c10::optional<at::Tensor>& grad_scale,
                  const c10::optional<at::Tensor>& found_inf);
// Which ISA variant of the CPU optimizer loops runs here: "avx512", "avx2" or "baseline".
std::string cpu_optim_isa();
// Caps the ISA variant ("" = best available, "baseline", "avx2", "avx512"); returns the variant now in use.
std::string cpu_optim_set_isa(const std::string& cap);
#ifdef FASTLIGHT_WITH_CUDA
void adam_step_cuda(at::TensorList params, at::TensorList grads, at::TensorList exp_avgs,
                    at::TensorList exp_avg_sqs, at::TensorList max_exp_avg_sqs, at::TensorList state_steps,
                    const at::Tensor& lr, double beta1, double beta2, double weight_decay, double eps,
                    bool amsgrad, bool maximize, bool decoupled_weight_decay,
                    const c10::optional<at::Tensor>& grad_scale, const c10::optional<at::Tensor>& found_inf);
void sgd_step_cuda(at::TensorList params, at::TensorList grads, at::TensorList momentum_buffers,
                   const at::Tensor& lr, double weight_decay, double momentum, double dampening, bool nesterov,
                   bool maximize, bool is_first_step, const c10::optional<at::Tensor>& grad_scale,
                   const c10::optional<at::Tensor>& found_inf);
#endif

}  // namespace fastlight
