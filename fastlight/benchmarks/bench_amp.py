"""Optimizer-side time per AMP step (inf check + unscale + clip + step + zero_grad), fastlight vs torch.

torch:      GradScaler.unscale_ + clip_grad_norm_(foreach) + GradScaler.step(AdamW(fused=True)) + update
            + zero_grad(set_to_none=True)
fastlight:  FlatGradBuffer.ensure_bound + DeviceGradScaler.prepare_step (one read-only grad_stats pass)
            + step with grad_scale/found_inf + update + zero_grad (one memset)

The fastlight candidates step fastlight's FusedAdamW / fastlight.ops.adam_step_ when they are present
(column step_kernel says which); otherwise torch's AdamW(fused=True) / torch._fused_adamw_ as a stand-in
through the same grad_scale/found_inf inputs. torch's kernel divides by grad_scale and writes the unscaled
grads back: 4 bytes/param that fastlight's step (a multiplier in registers, grads not written) does not move.

Nominal bytes per fp32 param (read + write):
    torch clip:      unscale 8 + norm 4 + clip 8 + step 28 = 48 (zero_grad set_to_none moves nothing)
    torch no clip:   inf check with unscale by 1 (reads and writes) 8 + step 28 (+4 grad write-back) = 40
    fastlight:       stats 4 + step 28 + memset 4 = 36 (+4 grad write-back with torch's stand-in kernel)
    same, per-param grad list instead of the flat buffer (zero_grad set_to_none): 32 (+4)
    same, flat params + flat state, one fused call over single tensors: 36 (+4)
                     (with fastlight's fused step, no write-back: 36; the memset is the price of a flat buffer
                     that autograd accumulates into, paid instead of an allocation in backward)
Grads are refilled with the same (scaled) values before every timed step, untimed.

Run alone: python -m fastlight.benchmarks --only amp [--quick] [--device cuda]
"""
import gc
import statistics
import sys
import time
from typing import Callable, Dict, List, Tuple

import torch

from fastlight.engine.flat_buffer import FlatGradBuffer
from fastlight.engine.scaler import DeviceGradScaler

from .harness import GBPS, MS, PCT_BW, RATIO, BandwidthProbe, bandwidth_fields, cache_bytes, synchronize

COLUMNS = (MS, RATIO, ("bytes_per_param", "B/param", "{}"), GBPS, PCT_BW)
NOTES = (
    "x base: time / torch's composition's time in the same case (below 1: faster).",
    "B/param: nominal bytes each candidate's step reads + writes per fp32 parameter (the module docstring "
    "itemizes them).",
    "GB/s: B/param x parameters / time. % bw: that rate as a share of an in-place read+write "
    "stream (x.mul_(1.0)) on a buffer far above the last-level cache, its fastest of the same rounds. Above 100 "
    "without c: other jobs slowed even the reference's fastest round (a loaded shared machine).",
)

SCALE = 2.0**16
MAX_NORM = 1.0

try:  # fastlight's fused optimizer (issue 5), when merged
    from fastlight.engine.optim import FusedAdamW as _FastlightAdamW
    from fastlight.ops import adam_step_ as _fastlight_adam_step_
except ImportError:
    _FastlightAdamW = None
    _fastlight_adam_step_ = None
STEP_KERNEL = "fastlight" if _FastlightAdamW is not None else "torch fused (stand-in)"


def _fused_adamw(params):
    if _FastlightAdamW is not None:
        return _FastlightAdamW(params, lr=1e-3, weight_decay=0.01)
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01, fused=True)


def _flat_adamw_step(p, g, m, v, st, multiplier, found_inf):
    """One AdamW step over single flat tensors with the scaler's multiplier and found_inf."""
    if _fastlight_adam_step_ is not None:
        _fastlight_adam_step_([p], [g], [m], [v], [], [st], torch.tensor(1e-3), 0.9, 0.999, 0.01, 1e-8,
                              False, False, True, multiplier, found_inf)
        return
    divisor = None if multiplier is None else torch.reciprocal(multiplier)
    st.add_(1 - found_inf)  # torch increments before its kernel; a skipped step must not move it
    torch._fused_adamw_([p], [g], [m], [v], [], [st], lr=1e-3, beta1=0.9, beta2=0.999, weight_decay=0.01,
                        eps=1e-8, amsgrad=False, maximize=False, grad_scale=divisor, found_inf=found_inf)


