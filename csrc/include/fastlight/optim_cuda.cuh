// Device helpers of the optimizer kernels (adam.cu, sgd.cu): per-step scalars read on the device, explicit
// round-to-nearest arithmetic (nvcc contracts a*b+c into FMA by default; the _rn intrinsics never are, so the
// CUDA kernels round exactly where the CPU kernels do and the two give the same bits), 16-bit conversions.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>

#include "fastlight/cuda_launch.h"
#include "fastlight/cuda_utils.cuh"

namespace fastlight {
namespace cuda {

constexpr int kOptimThreads = 256;
constexpr int kOptimMaxBlocks = 4096;

__device__ __forceinline__ double read_scalar(const DeviceScalar& s) {
  if (s.ptr == nullptr) return s.value;
  return s.is_double ? *static_cast<const double*>(s.ptr) : static_cast<double>(*static_cast<const float*>(s.ptr));
}

__device__ __forceinline__ bool skip_step(const float* found_inf) { return found_inf != nullptr && *found_inf != 0.f; }

// Compute type: float for float/half/bfloat16, double for double.
template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};

__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float sub_rn(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double sub_rn(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ float div_rn(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double div_rn(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ float sqrt_rn(float a) { return __fsqrt_rn(a); }
__device__ __forceinline__ double sqrt_rn(double a) { return __dsqrt_rn(a); }
__device__ __forceinline__ float fma_rn(float a, float b, float c) { return __fmaf_rn(a, b, c); }
__device__ __forceinline__ double fma_rn(double a, double b, double c) { return __fma_rn(a, b, c); }

// Loads and stores in the compute type; 16-bit stores round to nearest even (as the CPU kernels do).
template <typename T>
__device__ __forceinline__ typename Acc<T>::type to_acc(T x) {
  return static_cast<typename Acc<T>::type>(x);
}
template <>
__device__ __forceinline__ float to_acc<c10::Half>(c10::Half x) {
  return __half2float(__ushort_as_half(x.x));
}
template <>
__device__ __forceinline__ float to_acc<c10::BFloat16>(c10::BFloat16 x) {
  return __uint_as_float(static_cast<unsigned int>(x.x) << 16);
}

template <typename T>
__device__ __forceinline__ T from_acc(typename Acc<T>::type x) {
  return static_cast<T>(x);
}
template <>
__device__ __forceinline__ c10::Half from_acc<c10::Half>(float x) {
  c10::Half h;
  h.x = __half_as_ushort(__float2half_rn(x));
  return h;
}
template <>
__device__ __forceinline__ c10::BFloat16 from_acc<c10::BFloat16>(float x) {
  c10::BFloat16 b;
  b.x = __bfloat16_as_ushort(__float2bfloat16_rn(x));
  return b;
}

// The 16-byte vector path needs every pointer of the slice 16-byte aligned.
__device__ __forceinline__ bool all_aligned16(const void* a, const void* b, const void* c, const void* d,
                                              const void* e) {
  return aligned16(a) && aligned16(b) && (c == nullptr || aligned16(c)) && (d == nullptr || aligned16(d)) &&
         (e == nullptr || aligned16(e));
}

inline int optim_blocks(int64_t n_chunks) {
  return static_cast<int>(n_chunks < kOptimMaxBlocks ? n_chunks : kOptimMaxBlocks);
}

}  // namespace cuda
}  // namespace fastlight
