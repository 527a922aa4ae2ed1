// Splitting a list of tensors into fixed-size chunks so one OpenMP region covers all of them
// (torch's CPU multi-tensor ops fork/join once per tensor; many small tensors then cost more in
// thread wake-ups than in arithmetic).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace fastlight {

struct CpuChunk {
  int64_t tensor;  // index into the list
  int64_t begin;   // first element
  int64_t len;     // element count
};

constexpr int64_t kCpuChunkElems = int64_t(1) << 15;

inline std::vector<CpuChunk> make_cpu_chunks(at::TensorList ts, int64_t chunk = kCpuChunkElems) {
  std::vector<CpuChunk> out;
  for (size_t i = 0; i < ts.size(); ++i) {
    const int64_t n = ts[i].numel();
    for (int64_t b = 0; b < n; b += chunk) out.push_back({int64_t(i), b, std::min(chunk, n - b)});
  }
  return out;
}

}  // namespace fastlight
