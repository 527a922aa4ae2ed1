// grad_stats on the CPU: sum of squares and a non-finite flag in one read-only pass, one OpenMP region.
#include <ATen/ops/zeros.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cmath>
#include <vector>

#include "fastlight/checks.h"
#include "fastlight/cpu_chunks.h"
#include "fastlight/cpu_simd.h"
#include "fastlight/ops.h"

namespace fastlight {
namespace {

// Squares summed in float across SIMD lanes within one chunk (at most kCpuChunkElems elements, so each
// lane adds a few thousand terms), then in double across chunks. The non-finite flag comes from the sum
// of x*0: 0 for finite x and nan for inf/nan, so a finite float64 whose square overflows is not
// mistaken for a non-finite gradient.
template <typename T, typename Acc>
FASTLIGHT_INLINE void chunk_stats(const T* x, int64_t n, double& sq, double& poison) {
  Acc s = 0, p = 0;
#pragma omp simd reduction(+ : s, p)
  for (int64_t i = 0; i < n; ++i) {
    const Acc v = static_cast<Acc>(x[i]);
    s += v * v;
    p += v * Acc(0);
  }
  sq = static_cast<double>(s);
  poison = static_cast<double>(p);
}

FASTLIGHT_CPU_CLONES void stats_f32(const float* x, int64_t n, double& sq, double& poison) {
  chunk_stats<float, float>(x, n, sq, poison);
}
FASTLIGHT_CPU_CLONES void stats_f64(const double* x, int64_t n, double& sq, double& poison) {
  chunk_stats<double, double>(x, n, sq, poison);
}
FASTLIGHT_CPU_CLONES void stats_f16(const c10::Half* x, int64_t n, double& sq, double& poison) {
  chunk_stats<c10::Half, float>(x, n, sq, poison);
}
FASTLIGHT_CPU_CLONES void stats_bf16(const c10::BFloat16* x, int64_t n, double& sq, double& poison) {
  chunk_stats<c10::BFloat16, float>(x, n, sq, poison);
}

void stats(const at::Tensor& t, int64_t begin, int64_t len, double& sq, double& poison) {
  switch (t.scalar_type()) {
    case at::kFloat: return stats_f32(t.const_data_ptr<float>() + begin, len, sq, poison);
    case at::kDouble: return stats_f64(t.const_data_ptr<double>() + begin, len, sq, poison);
    case at::kHalf: return stats_f16(t.const_data_ptr<c10::Half>() + begin, len, sq, poison);
    case at::kBFloat16: return stats_bf16(t.const_data_ptr<c10::BFloat16>() + begin, len, sq, poison);
    default: break;  // rejected by check_tensor_list before the parallel region
  }
}

}  // namespace

at::Tensor grad_stats_cpu(at::TensorList tensors) {
  auto out = at::zeros({2}, at::TensorOptions().dtype(at::kFloat));
  if (tensors.empty()) return out;
  check_tensor_list("fastlight::grad_stats", "tensors", tensors, tensors[0].device());

  const auto chunks = make_cpu_chunks(tensors);
  const int64_t n_chunks = static_cast<int64_t>(chunks.size());
  std::vector<double> sq(n_chunks), poison(n_chunks);

// Dynamic: on a shared machine a descheduled thread would otherwise hold up a static split.
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t c = 0; c < n_chunks; ++c) {
    const CpuChunk& ch = chunks[c];
    stats(tensors[ch.tensor], ch.begin, ch.len, sq[c], poison[c]);
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