def resnet18_like_shapes() -> List[Tuple[int, ...]]:
    """The 62 parameter tensors of torchvision's ResNet-18 (11.7M)."""
    shapes = [(64, 3, 7, 7), (64,), (64,)]
    cin = 64
    for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        for block in range(2):
            c_in = cin if block == 0 else cout
            shapes += [(cout, c_in, 3, 3), (cout,), (cout,), (cout, cout, 3, 3), (cout,), (cout,)]
            if block == 0 and (stride != 1 or c_in != cout):
                shapes += [(cout, c_in, 1, 1), (cout,), (cout,)]
        cin = cout
    shapes += [(1000, 512), (1000,)]
    return shapes


def gpt2_like_shapes(n_layer=12, d=768, vocab=50257, ctx=1024) -> List[Tuple[int, ...]]:
    """GPT-2 small's parameter tensors (lm_head tied to wte): 148 tensors, 124.4M with the defaults."""
    shapes = [(vocab, d), (ctx, d)]
    for _ in range(n_layer):
        shapes += [(d,), (d,), (d, 3 * d), (3 * d,), (d, d), (d,), (d,), (d,), (d, 4 * d), (4 * d,), (4 * d, d), (d,)]
    shapes += [(d,), (d,)]
    return shapes


def cases(quick: bool):
    yield "resnet18 (62 tensors, 11.7M)", resnet18_like_shapes()
    if not quick:
        yield "gpt2-small (148 tensors, 124M)", gpt2_like_shapes()


def _params(shapes, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter((torch.randn(s, generator=g) * 0.02).to(device)) for s in shapes]


def _scaled_grads(shapes, device, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(s, generator=g) * 1e-3 * SCALE).to(device) for s in shapes]


def _torch_candidate(shapes, device, clip: bool):
    params = _params(shapes, device)
    master = _scaled_grads(shapes, device)
    grads = [m.clone() for m in master]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01, fused=True)
    scaler = torch.amp.GradScaler(device if device != "cpu" else "cpu", init_scale=SCALE, growth_interval=10**9)
    scaler.scale(torch.ones((), device=device))  # lazy init of the scale tensor, as the forward would

    def setup():
        torch._foreach_copy_(grads, master)
        for p, g in zip(params, grads):
            p.grad = g

    def step():
        if clip:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, MAX_NORM, foreach=True)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    return setup, step


def _fastlight_candidate(shapes, device, clip: bool):
    params = _params(shapes, device)
    master = _scaled_grads(shapes, device)
    opt = _fused_adamw(params)
    flat = FlatGradBuffer(opt)
    with torch.no_grad():
        for p, m in zip(params, master):
            p.grad.copy_(m)
    master_flat = [b.clone() for b in flat.buffers]
    scaler = DeviceGradScaler(device, init_scale=SCALE, growth_interval=10**9)

    def setup():
        for b, m in zip(flat.buffers, master_flat):
            b.copy_(m)

    def step():
        flat.ensure_bound()
        inputs = scaler.prepare_step(flat.buffers, clip_val=MAX_NORM if clip else None, key=opt)
        scaler.step(opt, inputs, flat.buffers)
        scaler.update()
        opt.zero_grad()  # patched: one memset per flat buffer

    return setup, step, flat


def _fastlight_flat_state_candidate(shapes, device, clip: bool):
    """flat_params=True + optimizer state with the same layout: the step is ONE fused call over single tensors
    (torch._fused_adamw_ as the stand-in for fastlight's op). What fastlight's fused AdamW can do with the layout."""
    params = _params(shapes, device)
    master = _scaled_grads(shapes, device)
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)  # owns the param groups; its step is not used
    flat = FlatGradBuffer(opt, flat_params=True)
    with torch.no_grad():
        for p, m in zip(params, master):
            p.grad.copy_(m)
    master_flat = [b.clone() for b in flat.buffers]
    state = [(b.new_flat(), b.new_flat(), torch.zeros((), device=device)) for b in flat.buckets]
    scaler = DeviceGradScaler(device, init_scale=SCALE, growth_interval=10**9)

    def setup():
        for b, m in zip(flat.buffers, master_flat):
            b.copy_(m)

    def step():
        flat.ensure_bound()
        inputs = scaler.prepare_step(flat.buffers, clip_val=MAX_NORM if clip else None, key=opt)
        for b, (m, v, st) in zip(flat.buckets, state):
            _flat_adamw_step(b.param_flat, b.flat, m, v, st, inputs.grad_multiplier, inputs.found_inf)
        scaler.update()
        opt.zero_grad()

    return setup, step


