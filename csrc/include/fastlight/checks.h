// Argument checks shared by every op: each failure names the op, the argument and the index.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace fastlight {

// All tensors of a list: same device, dense and contiguous (the kernels walk raw memory).
inline void check_tensor_list(const char* op, const char* arg, at::TensorList ts, const c10::Device& device) {
  for (size_t i = 0; i < ts.size(); ++i) {
    const at::Tensor& t = ts[i];
    TORCH_CHECK(t.defined(), op, ": ", arg, "[", i, "] is undefined");
    TORCH_CHECK(t.layout() == at::kStrided, op, ": ", arg, "[", i, "] must be a dense tensor, got layout ",
                t.layout());
    TORCH_CHECK(t.device() == device, op, ": ", arg, "[", i, "] is on ", t.device(), " but ", arg,
                "[0] is on ", device);
    TORCH_CHECK(t.is_contiguous(), op, ": ", arg, "[", i, "] must be contiguous (got sizes ", t.sizes(),
                ", strides ", t.strides(), ")");
    auto st = t.scalar_type();
    TORCH_CHECK(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16, op, ": ",
                arg, "[", i, "] has unsupported dtype ", st, " (float32, float64, float16, bfloat16 only)");
  }
}

}  // namespace fastlight
