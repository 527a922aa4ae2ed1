// Device helpers shared by the .cu files: 16-byte vector packs, block reductions, error checks.
#pragma once
#include <cuda_runtime.h>

#include <c10/util/Exception.h>

#include <cstdint>

#define FASTLIGHT_CUDA_CHECK(expr)                                                         \
  do {                                                                                     \
    cudaError_t err__ = (expr);                                                            \
    TORCH_CHECK(err__ == cudaSuccess, "fastlight CUDA error: ", cudaGetErrorString(err__)); \
  } while (0)

namespace fastlight {
namespace cuda {

// 16 bytes of T: one vector load/store instruction.
template <typename T>
struct alignas(16) Pack16 {
  static constexpr int kN = 16 / sizeof(T);
  T v[kN];
};

__device__ __forceinline__ bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Sum over a block (blockDim.x a multiple of 32, at most 1024). Result valid in thread 0.
template <typename Acc>
__device__ __forceinline__ Acc block_sum(Acc v) {
  __shared__ Acc warp_sums[32];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  const int n_warps = blockDim.x >> 5;
  v = (threadIdx.x < n_warps) ? warp_sums[lane] : Acc(0);
  if (warp == 0)
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  __syncthreads();  // warp_sums may be reused by a following call
  return v;
}

}  // namespace cuda
}  // namespace fastlight
