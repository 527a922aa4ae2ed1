// Host side of adam_step_ on CUDA: checks, per-step scalars as device pointers, the tensor/chunk tables, one
// step kernel per dtype present and one small kernel that bumps the step counters. Never syncs the host.
#include "fastlight/optim_cuda_host.h"
#include "fastlight/ops.h"

namespace fastlight {

void adam_step_cuda(at::TensorList params, at::TensorList grads, at::TensorList exp_avgs,
                    at::TensorList exp_avg_sqs, at::TensorList max_exp_avg_sqs, at::TensorList state_steps,
                    const at::Tensor& lr, double beta1, double beta2, double weight_decay, double eps,
                    bool amsgrad, bool maximize, bool decoupled_weight_decay,
                    const c10::optional<at::Tensor>& grad_scale, const c10::optional<at::Tensor>& found_inf) {
  static const char* op = "fastlight::adam_step_";
  const size_t n =
      check_adam_lists(op, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, amsgrad);
  if (n == 0) return;
  const c10::Device device = params[0].device();
  for (size_t i = 0; i < n; ++i) {
    const at::Tensor& s = state_steps[i];
    TORCH_CHECK(s.defined() && s.numel() == 1 && s.device() == device && s.scalar_type() == at::kFloat, op,
                ": state_steps[", i, "] must be a one-element float32 tensor on ", device);
  }
  c10::cuda::CUDAGuard guard(device);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device.index()).stream();
  std::vector<at::Tensor> keep;
  bool skip = false;
  cuda::AdamLaunchArgs a{};
  a.found_inf = cuda::found_inf_ptr(op, found_inf, device, keep, &skip);
  if (skip) return;
  a.lr = cuda::device_scalar(op, "lr", lr, device, keep);
  a.grad_scale = grad_scale.has_value() ? cuda::device_scalar(op, "grad_scale", *grad_scale, device, keep)
                                        : cuda::DeviceScalar{nullptr, false, 1.0};
  a.beta1 = beta1;
  a.beta2 = beta2;
  a.weight_decay = weight_decay;
  a.eps = eps;
  a.amsgrad = amsgrad;
  a.maximize = maximize;
  a.decoupled_weight_decay = decoupled_weight_decay;
  const at::TensorList none;
  auto tables = cuda::build_optim_tables(params, grads, exp_avgs, exp_avg_sqs, amsgrad ? max_exp_avg_sqs : none,
                                         state_steps, device);
  for (const auto& g : tables.groups)
    cuda::adam_step_launch(std::get<0>(g), tables.metas, std::get<1>(g), std::get<2>(g), a, stream);
  // After the step kernels (stream order): they read the counters' old values.
  cuda::optim_bump_steps(tables.metas, tables.n_tensors, a.found_inf, stream);
}

}  // namespace fastlight
