// Every fastlight schema, and the binding of each to its CPU and CUDA implementation. One place to read
// what the library offers; the implementations live in cpu/<family>.cpp and cuda/<family>.{cpp,cu}.
#include <torch/library.h>

#include "fastlight/ops.h"

TORCH_LIBRARY(fastlight, m) {
  m.def("grad_stats(Tensor[] tensors) -> Tensor");
  // Optimizer steps, in place. Per-step scalars are tensors (lr, grad_scale = inv_scale x clip coefficient,
  // found_inf) so that a CUDA step never syncs and a changing lr does not recompile under torch.compile.
  m.def(
      "adam_step_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] exp_avgs, Tensor(c!)[] exp_avg_sqs, "
      "Tensor(d!)[] max_exp_avg_sqs, Tensor(e!)[] state_steps, Tensor lr, float beta1, float beta2, "
      "float weight_decay, float eps, bool amsgrad, bool maximize, bool decoupled_weight_decay, "
      "Tensor? grad_scale=None, Tensor? found_inf=None) -> ()");
  m.def(
      "sgd_step_(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] momentum_buffers, Tensor lr, "
      "float weight_decay, float momentum, float dampening, bool nesterov, bool maximize, bool is_first_step, "
      "Tensor? grad_scale=None, Tensor? found_inf=None) -> ()");
  m.def("cpu_optim_isa() -> str", &fastlight::cpu_optim_isa);
  m.def("cpu_optim_set_isa(str cap) -> str", &fastlight::cpu_optim_set_isa);
}

TORCH_LIBRARY_IMPL(fastlight, CPU, m) {
  m.impl("grad_stats", &fastlight::grad_stats_cpu);
  m.impl("adam_step_", &fastlight::adam_step_cpu);
  m.impl("sgd_step_", &fastlight::sgd_step_cpu);
}

#ifdef FASTLIGHT_WITH_CUDA
TORCH_LIBRARY_IMPL(fastlight, CUDA, m) {
  m.impl("grad_stats", &fastlight::grad_stats_cuda);
  m.impl("adam_step_", &fastlight::adam_step_cuda);
  m.impl("sgd_step_", &fastlight::sgd_step_cuda);
}
#endif
