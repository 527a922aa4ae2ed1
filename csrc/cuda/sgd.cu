// SGD on CUDA: one grid-stride launch per dtype over the chunk table, 16-byte vector loads where aligned,
// lr/grad_scale/found_inf read on the device. Same arithmetic as the CPU kernel (optim_cpu_body.inc).
#include "fastlight/optim_cuda.cuh"

namespace fastlight {
namespace cuda {
namespace {

template <typename A>
struct SgdScalars {
  A scale, sign, wd, mom, damp, neg_lr;
};

template <typename A, bool kMomentum, bool kFirst, bool kNesterov, bool kWd>
__device__ __forceinline__ void sgd_element(A& p, A g, A& buf, const SgdScalars<A>& s) {
  g = mul_rn(mul_rn(g, s.scale), s.sign);
  if (kWd) g = fma_rn(p, s.wd, g);
  if (kMomentum) {
    buf = kFirst ? g : fma_rn(g, s.damp, mul_rn(buf, s.mom));
    g = kNesterov ? fma_rn(buf, s.mom, g) : buf;
  }
  p = fma_rn(g, s.neg_lr, p);
}

template <typename T, bool kMomentum, bool kFirst, bool kNesterov, bool kWd>
__global__ void __launch_bounds__(kOptimThreads)
    sgd_kernel(const int64_t* __restrict__ metas, const int64_t* __restrict__ chunks, int64_t n_chunks,
               SgdLaunchArgs args) {
  using A = typename Acc<T>::type;
  if (skip_step(args.found_inf)) return;
  SgdScalars<A> s;
  s.scale = static_cast<A>(read_scalar(args.grad_scale));
  s.sign = args.maximize ? A(-1) : A(1);
  s.wd = static_cast<A>(args.weight_decay);
  s.mom = static_cast<A>(args.momentum);
  s.damp = static_cast<A>(1.0 - args.dampening);
  s.neg_lr = static_cast<A>(-read_scalar(args.lr));
  for (int64_t c = blockIdx.x; c < n_chunks; c += gridDim.x) {
    const int64_t* ch = chunks + c * kOptimChunkFields;
    const int64_t* meta = metas + ch[0] * kOptimMetaFields;
    const int64_t begin = ch[1], n = ch[2];
    T* p = reinterpret_cast<T*>(meta[0]) + begin;
    const T* g = reinterpret_cast<const T*>(meta[1]) + begin;
    T* b = kMomentum ? reinterpret_cast<T*>(meta[2]) + begin : nullptr;
    int64_t done = 0;
    using P = Pack16<T>;
    if (all_aligned16(p, g, b, nullptr, nullptr)) {
      const int64_t n_packs = n / P::kN;
      for (int64_t i = threadIdx.x; i < n_packs; i += blockDim.x) {
        P pp = reinterpret_cast<P*>(p)[i];
        const P gp = reinterpret_cast<const P*>(g)[i];
        P bp;
        if (kMomentum && !kFirst) bp = reinterpret_cast<P*>(b)[i];
#pragma unroll
        for (int k = 0; k < P::kN; ++k) {
          A pa = to_acc(pp.v[k]);
          A ba = (kMomentum && !kFirst) ? to_acc(bp.v[k]) : A(0);
          sgd_element<A, kMomentum, kFirst, kNesterov, kWd>(pa, to_acc(gp.v[k]), ba, s);
          pp.v[k] = from_acc<T>(pa);
          if (kMomentum) bp.v[k] = from_acc<T>(ba);
        }
        reinterpret_cast<P*>(p)[i] = pp;
        if (kMomentum) reinterpret_cast<P*>(b)[i] = bp;
      }
      done = n_packs * P::kN;
    }
    for (int64_t i = done + threadIdx.x; i < n; i += blockDim.x) {
      A pa = to_acc(p[i]);
      A ba = (kMomentum && !kFirst) ? to_acc(b[i]) : A(0);
      sgd_element<A, kMomentum, kFirst, kNesterov, kWd>(pa, to_acc(g[i]), ba, s);
      p[i] = from_acc<T>(pa);
      if (kMomentum) b[i] = from_acc<T>(ba);
    }
  }
}

template <typename T, bool kMomentum, bool kFirst, bool kNesterov>
void launch_wd(int blocks, const int64_t* metas, const int64_t* chunks, int64_t n_chunks, const SgdLaunchArgs& a,
               cudaStream_t stream) {
  if (a.weight_decay != 0.0)
    sgd_kernel<T, kMomentum, kFirst, kNesterov, true><<<blocks, kOptimThreads, 0, stream>>>(metas, chunks, n_chunks, a);
  else
    sgd_kernel<T, kMomentum, kFirst, kNesterov, false><<<blocks, kOptimThreads, 0, stream>>>(metas, chunks, n_chunks, a);
}

template <typename T>
void launch_typed(const int64_t* metas, const int64_t* chunks, int64_t n_chunks, const SgdLaunchArgs& a,
                  cudaStream_t stream) {
  const int blocks = optim_blocks(n_chunks);
  if (blocks == 0) return;
  if (!a.has_momentum)
    launch_wd<T, false, false, false>(blocks, metas, chunks, n_chunks, a, stream);
  else if (a.first_step)
    a.nesterov ? launch_wd<T, true, true, true>(blocks, metas, chunks, n_chunks, a, stream)
               : launch_wd<T, true, true, false>(blocks, metas, chunks, n_chunks, a, stream);
  else
    a.nesterov ? launch_wd<T, true, false, true>(blocks, metas, chunks, n_chunks, a, stream)
               : launch_wd<T, true, false, false>(blocks, metas, chunks, n_chunks, a, stream);
  FASTLIGHT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void sgd_step_launch(DType dtype, const int64_t* metas, const int64_t* chunks, int64_t n_chunks,
                     const SgdLaunchArgs& args, cudaStream_t stream) {
  switch (dtype) {
    case DType::Float: return launch_typed<float>(metas, chunks, n_chunks, args, stream);
    case DType::Double: return launch_typed<double>(metas, chunks, n_chunks, args, stream);
    case DType::Half: return launch_typed<c10::Half>(metas, chunks, n_chunks, args, stream);
    case DType::BFloat16: return launch_typed<c10::BFloat16>(metas, chunks, n_chunks, args, stream);
  }
  TORCH_CHECK(false, "fastlight::sgd_step_: unknown dtype code ", static_cast<int>(dtype));
}

}  // namespace cuda
}  // namespace fastlight
