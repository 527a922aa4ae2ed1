// grad_stats on the CPU: sum of squares and a non-finite flag in one read-only pass, one OpenMP region.
#include <ATen/Dispatch.h>
#include <ATen/ops/zeros.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cmath>
#include <vector>

#include "fastlight/checks.h"
#include "fastlight/cpu_chunks.h"
#include "fastlight/ops.h"

namespace fastlight {
namespace {

// Squares summed in double. The non-finite flag comes from `poison`, the sum of x*0: 0 for finite x and nan
// for inf/nan, so a finite float64 whose square overflows is not mistaken for a non-finite gradient.
template <typename T>
void chunk_stats(const T* x, int64_t n, double& sq, double& poison) {
  double s = 0.0, p = 0.0;
#pragma omp simd reduction(+ : s, p)
  for (int64_t i = 0; i < n; ++i) {
    const double v = static_cast<double>(static_cast<float>(x[i]));
    s += v * v;
    p += v * 0.0;
  }
  sq = s;
  poison = p;
}

template <>
void chunk_stats<double>(const double* x, int64_t n, double& sq, double& poison) {
  double s = 0.0, p = 0.0;
#pragma omp simd reduction(+ : s, p)
  for (int64_t i = 0; i < n; ++i) {
    s += x[i] * x[i];
    p += x[i] * 0.0;
  }
  sq = s;
  poison = p;
}

}  // namespace

at::Tensor grad_stats_cpu(at::TensorList tensors) {
  auto out = at::zeros({2}, at::TensorOptions().dtype(at::kFloat));
  if (tensors.empty()) return out;
  check_tensor_list("fastlight::grad_stats", "tensors", tensors, tensors[0].device());

  const auto chunks = make_cpu_chunks(tensors);
  const int64_t n_chunks = static_cast<int64_t>(chunks.size());
  std::vector<double> sq(n_chunks), poison(n_chunks);

#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < n_chunks; ++c) {
    const CpuChunk& ch = chunks[c];
    const at::Tensor& t = tensors[ch.tensor];
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, t.scalar_type(), "grad_stats_cpu", [&] {
      chunk_stats<scalar_t>(t.const_data_ptr<scalar_t>() + ch.begin, ch.len, sq[c], poison[c]);
    });
  }
  // Combined in a fixed order so the result does not depend on the thread count's scheduling.
  double total = 0.0, total_poison = 0.0;
  for (int64_t c = 0; c < n_chunks; ++c) {
    total += sq[c];
    total_poison += poison[c];
  }
  float* o = out.data_ptr<float>();
  o[0] = static_cast<float>(total);
  o[1] = std::isnan(total_poison) ? 1.0f : 0.0f;
  return out;
}

}  // namespace fastlight
