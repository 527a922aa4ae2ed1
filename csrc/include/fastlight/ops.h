// Declarations of every op implementation; ops.cpp binds them to the schemas.
#pragma once
#include <ATen/core/Tensor.h>

namespace fastlight {

// grad_stats: one read-only pass over a list of tensors -> float32 [2]:
//   [0] sum of squares of all elements (accumulated in higher precision), [1] 1.0 if any element is inf/nan.
at::Tensor grad_stats_cpu(at::TensorList tensors);
#ifdef FASTLIGHT_WITH_CUDA
at::Tensor grad_stats_cuda(at::TensorList tensors);
#endif

}  // namespace fastlight
