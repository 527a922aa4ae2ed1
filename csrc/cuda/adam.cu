// Adam/AdamW on CUDA: one grid-stride launch per dtype over a chunk table of all params (64K-element chunks,
// int64 indexing), 16-byte vector loads/stores where the slice is aligned. lr, grad_scale, found_inf and the
// step counters are read on the device: no host sync, capturable in a CUDA graph. Same arithmetic as the
// CPU kernels (optim_cpu_body.inc), rounding op by op with the _rn intrinsics.
#include "fastlight/optim_cuda.cuh"

namespace fastlight {
namespace cuda {
namespace {

enum WdMode : int { kWdNone = 0, kWdDecoupled = 1, kWdL2 = 2 };

template <typename A>
struct AdamScalars {
  A scale, sign, decay_mul, wd, w1, b2, c2, eps, bc2_sqrt, neg_step;
  bool lerp_small;
};

template <typename A, bool kAmsgrad, int kWd>
__device__ __forceinline__ void adam_element(A& p, A g, A& m, A& v, A& vmax, const AdamScalars<A>& s) {
  g = mul_rn(mul_rn(g, s.scale), s.sign);
  if (kWd == kWdDecoupled) p = mul_rn(p, s.decay_mul);
  if (kWd == kWdL2) g = fma_rn(p, s.wd, g);
  const A diff = sub_rn(g, m);
  m = s.lerp_small ? fma_rn(s.w1, diff, m) : fma_rn(sub_rn(s.w1, A(1)), diff, g);
  v = fma_rn(mul_rn(s.c2, g), g, mul_rn(v, s.b2));
  A vd = v;
  if (kAmsgrad) {
    vmax = (isnan(vmax) || isnan(v)) ? add_rn(vmax, v) : (vmax > v ? vmax : v);
    vd = vmax;
  }
  const A denom = add_rn(div_rn(sqrt_rn(vd), s.bc2_sqrt), s.eps);
  p = add_rn(p, div_rn(mul_rn(s.neg_step, m), denom));
}

template <typename T, bool kAmsgrad, int kWd>
__global__ void __launch_bounds__(kOptimThreads)
    adam_kernel(const int64_t* __restrict__ metas, const int64_t* __restrict__ chunks, int64_t n_chunks,
                AdamLaunchArgs args) {
  using A = typename Acc<T>::type;
  if (skip_step(args.found_inf)) return;
  const double lr = read_scalar(args.lr);
  AdamScalars<A> s;
  s.scale = static_cast<A>(read_scalar(args.grad_scale));
  s.sign = args.maximize ? A(-1) : A(1);
  s.decay_mul = static_cast<A>(1.0 - lr * args.weight_decay);
  s.wd = static_cast<A>(args.weight_decay);
  s.w1 = static_cast<A>(1.0 - args.beta1);
  s.b2 = static_cast<A>(args.beta2);
  s.c2 = static_cast<A>(1.0 - args.beta2);
  s.eps = static_cast<A>(args.eps);
  s.lerp_small = fabsf(static_cast<float>(1.0 - args.beta1)) < 0.5f;

  for (int64_t c = blockIdx.x; c < n_chunks; c += gridDim.x) {
    const int64_t* ch = chunks + c * kOptimChunkFields;
    const int64_t* meta = metas + ch[0] * kOptimMetaFields;
    const int64_t begin = ch[1], n = ch[2];
    // Bias corrections in double from the counter's value before this step (+1): torch's expressions.
    const double step = static_cast<double>(*reinterpret_cast<const float*>(meta[5])) + 1.0;
    s.neg_step = static_cast<A>(-(lr / (1.0 - pow(args.beta1, step))));
    s.bc2_sqrt = static_cast<A>(sqrt(1.0 - pow(args.beta2, step)));

    T* p = reinterpret_cast<T*>(meta[0]) + begin;
    const T* g = reinterpret_cast<const T*>(meta[1]) + begin;
    T* m = reinterpret_cast<T*>(meta[2]) + begin;
    T* v = reinterpret_cast<T*>(meta[3]) + begin;
    T* vm = kAmsgrad ? reinterpret_cast<T*>(meta[4]) + begin : nullptr;
    int64_t done = 0;
    using P = Pack16<T>;
    if (all_aligned16(p, g, m, v, vm)) {
      const int64_t n_packs = n / P::kN;
      for (int64_t i = threadIdx.x; i < n_packs; i += blockDim.x) {
        P pp = reinterpret_cast<P*>(p)[i];
        const P gp = reinterpret_cast<const P*>(g)[i];
        P mp = reinterpret_cast<P*>(m)[i];
        P vp = reinterpret_cast<P*>(v)[i];
        P xp;
        if (kAmsgrad) xp = reinterpret_cast<P*>(vm)[i];
#pragma unroll
        for (int k = 0; k < P::kN; ++k) {
          A pa = to_acc(pp.v[k]), ma = to_acc(mp.v[k]), va = to_acc(vp.v[k]);
          A xa = kAmsgrad ? to_acc(xp.v[k]) : A(0);
          adam_element<A, kAmsgrad, kWd>(pa, to_acc(gp.v[k]), ma, va, xa, s);
          pp.v[k] = from_acc<T>(pa);
          mp.v[k] = from_acc<T>(ma);
          vp.v[k] = from_acc<T>(va);
          if (kAmsgrad) xp.v[k] = from_acc<T>(xa);
        }
        reinterpret_cast<P*>(p)[i] = pp;
        reinterpret_cast<P*>(m)[i] = mp;
        reinterpret_cast<P*>(v)[i] = vp;
        if (kAmsgrad) reinterpret_cast<P*>(vm)[i] = xp;
      }
      done = n_packs * P::kN;
    }
    for (int64_t i = done + threadIdx.x; i < n; i += blockDim.x) {
      A pa = to_acc(p[i]), ma = to_acc(m[i]), va = to_acc(v[i]);
      A xa = kAmsgrad ? to_acc(vm[i]) : A(0);
      adam_element<A, kAmsgrad, kWd>(pa, to_acc(g[i]), ma, va, xa, s);
      p[i] = from_acc<T>(pa);
      m[i] = from_acc<T>(ma);
      v[i] = from_acc<T>(va);
      if (kAmsgrad) vm[i] = from_acc<T>(xa);
    }
  }
}

__global__ void bump_steps_kernel(const int64_t* __restrict__ metas, int64_t n, const float* found_inf) {
  if (skip_step(found_inf)) return;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float* step = reinterpret_cast<float*>(metas[i * kOptimMetaFields + 5]);
    *step += 1.f;
  }
}

template <typename T>
void launch_typed(const int64_t* metas, const int64_t* chunks, int64_t n_chunks, const AdamLaunchArgs& a,
                  cudaStream_t stream) {
  const int blocks = optim_blocks(n_chunks);
  if (blocks == 0) return;
  const int wd = a.weight_decay == 0.0 ? kWdNone : (a.decoupled_weight_decay ? kWdDecoupled : kWdL2);
#define FL_ADAM_LAUNCH(AMS, WD) \
  adam_kernel<T, AMS, WD><<<blocks, kOptimThreads, 0, stream>>>(metas, chunks, n_chunks, a)
  if (a.amsgrad) {
    if (wd == kWdNone) FL_ADAM_LAUNCH(true, kWdNone);
    else if (wd == kWdDecoupled) FL_ADAM_LAUNCH(true, kWdDecoupled);
    else FL_ADAM_LAUNCH(true, kWdL2);
  } else {
    if (wd == kWdNone) FL_ADAM_LAUNCH(false, kWdNone);
    else if (wd == kWdDecoupled) FL_ADAM_LAUNCH(false, kWdDecoupled);
    else FL_ADAM_LAUNCH(false, kWdL2);
  }
#undef FL_ADAM_LAUNCH
  FASTLIGHT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void adam_step_launch(DType dtype, const int64_t* metas, const int64_t* chunks, int64_t n_chunks,
                      const AdamLaunchArgs& args, cudaStream_t stream) {
  switch (dtype) {
    case DType::Float: return launch_typed<float>(metas, chunks, n_chunks, args, stream);
    case DType::Double: return launch_typed<double>(metas, chunks, n_chunks, args, stream);
    case DType::Half: return launch_typed<c10::Half>(metas, chunks, n_chunks, args, stream);
    case DType::BFloat16: return launch_typed<c10::BFloat16>(metas, chunks, n_chunks, args, stream);
  }
  TORCH_CHECK(false, "fastlight::adam_step_: unknown dtype code ", static_cast<int>(dtype));
}

void optim_bump_steps(const int64_t* metas, int64_t n_tensors, const float* found_inf, cudaStream_t stream) {
  if (n_tensors == 0) return;
  const int blocks = static_cast<int>((n_tensors + kOptimThreads - 1) / kOptimThreads < 1024
                                          ? (n_tensors + kOptimThreads - 1) / kOptimThreads
                                          : 1024);
  bump_steps_kernel<<<blocks, kOptimThreads, 0, stream>>>(metas, n_tensors, found_inf);
  FASTLIGHT_CUDA_CHECK(cudaGetLastError());
}

}  // namespace cuda
}  // namespace fastlight
