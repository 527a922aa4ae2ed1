// Host side of grad_stats on CUDA: groups the tensors by dtype, builds the chunk table in pinned memory,
// copies it without blocking the host, launches one partials kernel per dtype and one finishing kernel.
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <map>
#include <vector>

#include "fastlight/checks.h"
#include "fastlight/cuda_host.h"
#include "fastlight/ops.h"

namespace fastlight {

namespace {
constexpr int64_t kCudaChunkElems = int64_t(1) << 16;
}

at::Tensor grad_stats_cuda(at::TensorList tensors) {
  TORCH_CHECK(!tensors.empty(), "fastlight::grad_stats: empty list has no device");
  const c10::Device device = tensors[0].device();
  check_tensor_list("fastlight::grad_stats", "tensors", tensors, device);
  c10::cuda::CUDAGuard guard(device);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device.index()).stream();

  // Chunk table per dtype: [ptrs..., lens...] so each group is two contiguous device arrays.
  std::map<at::ScalarType, std::pair<std::vector<int64_t>, std::vector<int64_t>>> groups;
  for (const auto& t : tensors) {
    const int64_t n = t.numel();
    if (n == 0) continue;
    auto& g = groups[t.scalar_type()];
    const int64_t base = reinterpret_cast<int64_t>(t.const_data_ptr());
    const int64_t elem = t.element_size();
    for (int64_t b = 0; b < n; b += kCudaChunkElems) {
      g.first.push_back(base + b * elem);
      g.second.push_back(std::min(kCudaChunkElems, n - b));
    }
  }
  auto out = at::zeros({2}, tensors[0].options().dtype(at::kFloat));
  if (groups.empty()) return out;

  int64_t table_len = 0;
  for (auto& kv : groups) table_len += 2 * static_cast<int64_t>(kv.second.first.size());
  auto host_table = at::empty({table_len}, at::TensorOptions().dtype(at::kLong).pinned_memory(true));
  int64_t* h = host_table.data_ptr<int64_t>();
  int64_t pos = 0;
  for (auto& kv : groups) {
    for (int64_t v : kv.second.first) h[pos++] = v;
    for (int64_t v : kv.second.second) h[pos++] = v;
  }
  // non_blocking from pinned memory: the caching host allocator keeps host_table alive until the copy ran.
  auto table = host_table.to(device, /*non_blocking=*/true);
  const int64_t* d = table.const_data_ptr<int64_t>();

  const int max_blocks = cuda::grad_stats_max_blocks();
  auto partials = at::empty({static_cast<int64_t>(groups.size()) * max_blocks * 2},
                            tensors[0].options().dtype(at::kFloat));
  float* part = partials.data_ptr<float>();
  int64_t used = 0;
  pos = 0;
  for (auto& kv : groups) {
    const int64_t n_chunks = static_cast<int64_t>(kv.second.first.size());
    used += cuda::grad_stats_partials(cuda::dtype_code(kv.first), d + pos, d + pos + n_chunks, n_chunks,
                                      part + 2 * used, max_blocks, stream);
    pos += 2 * n_chunks;
  }
  cuda::grad_stats_finish(part, used, out.data_ptr<float>(), stream);
  return out;
}

}  // namespace fastlight
