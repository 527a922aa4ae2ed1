"""The loop's per-step shortcuts change nothing observable: the fused optimizers' `step_unobserved` and
`zero_grad` skip torch's profiler ranges only when nothing records or hooks them, and the batched iterator's next()
keeps the DataLoader's profiler range when a profiler records."""
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from fastlight.engine.optim import FusedAdamW, FusedSGD
from fastlight.trainer import input_path


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(5, 3, generator=g)), torch.nn.Parameter(torch.randn(3, generator=g))]


def _with_grads(params, seed=1):
    g = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g)


@pytest.mark.parametrize("cls,kw", [(FusedSGD, dict(lr=0.1, momentum=0.9)), (FusedAdamW, dict(lr=0.01))])
def test_step_unobserved_equals_step(cls, kw):
    a, b = _params(), _params()
    opt_a, opt_b = cls(a, **kw), cls(b, **kw)
    for i in range(3):
        _with_grads(a, i)
        _with_grads(b, i)
        assert opt_a.step_unobserved()
        opt_b.step()
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    for x, y in zip(a, b):
        for k, v in opt_b.state[y].items():
            assert torch.equal(torch.as_tensor(opt_a.state[x][k]), torch.as_tensor(v))


def test_step_unobserved_declines_when_something_observes_the_step():
    params = _params()
    opt = FusedSGD(params, lr=0.1)
    _with_grads(params)
    handle = opt.register_step_pre_hook(lambda *a: None)
    assert not opt.step_unobserved()
    handle.remove()
    import torch.optim.optimizer as torch_optimizer

    handle = torch_optimizer.register_optimizer_step_post_hook(lambda *a: None)
    try:
        assert not opt.step_unobserved()
    finally:
        handle.remove()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]):
        assert not opt.step_unobserved()
    opt.step = lambda *a, **k: None  # replaced on the instance by the user
    assert not opt.step_unobserved()


def test_step_unobserved_marks_the_step_for_an_lr_scheduler():
    params = _params()
    opt = FusedSGD(params, lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    opt._opt_called = False
    _with_grads(params)
    assert opt.step_unobserved()
    assert opt._opt_called
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01)


def test_fused_zero_grad_sets_grads_to_none_and_keeps_them_with_set_to_none_false():
    params = _params()
    opt = FusedSGD(params, lr=0.1)
    _with_grads(params)
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in params)
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_batched_iterator_keeps_the_dataloader_profiler_range_when_profiling():
    loader = DataLoader(TensorDataset(torch.arange(20.0), torch.arange(20)), batch_size=4)
    it = input_path.epoch_iterator(input_path.iterate(loader), loader, torch.device("cpu"), 5, False)
    assert type(it).__name__ == "_BatchedIterator"
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        first = next(it)
    assert any("DataLoader" in e.name for e in prof.events())
    rest = list(it)
    assert [b[1].tolist() for b in [first] + rest] == [list(range(i, i + 4)) for i in range(0, 20, 4)]
    assert it._it._num_yielded == 5
