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

}  // namespace fastlight