def _fastlight_list_candidate(shapes, device, clip: bool):
    """The same stats-pass scaler over the per-param grad list, no flat buffer: shows what the buffer costs
    (memset) and saves (one tensor instead of a list)."""
    params = _params(shapes, device)
    master = _scaled_grads(shapes, device)
    grads = [m.clone() for m in master]
    opt = _fused_adamw(params)
    scaler = DeviceGradScaler(device, init_scale=SCALE, growth_interval=10**9)

    def setup():
        torch._foreach_copy_(grads, master)
        for p, g in zip(params, grads):
            p.grad = g

    def step():
        gs = [p.grad for p in params]
        inputs = scaler.prepare_step(gs, clip_val=MAX_NORM if clip else None, key=opt)
        scaler.step(opt, inputs, gs)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    return setup, step


def _time(setup: Callable, fn: Callable, device: str) -> float:
    setup()
    synchronize(device)
    if device.startswith("cuda"):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def interleaved_with_setup(cands: Dict[str, Tuple[Callable, Callable]], device: str, repeats: int, warmup: int = 2,
                           fastest=()):
    names = list(cands)
    for _ in range(warmup):
        for n in names:
            _time(*cands[n], device)
    samples = {n: [] for n in names}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeats):
            order = names[r % len(names):] + names[: r % len(names)]
            for n in order:
                samples[n].append(_time(*cands[n], device))
    finally:
        if gc_was_enabled:
            gc.enable()
    return {n: (min(v) if n in fastest else statistics.median(v)) for n, v in samples.items()}


_WRITE_BACK = 0 if _FastlightAdamW is not None else 4  # torch's stand-in kernel writes the grads back
BYTES_PER_PARAM = {
    ("torch", True): 48,
    ("torch", False): 40,
    ("fastlight", True): 36 + _WRITE_BACK,
    ("fastlight", False): 36 + _WRITE_BACK,
    ("fastlight, no flat buffer", True): 32 + _WRITE_BACK,
    ("fastlight, no flat buffer", False): 32 + _WRITE_BACK,
    ("fastlight, flat params+state", True): 36 + _WRITE_BACK,
    ("fastlight, flat params+state", False): 36 + _WRITE_BACK,
}


