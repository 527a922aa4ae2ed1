// Host-side helpers of the CPU optimizer ops (ATen allowed here, unlike optim_cpu.h).
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <vector>

#include "fastlight/cpu_chunks.h"
#include "fastlight/optim_checks.h"
#include "fastlight/optim_cpu.h"

namespace fastlight {
namespace cpu {

inline ElemType elem_type(at::ScalarType st) {
  switch (st) {
    case at::kFloat: return ElemType::Float;
    case at::kDouble: return ElemType::Double;
    case at::kHalf: return ElemType::Half;
    case at::kBFloat16: return ElemType::BFloat16;
    default: TORCH_CHECK(false, "fastlight: unsupported dtype ", st);
  }
}

inline double read_cpu_scalar(const char* op, const char* arg, const at::Tensor& t) {
  check_scalar_tensor(op, arg, t);
  TORCH_CHECK(t.device().is_cpu(), op, ": ", arg, " must be on the CPU for CPU params, got ", t.device());
  // Read in place: t.item() would dispatch an op, microseconds per call.
  switch (t.scalar_type()) {
    case at::kFloat: return static_cast<double>(*t.const_data_ptr<float>());
    case at::kDouble: return *t.const_data_ptr<double>();
    case at::kHalf: return static_cast<double>(static_cast<float>(*t.const_data_ptr<c10::Half>()));
    case at::kBFloat16: return static_cast<double>(static_cast<float>(*t.const_data_ptr<c10::BFloat16>()));
    default: TORCH_CHECK(false, op, ": ", arg, " has unsupported dtype ", t.scalar_type());
  }
}

// Adds one to a 0-dim step counter in place and returns the new value (float32 or float64 counters).
inline double bump_step(const char* op, size_t i, const at::Tensor& s) {
  TORCH_CHECK(s.defined() && s.numel() == 1 && s.device().is_cpu(), op, ": state_steps[", i,
              "] must be a one-element CPU tensor");
  if (s.scalar_type() == at::kFloat) {
    float* v = s.data_ptr<float>();
    *v += 1.0f;
    return static_cast<double>(*v);
  }
  TORCH_CHECK(s.scalar_type() == at::kDouble, op, ": state_steps[", i, "] must be float32 or float64, got ",
              s.scalar_type());
  double* v = s.data_ptr<double>();
  *v += 1.0;
  return *v;
}

// Runs fn(tensor_index, begin, len) over chunks of all tensors in one OpenMP region.
template <typename Fn>
void for_all_chunks(const std::vector<OptimTensor>& ts, Fn&& fn) {
  std::vector<CpuChunk> chunks;
  chunks.reserve(ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    const int64_t n = ts[i].numel;
    for (int64_t b = 0; b < n; b += kCpuChunkElems)
      chunks.push_back({int64_t(i), b, std::min(kCpuChunkElems, n - b)});
  }
  const int64_t n_chunks = static_cast<int64_t>(chunks.size());
  if (n_chunks == 0) return;
  if (n_chunks == 1) {  // no thread wake-up for a single small tensor
    fn(chunks[0].tensor, chunks[0].begin, chunks[0].len);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < n_chunks; ++c) fn(chunks[c].tensor, chunks[c].begin, chunks[c].len);
}

}  // namespace cpu

}  // namespace fastlight
