"""grad_stats (sum of squares + non-finite flag in one pass) against its pure-torch reference."""
import math

import pytest
import torch

import fastlight.ops as ops
from fastlight.ops import reference

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
SIZES = [[0], [1], [3], [17], [1000, 33], [65537], [7, 0, 5]]


def make(sizes, dtype, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, generator=g).to(dtype=dtype, device=device) for n in sizes]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", SIZES, ids=str)
def test_grad_stats_matches_reference_for_dtype_and_odd_sizes(dtype, sizes):
    ts = make(sizes, dtype)
    got = ops.grad_stats(ts)
    want = reference.grad_stats(ts)
    assert got.dtype == torch.float32 and got.shape == (2,)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    exact = sum(float((t.double() ** 2).sum()) for t in ts)
    assert math.isclose(float(got[0]), exact, rel_tol=1e-5, abs_tol=1e-6)


def test_grad_stats_of_empty_list_is_zero():
    assert ops.grad_stats([]).tolist() == [0.0, 0.0]


def test_grad_stats_mixed_dtypes_in_one_call():
    ts = make([10, 20], torch.float32) + make([30], torch.bfloat16) + make([5], torch.float16)
    torch.testing.assert_close(ops.grad_stats(ts), reference.grad_stats(ts), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
@pytest.mark.parametrize("where", [0, 5, 65536])
def test_grad_stats_flags_any_nonfinite_element(dtype, bad, where):
    ts = make([10, 70000], dtype)
    flat = ts[1]
    flat[where] = bad
    got = ops.grad_stats(ts)
    assert got[1].item() == 1.0
    assert not math.isfinite(got[0].item())
    assert reference.grad_stats(ts)[1].item() == 1.0


def test_grad_stats_large_finite_float64_values_are_not_flagged():
    # Squares overflow float64 here, but every element is finite: the flag must stay 0.
    t = torch.full((4,), 1e200, dtype=torch.float64)
    got = ops.grad_stats([t])
    assert got[1].item() == 0.0


def test_grad_stats_rejects_noncontiguous_input_with_clear_error():
    t = torch.randn(8, 8).t()
    if ops.backend("cpu") != "native":
        pytest.skip("the reference accepts any layout")
    with pytest.raises(RuntimeError, match=r"tensors\[1\] must be contiguous"):
        ops.grad_stats([torch.ones(3), t])


def test_grad_stats_rejects_integer_tensors_with_clear_error():
    if ops.backend("cpu") != "native":
        pytest.skip("the reference accepts integer tensors")
    with pytest.raises(RuntimeError, match=r"tensors\[0\] has unsupported dtype"):
        ops.grad_stats([torch.ones(3, dtype=torch.int32)])


def test_grad_stats_is_deterministic_across_calls():
    ts = make([100003, 5, 77777], torch.float32, seed=3)
    a = ops.grad_stats(ts)
    for _ in range(3):
        assert torch.equal(a, ops.grad_stats(ts))


def test_grad_stats_traces_under_torch_compile():
    if not hasattr(torch, "compile"):
        pytest.skip("no torch.compile")
    ts = make([31, 64], torch.float32)

    def f(a, b):
        return ops.grad_stats([a, b]) * 2

    try:
        compiled = torch.compile(f, backend="eager", fullgraph=True)
        out = compiled(*ts)
    except Exception as e:  # missing compiler toolchains are not this op's fault
        pytest.skip(f"torch.compile unavailable: {e}")
    torch.testing.assert_close(out, reference.grad_stats(ts) * 2, rtol=1e-5, atol=1e-6)


@pytest.mark.cuda
def test_grad_stats_cuda_matches_cpu(cuda_device):
    ts = make([0, 1, 3, 65537, 1 << 20], torch.float32, device=cuda_device) + make(
        [123, 4096], torch.bfloat16, device=cuda_device
    )
    got = ops.grad_stats(ts)
    assert got.device.type == "cuda"
    want = reference.grad_stats([t.cpu() for t in ts])
    torch.testing.assert_close(got.cpu(), want, rtol=1e-4, atol=1e-5)
    ts[3][100] = float("nan")
    assert ops.grad_stats(ts)[1].item() == 1.0