def _train_step_candidates(device: str, quick: bool):
    """Whole training steps (forward, scaled backward, optimizer side) on an MLP: includes what the flat buffer
    costs in backward (autograd adds into the zeroed views instead of stealing the fresh gradient)."""
    width, depth, batch = (512, 3, 32) if quick else (1024, 6, 64)

    def model():
        torch.manual_seed(0)
        layers = []
        for _ in range(depth):
            layers += [torch.nn.Linear(width, width), torch.nn.GELU()]
        return torch.nn.Sequential(*layers, torch.nn.Linear(width, 10)).to(device)

    x = torch.randn(batch, width, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    dev_type = "cuda" if device.startswith("cuda") else "cpu"

    def loss_of(m):
        # fp16 autocast on CUDA; fp32 compute on the CPU (bf16/fp16 matmuls there would dominate the step),
        # with the same loss scaling either way
        with torch.autocast(dev_type, dtype=torch.float16, enabled=dev_type == "cuda"):
            return torch.nn.functional.cross_entropy(m(x), y)

    mt = model()
    ot = torch.optim.AdamW(mt.parameters(), lr=1e-4, fused=True)
    st = torch.amp.GradScaler(dev_type, init_scale=SCALE, growth_interval=10**9)

    def torch_step():
        ot.zero_grad(set_to_none=True)
        st.scale(loss_of(mt)).backward()
        st.unscale_(ot)
        torch.nn.utils.clip_grad_norm_(mt.parameters(), MAX_NORM, foreach=True)
        st.step(ot)
        st.update()

    def fastlight(flat_buffer: bool):
        m = model()
        o = _fused_adamw(list(m.parameters()))
        flat = FlatGradBuffer(o) if flat_buffer else None
        sc = DeviceGradScaler(device, init_scale=SCALE, growth_interval=10**9)
        params = list(m.parameters())

        def step():
            o.zero_grad()  # flat: one memset; list: set_to_none
            sc.scale(loss_of(m)).backward()
            if flat is not None:
                flat.ensure_bound()
                grads = flat.buffers
            else:
                grads = [p.grad for p in params if p.grad is not None]
            sc.step(o, sc.prepare_step(grads, clip_val=MAX_NORM, key=o), grads)
            sc.update()

        return step

    n_params = sum(p.numel() for p in mt.parameters())
    name = (f"train step, MLP {depth}x{width} ({n_params / 1e6:.1f}M), batch {batch}, clip by norm, "
            f"{'fp16 autocast' if dev_type == 'cuda' else 'fp32 compute'}")
    noop = lambda: None  # noqa: E731
    return name, {"torch": (noop, torch_step), "fastlight": (noop, fastlight(True)),
                  "fastlight, no flat buffer": (noop, fastlight(False))}


def run(quick: bool = False, device: str = "cpu") -> List[dict]:
    probe = BandwidthProbe(device, mib=64 if quick else 256)
    cache = cache_bytes(device)
    noop = lambda: None  # noqa: E731
    repeats = 5 if quick else 9
    rows = []
    for case, shapes in cases(quick):
        n_params = sum(torch.Size(s).numel() for s in shapes)
        for clip in (True, False):
            name = f"{case}, {'clip by norm' if clip else 'no clip'}"
            t_setup, t_step = _torch_candidate(shapes, device, clip)
            f_setup, f_step, flat = _fastlight_candidate(shapes, device, clip)
            l_setup, l_step = _fastlight_list_candidate(shapes, device, clip)
            s_setup, s_step = _fastlight_flat_state_candidate(shapes, device, clip)
            med = interleaved_with_setup(
                {"torch": (t_setup, t_step), "fastlight": (f_setup, f_step),
                 "fastlight, no flat buffer": (l_setup, l_step),
                 "fastlight, flat params+state": (s_setup, s_step), "reference": (noop, probe.rmw)}, device, repeats,
                fastest=("reference",))
            ref = probe.gbps("rmw", med.pop("reference"))
            for cand, ms in med.items():
                bpp = BYTES_PER_PARAM[(cand, clip)]
                # resident: params, grads, two Adam states (fp32)
                bw = bandwidth_fields(bpp * n_params, ms, ref, working_set=16 * n_params, cache=cache)
                rows.append(dict(name=name, candidate=cand, median_ms=ms, ratio=ms / med["torch"],
                                 bytes_per_param=bpp, **bw, bw_gbps=ref,
                                 step_kernel="torch fused" if cand == "torch" else STEP_KERNEL))
            del t_setup, t_step, f_setup, f_step, l_setup, l_step, s_setup, s_step, flat
        # host overhead of the per-step view check, for this number of tensors
        f_setup, f_step, flat = _fastlight_candidate(shapes, device, False)
        n = 2000
        t0 = time.perf_counter()
        for _ in range(n):
            flat.ensure_bound()
        rows.append(dict(name=f"{case}, host", candidate=f"FlatGradBuffer.ensure_bound ({len(shapes)} params)",
                         median_ms=(time.perf_counter() - t0) * 1e3 / n, ratio=None))
        del flat, f_setup, f_step
        gc.collect()
    name, cands = _train_step_candidates(device, quick)
    med = interleaved_with_setup(cands, device, repeats=2 * repeats + 1)
    for cand, ms in med.items():
        rows.append(dict(name=name, candidate=cand, median_ms=ms, ratio=ms / med["torch"],
                         step_kernel="torch fused" if cand == "torch" else STEP_KERNEL))
    return rows


if __name__ == "__main__":
    from .harness import format_table

    print(format_table(run(quick="--quick" in sys.argv, device="cuda" if "--cuda" in sys.argv else "cpu"),
                       COLUMNS, NOTES))
