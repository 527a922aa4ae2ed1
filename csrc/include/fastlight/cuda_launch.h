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

}  // namespace cuda
}  // namespace fastlight
