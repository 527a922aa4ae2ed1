// Host-side helpers for the CUDA op implementations (compiled by the C++ compiler, not nvcc).
#pragma once
#include <ATen/core/Tensor.h>

#include "fastlight/cuda_launch.h"

namespace fastlight {
namespace cuda {

inline DType dtype_code(at::ScalarType st) {
  switch (st) {
    case at::kFloat: return DType::Float;
    case at::kDouble: return DType::Double;
    case at::kHalf: return DType::Half;
    case at::kBFloat16: return DType::BFloat16;
    default: TORCH_CHECK(false, "fastlight: unsupported dtype ", st);
  }
}

}  // namespace cuda
}  // namespace fastlight
