// Host side of sgd_step_ on CUDA: checks, per-step scalars as device pointers, the tensor/chunk tables and
// one step kernel per dtype present. Never syncs the host.
#include "fastlight/optim_cuda_host.h"
#include "fastlight/ops.h"

namespace fastlight {

void sgd_step_cuda(at::TensorList params, at::TensorList grads, at::TensorList momentum_buffers,
                   const at::Tensor& lr, double weight_decay, double momentum, double dampening, bool nesterov,
                   bool maximize, bool is_first_step, const c10::optional<at::Tensor>& grad_scale,
                   const c10::optional<at::Tensor>& found_inf) {
  static const char* op = "fastlight::sgd_step_";
  const bool has_momentum = momentum != 0.0;
  const size_t n = check_sgd_lists(op, params, grads, momentum_buffers, has_momentum);
  if (n == 0) return;
  const c10::Device device = params[0].device();
  c10::cuda::CUDAGuard guard(device);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device.index()).stream();
  std::vector<at::Tensor> keep;
  bool skip = false;
  cuda::SgdLaunchArgs a{};
  a.found_inf = cuda::found_inf_ptr(op, found_inf, device, keep, &skip);
  if (skip) return;
  a.lr = cuda::device_scalar(op, "lr", lr, device, keep);
  a.grad_scale = grad_scale.has_value() ? cuda::device_scalar(op, "grad_scale", *grad_scale, device, keep)
                                        : cuda::DeviceScalar{nullptr, false, 1.0};
  a.weight_decay = weight_decay;
  a.momentum = momentum;
  a.dampening = dampening;
  a.has_momentum = has_momentum;
  a.nesterov = nesterov;
  a.maximize = maximize;
  a.first_step = is_first_step;
  const at::TensorList none;
  auto tables = cuda::build_optim_tables(params, grads, has_momentum ? momentum_buffers : none, none, none, none,
                                         device);
  for (const auto& g : tables.groups)
    cuda::sgd_step_launch(std::get<0>(g), tables.metas, std::get<1>(g), std::get<2>(g), a, stream);
}

}  // namespace fastlight
