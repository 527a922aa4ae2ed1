// adam_step_ on the CPU: Adam and AdamW over a list of parameters in one OpenMP region.
//
// Host work per call: checks, the step counters (+1 each, unless found_inf), the per-tensor scalars in
// double (bias corrections, step size), and a chunk table; then one parallel loop over chunks of all tensors
// (torch's fused CPU Adam forks once per tensor), each chunk run by the ISA variant picked at load time.
#include <cmath>
#include <string>
#include <vector>

#include "fastlight/optim_cpu_host.h"
#include "fastlight/ops.h"

namespace fastlight {


void adam_step_cpu(at::TensorList params, at::TensorList grads, at::TensorList exp_avgs,
                   at::TensorList exp_avg_sqs, at::TensorList max_exp_avg_sqs, at::TensorList state_steps,
                   const at::Tensor& lr, double beta1, double beta2, double weight_decay, double eps,
                   bool amsgrad, bool maximize, bool decoupled_weight_decay,
                   const c10::optional<at::Tensor>& grad_scale, const c10::optional<at::Tensor>& found_inf) {
  static const char* op = "fastlight::adam_step_";
  const size_t n =
      check_adam_lists(op, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, amsgrad);
  if (n == 0) return;
  // found_inf: the whole step is skipped, step counters included (checked before anything is written).
  if (found_inf.has_value() && cpu::read_cpu_scalar(op, "found_inf", *found_inf) != 0.0) return;
  const double lr_v = cpu::read_cpu_scalar(op, "lr", lr);

  cpu::AdamConsts c{};
  c.decay_mul = 1.0 - lr_v * weight_decay;
  c.weight_decay = weight_decay;
  c.one_minus_beta1 = 1.0 - beta1;
  c.beta2 = beta2;
  c.one_minus_beta2 = 1.0 - beta2;
  c.eps = eps;
  c.has_grad_scale = grad_scale.has_value();
  c.grad_scale = c.has_grad_scale ? cpu::read_cpu_scalar(op, "grad_scale", *grad_scale) : 1.0;
  // torch's lerp compares the weight in the compute type; float32 and float64 agree for 1 - beta1.
  c.lerp_small = std::abs(static_cast<float>(c.one_minus_beta1)) < 0.5f;
  c.amsgrad = amsgrad;
  c.maximize = maximize;
  c.decoupled_weight_decay = decoupled_weight_decay;

  std::vector<cpu::OptimTensor> ts(n);
  std::vector<cpu::AdamTensorConsts> tc(n);
  for (size_t i = 0; i < n; ++i) {
    // Same expressions as torch's _single_tensor_adam on Python floats (IEEE double, C pow).
    const double step = cpu::bump_step(op, i, state_steps[i]);
    const double bc1 = 1.0 - std::pow(beta1, step);
    const double bc2 = 1.0 - std::pow(beta2, step);
    tc[i].neg_step_size = -(lr_v / bc1);
    tc[i].bc2_sqrt = std::pow(bc2, 0.5);
    const at::Tensor& p = params[i];
    ts[i] = {p.data_ptr(),
             grads[i].const_data_ptr(),
             exp_avgs[i].data_ptr(),
             exp_avg_sqs[i].data_ptr(),
             amsgrad ? max_exp_avg_sqs[i].data_ptr() : nullptr,
             p.numel(),
             cpu::elem_type(p.scalar_type())};
  }
  const cpu::AdamRangeFn kernel = cpu::optim_kernels().adam;
  cpu::for_all_chunks(ts, [&](int64_t t, int64_t begin, int64_t len) { kernel(ts[t], begin, len, c, tc[t]); });
}

std::string cpu_optim_isa() { return cpu::optim_kernels().isa; }
std::string cpu_optim_set_isa(const std::string& cap) { return cpu::set_optim_isa(cap); }

}  // namespace fastlight
