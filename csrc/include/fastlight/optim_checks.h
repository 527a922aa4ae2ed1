// Argument checks and scalar reads shared by the optimizer ops (CPU and CUDA host glue).
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <c10/util/Optional.h>

#include <vector>

namespace fastlight {

// Each companion list (grads, states) must pair with params element by element: same device, dtype, number
// of elements and layout (non-overlapping and dense, equal strides), so one linear walk covers all of them.
inline void check_companion(const char* op, const char* arg, size_t i, const at::Tensor& param,
                            const at::Tensor& t) {
  TORCH_CHECK(t.defined(), op, ": ", arg, "[", i, "] is undefined");
  TORCH_CHECK(t.layout() == at::kStrided, op, ": ", arg, "[", i, "] must be dense, got layout ", t.layout());
  TORCH_CHECK(t.device() == param.device(), op, ": ", arg, "[", i, "] is on ", t.device(), " but params[", i,
              "] is on ", param.device());
  TORCH_CHECK(t.scalar_type() == param.scalar_type(), op, ": ", arg, "[", i, "] has dtype ", t.scalar_type(),
              " but params[", i, "] has dtype ", param.scalar_type());
  TORCH_CHECK(t.sizes() == param.sizes(), op, ": ", arg, "[", i, "] has shape ", t.sizes(), " but params[", i,
              "] has shape ", param.sizes());
  TORCH_CHECK(t.numel() == 0 || (t.is_non_overlapping_and_dense() && t.strides() == param.strides()), op, ": ",
              arg, "[", i, "] must have the memory layout of params[", i, "] (strides ", t.strides(), " vs ",
              param.strides(), ")");
}

inline void check_param(const char* op, size_t i, const at::Tensor& p, const c10::Device& device) {
  TORCH_CHECK(p.defined(), op, ": params[", i, "] is undefined");
  TORCH_CHECK(p.layout() == at::kStrided, op, ": params[", i, "] must be dense, got layout ", p.layout());
  TORCH_CHECK(p.device() == device, op, ": params[", i, "] is on ", p.device(), " but params[0] is on ",
              device);
  const auto st = p.scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16, op,
              ": params[", i, "] has unsupported dtype ", st, " (float32, float64, float16, bfloat16 only)");
  TORCH_CHECK(p.numel() == 0 || p.is_non_overlapping_and_dense(), op, ": params[", i,
              "] must be non-overlapping and dense (sizes ", p.sizes(), ", strides ", p.strides(), ")");
}

inline void check_list_len(const char* op, const char* arg, size_t got, size_t want) {
  TORCH_CHECK(got == want, op, ": ", arg, " has ", got, " tensors but params has ", want);
}

// A per-step scalar given as a one-element tensor (lr, grad_scale, found_inf).
inline void check_scalar_tensor(const char* op, const char* arg, const at::Tensor& t) {
  TORCH_CHECK(t.defined(), op, ": ", arg, " is undefined");
  TORCH_CHECK(t.numel() == 1, op, ": ", arg, " must have one element, got shape ", t.sizes());
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), op, ": ", arg, " must be a floating-point tensor, got ",
              t.scalar_type());
}

// The list checks of adam_step_, shared by the CPU op and the CUDA host glue. Returns the param count.
inline size_t check_adam_lists(const char* op, at::TensorList params, at::TensorList grads,
                               at::TensorList exp_avgs, at::TensorList exp_avg_sqs,
                               at::TensorList max_exp_avg_sqs, at::TensorList state_steps, bool amsgrad) {
  const size_t n = params.size();
  check_list_len(op, "grads", grads.size(), n);
  check_list_len(op, "exp_avgs", exp_avgs.size(), n);
  check_list_len(op, "exp_avg_sqs", exp_avg_sqs.size(), n);
  check_list_len(op, "state_steps", state_steps.size(), n);
  if (amsgrad) check_list_len(op, "max_exp_avg_sqs", max_exp_avg_sqs.size(), n);
  if (n == 0) return 0;
  const c10::Device device = params[0].device();
  for (size_t i = 0; i < n; ++i) {
    check_param(op, i, params[i], device);
    check_companion(op, "grads", i, params[i], grads[i]);
    check_companion(op, "exp_avgs", i, params[i], exp_avgs[i]);
    check_companion(op, "exp_avg_sqs", i, params[i], exp_avg_sqs[i]);
    if (amsgrad) check_companion(op, "max_exp_avg_sqs", i, params[i], max_exp_avg_sqs[i]);
  }
  return n;
}

// The list checks of sgd_step_ (momentum buffers only when momentum is used). Returns the param count.
inline size_t check_sgd_lists(const char* op, at::TensorList params, at::TensorList grads,
                              at::TensorList momentum_buffers, bool has_momentum) {
  const size_t n = params.size();
  check_list_len(op, "grads", grads.size(), n);
  if (has_momentum) check_list_len(op, "momentum_buffers", momentum_buffers.size(), n);
  if (n == 0) return 0;
  const c10::Device device = params[0].device();
  for (size_t i = 0; i < n; ++i) {
    check_param(op, i, params[i], device);
    check_companion(op, "grads", i, params[i], grads[i]);
    if (has_momentum) check_companion(op, "momentum_buffers", i, params[i], momentum_buffers[i]);
  }
  return n;
}

}  // namespace fastlight
