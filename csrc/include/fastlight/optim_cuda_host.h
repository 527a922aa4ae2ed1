// Host glue shared by the CUDA optimizer ops (adam_host.cpp, sgd_host.cpp): per-step scalars as device
// pointers, and the tensor/chunk tables (pinned host memory, copied without blocking the host).
#pragma once
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <array>
#include <vector>

#include "fastlight/cuda_host.h"
#include "fastlight/optim_checks.h"

namespace fastlight {
namespace cuda {

// A one-element float tensor as a DeviceScalar: a CPU tensor is read now (host memory, no sync); a device
// tensor is passed by address (float32/float64; other dtypes converted on the device, kept alive in `keep`).
inline DeviceScalar device_scalar(const char* op, const char* arg, const at::Tensor& t, const c10::Device& device,
                                  std::vector<at::Tensor>& keep) {
  check_scalar_tensor(op, arg, t);
  DeviceScalar s{nullptr, false, 0.0};
  if (t.device().is_cpu()) {
    s.value = t.to(at::kDouble).item<double>();  // CPU memory: no device sync
    return s;
  }
  TORCH_CHECK(t.device() == device, op, ": ", arg, " is on ", t.device(), " but the params are on ", device);
  at::Tensor d = t;
  if (d.scalar_type() != at::kFloat && d.scalar_type() != at::kDouble) {
    d = d.to(at::kFloat);
    keep.push_back(d);
  }
  s.ptr = d.const_data_ptr();
  s.is_double = d.scalar_type() == at::kDouble;
  return s;
}

// found_inf: nullptr when absent; *skip = true when it is a nonzero CPU value (nothing to launch).
inline const float* found_inf_ptr(const char* op, const c10::optional<at::Tensor>& t, const c10::Device& device,
                                  std::vector<at::Tensor>& keep, bool* skip) {
  *skip = false;
  if (!t.has_value()) return nullptr;
  check_scalar_tensor(op, "found_inf", *t);
  if (t->device().is_cpu()) {
    *skip = t->to(at::kDouble).item<double>() != 0.0;
    return nullptr;
  }
  TORCH_CHECK(t->device() == device, op, ": found_inf is on ", t->device(), " but the params are on ", device);
  at::Tensor f = *t;
  if (f.scalar_type() != at::kFloat) {
    f = f.to(at::kFloat);
    keep.push_back(f);
  }
  return f.const_data_ptr<float>();
}

struct OptimTables {
  at::Tensor device_table;  // keeps the device copy alive until the launches are queued
  const int64_t* metas = nullptr;
  int64_t n_tensors = 0;
  // per dtype present: (dtype, pointer to its first chunk, chunk count)
  std::vector<std::tuple<DType, const int64_t*, int64_t>> groups;
};

// Tables for params[i] with companions (lists may be empty: address 0). Tensors are ordered by dtype so each
// dtype's chunks are contiguous; every tensor gets a meta row (empty ones too: their step still counts).
inline OptimTables build_optim_tables(at::TensorList params, at::TensorList grads, at::TensorList s0,
                                      at::TensorList s1, at::TensorList s2, at::TensorList steps,
                                      const c10::Device& device) {
  OptimTables out;
  const int64_t n = static_cast<int64_t>(params.size());
  out.n_tensors = n;
  const std::array<at::ScalarType, 4> order{at::kFloat, at::kBFloat16, at::kHalf, at::kDouble};
  std::vector<int64_t> meta;
  meta.reserve(n * kOptimMetaFields);
  std::vector<std::vector<int64_t>> chunks(order.size());
  auto addr = [](at::TensorList l, int64_t i) -> int64_t {
    return l.empty() ? 0 : reinterpret_cast<int64_t>(l[i].const_data_ptr());
  };
  int64_t row = 0;
  for (size_t d = 0; d < order.size(); ++d) {
    for (int64_t i = 0; i < n; ++i) {
      if (params[i].scalar_type() != order[d]) continue;
      const int64_t numel = params[i].numel();
      meta.insert(meta.end(), {addr(params, i), addr(grads, i), addr(s0, i), addr(s1, i), addr(s2, i),
                               addr(steps, i), numel});
      for (int64_t b = 0; b < numel; b += kOptimChunkElems)
        chunks[d].insert(chunks[d].end(), {row, b, std::min<int64_t>(kOptimChunkElems, numel - b)});
      ++row;
    }
  }
  int64_t total = static_cast<int64_t>(meta.size());
  for (auto& c : chunks) total += static_cast<int64_t>(c.size());
  auto host = at::empty({total}, at::TensorOptions().dtype(at::kLong).pinned_memory(true));
  int64_t* h = host.data_ptr<int64_t>();
  std::copy(meta.begin(), meta.end(), h);
  int64_t pos = static_cast<int64_t>(meta.size());
  std::vector<std::pair<int64_t, int64_t>> offsets(order.size());
  for (size_t d = 0; d < order.size(); ++d) {
    std::copy(chunks[d].begin(), chunks[d].end(), h + pos);
    offsets[d] = {pos, static_cast<int64_t>(chunks[d].size()) / kOptimChunkFields};
    pos += static_cast<int64_t>(chunks[d].size());
  }
  // non_blocking from pinned memory: the caching host allocator keeps `host` alive until the copy ran.
  out.device_table = host.to(device, /*non_blocking=*/true);
  const int64_t* base = out.device_table.const_data_ptr<int64_t>();
  out.metas = base;
  for (size_t d = 0; d < order.size(); ++d)
    if (offsets[d].second > 0) out.groups.emplace_back(dtype_code(order[d]), base + offsets[d].first, offsets[d].second);
  return out;
}

}  // namespace cuda
}  // namespace fastlight
