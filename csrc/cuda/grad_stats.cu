// grad_stats on CUDA: blocks walk a chunk table (grid-stride over chunks), 16-byte loads where aligned,
// per-block partials reduced by a second one-block kernel in a fixed order (deterministic result).
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include "fastlight/cuda_launch.h"
#include "fastlight/cuda_utils.cuh"

namespace fastlight {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 2048;

template <typename T>
__device__ __forceinline__ void accumulate(T x, float& sq, int& bad) {
  const float v = static_cast<float>(x);
  sq += v * v;
  bad |= !isfinite(v);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    grad_stats_kernel(const int64_t* __restrict__ chunk_ptr, const int64_t* __restrict__ chunk_len,
                      int64_t n_chunks, float* __restrict__ partials) {
  using P = Pack16<T>;
  float sq = 0.f;
  int bad = 0;
  for (int64_t c = blockIdx.x; c < n_chunks; c += gridDim.x) {
    const T* p = reinterpret_cast<const T*>(chunk_ptr[c]);
    const int64_t n = chunk_len[c];
    int64_t done = 0;
    if (aligned16(p)) {
      const int64_t n_packs = n / P::kN;
      const P* pp = reinterpret_cast<const P*>(p);
      for (int64_t i = threadIdx.x; i < n_packs; i += blockDim.x) {
        const P pk = pp[i];
#pragma unroll
        for (int k = 0; k < P::kN; ++k) accumulate(pk.v[k], sq, bad);
      }
      done = n_packs * P::kN;
    }
    for (int64_t i = done + threadIdx.x; i < n; i += blockDim.x) accumulate(p[i], sq, bad);
  }
  sq = block_sum(sq);
  bad = block_sum(bad);
  if (threadIdx.x == 0) {
    partials[2 * blockIdx.x] = sq;
    partials[2 * blockIdx.x + 1] = bad ? 1.f : 0.f;
  }
}

__global__ void __launch_bounds__(kThreads)
    grad_stats_finish_kernel(const float* __restrict__ partials, int64_t n, float* __restrict__ out) {
  double sq = 0.0, bad = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    sq += partials[2 * i];
    bad += partials[2 * i + 1];
  }
  sq = block_sum(sq);
  bad = block_sum(bad);
  if (threadIdx.x == 0) {
    out[0] = static_cast<float>(sq);
    out[1] = bad > 0.0 ? 1.f : 0.f;
  }
}

template <typename T>
int launch(const int64_t* chunk_ptr, const int64_t* chunk_len, int64_t n_chunks, float* partials,
           int max_blocks, cudaStream_t stream) {
  const int blocks = static_cast<int>(n_chunks < max_blocks ? n_chunks : max_blocks);
  if (blocks == 0) return 0;
  grad_stats_kernel<T><<<blocks, kThreads, 0, stream>>>(chunk_ptr, chunk_len, n_chunks, partials);
  FASTLIGHT_CUDA_CHECK(cudaGetLastError());
  return blocks;
}

}  // namespace

int grad_stats_max_blocks() { return kMaxBlocks; }

int grad_stats_partials(DType dtype, const int64_t* chunk_ptr, const int64_t* chunk_len, int64_t n_chunks,
                        float* partials, int max_blocks, cudaStream_t stream) {
  if (max_blocks <= 0 || max_blocks > kMaxBlocks) max_blocks = kMaxBlocks;
  switch (dtype) {
    case DType::Float:
      return launch<float>(chunk_ptr, chunk_len, n_chunks, partials, max_blocks, stream);
    case DType::Double:
      return launch<double>(chunk_ptr, chunk_len, n_chunks, partials, max_blocks, stream);
    case DType::Half:
      return launch<c10::Half>(chunk_ptr, chunk_len, n_chunks, partials, max_blocks, stream);
    case DType::BFloat16:
      return launch<c10::BFloat16>(chunk_ptr, chunk_len, n_chunks, partials, max_blocks, stream);
  }
  TORCH_CHECK(false, "fastlight::grad_stats: unknown dtype code ", static_cast<int>(dtype));
}

void grad_stats_finish(const float* partials, int64_t n, float* out, cudaStream_t stream) {
  grad_stats_finish_kernel<<<1, kThreads, 0, stream>>>(partials, n, out);
  FASTLIGHT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace cuda
}  // namespace fastlight
