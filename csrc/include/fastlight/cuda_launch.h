// Kernel launchers of the .cu files. Plain C++ types only, so the .cu files need no ATen headers and
// the host glue (.cpp, compiled by the C++ compiler) needs no CUDA device code.
#pragma once
#include <cstdint>

typedef struct CUstream_st* cudaStream_t;

namespace fastlight {
namespace cuda {

enum class DType : int { Float = 0, Double = 1, Half = 2, BFloat16 = 3 };

// grad_stats over `n_chunks` chunks described by device arrays (chunk_ptr[i], chunk_len[i]) of one dtype.
// Writes one (sum of squares, non-finite flag) pair per block into partials[2 * block]; returns the block count.
int grad_stats_partials(DType dtype, const int64_t* chunk_ptr, const int64_t* chunk_len, int64_t n_chunks,
                        float* partials, int max_blocks, cudaStream_t stream);
// Reduces `n` partial pairs into out[0..1], in a fixed order (deterministic).
void grad_stats_finish(const float* partials, int64_t n, float* out, cudaStream_t stream);
// Upper bound on the number of blocks grad_stats_partials uses.
int grad_stats_max_blocks();

// ---- optimizer steps (adam.cu, sgd.cu) ----------------------------------------------------------------------
// Device tables built by the host glue, int64 fields:
//   tensor table, kOptimMetaFields per tensor: param, grad, state0, state1, state2, step (addresses), numel
//     Adam: state0 = exp_avg, state1 = exp_avg_sq, state2 = max_exp_avg_sq (0 unless amsgrad),
//           step = float32 counter (read as old value; +1 applied by optim_bump_steps after the step kernel)
//     SGD:  state0 = momentum_buffer (0 when momentum == 0), state1 = state2 = step = 0
//   chunk table, kOptimChunkFields per chunk: tensor index, first element, element count
constexpr int kOptimMetaFields = 7;
constexpr int kOptimChunkFields = 3;
// One block per chunk. 16K-element chunks (more blocks for small sets, a shorter last wave) measured 2-14%
// slower than 64K on an H200 in every optimizer row (BENCHMARKS.md): the per-chunk set-up costs more.
constexpr long long kOptimChunkElems = 1LL << 16;

// A per-step scalar: a device pointer (read in the kernel, no host sync) or, when ptr is null, the value.
struct DeviceScalar {
  const void* ptr;  // float32 or float64 on the device, or null
  bool is_double;
  double value;     // used when ptr is null
};

struct AdamLaunchArgs {
  DeviceScalar lr;
  DeviceScalar grad_scale;  // multiplier; value 1 and null ptr when absent
  const float* found_inf;   // device flag (nonzero: skip everything) or null
  double beta1, beta2, weight_decay, eps;
  bool amsgrad, maximize, decoupled_weight_decay;
};

struct SgdLaunchArgs {
  DeviceScalar lr;
  DeviceScalar grad_scale;
  const float* found_inf;
  double weight_decay, momentum, dampening;
  bool has_momentum, nesterov, maximize, first_step;
};

// One grid-stride launch over the chunks [chunk_begin, chunk_begin + n_chunks) of one dtype.
void adam_step_launch(DType dtype, const int64_t* metas, const int64_t* chunks, int64_t n_chunks,
                      const AdamLaunchArgs& args, cudaStream_t stream);
void sgd_step_launch(DType dtype, const int64_t* metas, const int64_t* chunks, int64_t n_chunks,
                     const SgdLaunchArgs& args, cudaStream_t stream);
// step += 1 for every tensor of the table (unless *found_inf != 0): one small launch after the step kernels.
void optim_bump_steps(const int64_t* metas, int64_t n_tensors, const float* found_inf, cudaStream_t stream);

}  // namespace cuda
}  // namespace fastlight
