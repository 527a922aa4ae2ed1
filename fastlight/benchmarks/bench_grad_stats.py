"""grad_stats (sum of squares + non-finite flag, one read-only pass) vs what torch does for the same answer:
torch._foreach_norm + isfinite of the total (the work of clip_grad_norm_ and GradScaler's inf check).

Bytes moved: 4 per fp32 element read once. % bw is against a read-only pass over a buffer far above the
last-level cache, timed in the same interleaved rounds. Alone: python -m fastlight.benchmarks --only grad_stats
"""
import torch

import fastlight.ops as ops

from .harness import GBPS, MS, PCT_BW, RATIO, BandwidthProbe, cache_bytes, interleaved, rows_for_case

COLUMNS = (MS, RATIO, GBPS, PCT_BW)
NOTES = (
    "x base: time / torch's (_foreach_norm + isfinite of the total).",
    "GB/s: 4 bytes per fp32 gradient element, read once, per second. % bw: that rate as a share of a read-only "
    "pass (x.sum()) over a buffer far above the last-level cache, its fastest of the same rounds. Above 100 "
    "without c: other jobs slowed even the reference's fastest round (a loaded shared machine).",
)


def resnet18_like_sizes():
    """The 62 parameter tensors of torchvision's ResNet-18 (11.7M), without importing torchvision."""
    sizes = [64 * 3 * 7 * 7, 64, 64]
    cin = 64
    for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        for block in range(2):
            c_in = cin if block == 0 else cout
            sizes += [cout * c_in * 9, cout, cout, cout * cout * 9, cout, cout]
            if block == 0 and (stride != 1 or c_in != cout):
                sizes += [cout * c_in, cout, cout]
        cin = cout
    sizes += [1000 * 512, 1000]
    return sizes


def cases(quick):
    yield "resnet18 (62 tensors)", resnet18_like_sizes()
    yield "10000 x 64" if not quick else "2000 x 64", [64] * (2000 if quick else 10000)
    yield "flat", [(4 if quick else 50) * 1_000_000]


def torch_equivalent(ts):
    # The fastest torch composition with the same answer: clip_grad_norm_'s foreach norm, and the
    # non-finite flag read off the total (inf/nan propagate into the norm).
    norms = torch._foreach_norm(ts, 2)
    total = torch.linalg.vector_norm(torch.stack(norms), 2)
    return total, ~torch.isfinite(total)


def run(quick: bool = False, device: str = "cpu"):
    probe = BandwidthProbe(device, mib=64 if quick else 256)
    cache = cache_bytes(device)
    rows = []
    for name, sizes in cases(quick):
        g = torch.Generator().manual_seed(0)
        ts = [torch.randn(n, generator=g).to(device) for n in sizes]
        n_el = sum(sizes)
        fl = f"fastlight ({ops.backend(device)})"
        med = interleaved(
            {"torch _foreach_norm": lambda: torch_equivalent(ts), fl: lambda: ops.grad_stats(ts),
             "reference read pass": probe.read},
            device=device,
            repeats=5 if quick else 11,
            min_time_ms=20 if quick else 100,
            fastest=("reference read pass",),
        )
        ref = probe.gbps("read", med.pop("reference read pass"))
        rows += rows_for_case(name, med, baseline="torch _foreach_norm", bytes_moved={k: 4.0 * n_el for k in med},
                              bandwidth_gbps=ref, working_set=4.0 * n_el, cache=cache, ref_gbps=ref)
    return rows


if __name__ == "__main__":
    import sys

    from .harness import format_table

    dev = "cuda" if "--device" in sys.argv and "cuda" in sys.argv else "cpu"
    print(format_table(run(quick="--quick" in sys.argv, device=dev), COLUMNS, NOTES))
