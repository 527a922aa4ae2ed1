// sgd_step_ on the CPU: SGD (momentum, dampening, nesterov, weight decay, maximize) over a list of
// parameters in one OpenMP region; the element loop is the ISA variant picked at load time.
#include <vector>

#include "fastlight/optim_cpu_host.h"
#include "fastlight/ops.h"

namespace fastlight {

void sgd_step_cpu(at::TensorList params, at::TensorList grads, at::TensorList momentum_buffers,
                  const at::Tensor& lr, double weight_decay, double momentum, double dampening, bool nesterov,
                  bool maximize, bool is_first_step, const c10::optional<at::Tensor>& grad_scale,
                  const c10::optional<at::Tensor>& found_inf) {
  static const char* op = "fastlight::sgd_step_";
  const bool has_momentum = momentum != 0.0;
  const size_t n = check_sgd_lists(op, params, grads, momentum_buffers, has_momentum);
  if (n == 0) return;
  if (found_inf.has_value() && cpu::read_cpu_scalar(op, "found_inf", *found_inf) != 0.0) return;
  const double lr_v = cpu::read_cpu_scalar(op, "lr", lr);

  cpu::SgdConsts c{};
  c.neg_lr = -lr_v;
  c.weight_decay = weight_decay;
  c.momentum = momentum;
  c.one_minus_dampening = 1.0 - dampening;
  c.has_grad_scale = grad_scale.has_value();
  c.grad_scale = c.has_grad_scale ? cpu::read_cpu_scalar(op, "grad_scale", *grad_scale) : 1.0;
  c.has_momentum = has_momentum;
  c.first_step = is_first_step;
  c.nesterov = nesterov;
  c.maximize = maximize;

  std::vector<cpu::OptimTensor> ts(n);
  for (size_t i = 0; i < n; ++i) {
    const at::Tensor& p = params[i];
    ts[i] = {p.data_ptr(), grads[i].const_data_ptr(), has_momentum ? momentum_buffers[i].data_ptr() : nullptr,
             nullptr,      nullptr,                   p.numel(),
             cpu::elem_type(p.scalar_type())};
  }
  const cpu::SgdRangeFn kernel = cpu::optim_kernels().sgd;
  cpu::for_all_chunks(ts, [&](int64_t t, int64_t begin, int64_t len) { kernel(ts[t], begin, len, c); });
}

}  // namespace fastlight
