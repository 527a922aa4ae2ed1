// Every fastlight schema, and the binding of each to its CPU and CUDA implementation. One place to read
// what the library offers; the implementations live in cpu/<family>.cpp and cuda/<family>.{cpp,cu}.
#include <torch/library.h>

#include "fastlight/ops.h"

TORCH_LIBRARY(fastlight, m) {
  m.def("grad_stats(Tensor[] tensors) -> Tensor");
}

TORCH_LIBRARY_IMPL(fastlight, CPU, m) {
  m.impl("grad_stats", &fastlight::grad_stats_cpu);
}

#ifdef FASTLIGHT_WITH_CUDA
TORCH_LIBRARY_IMPL(fastlight, CUDA, m) {
  m.impl("grad_stats", &fastlight::grad_stats_cuda);
}
#endif
