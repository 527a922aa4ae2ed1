"""Fused optimizers as torch.optim citizens: constructor checks, errors, AMP inputs, state_dict both ways,
schedulers, hooks, fuse_optimizer / rebind_lr_scheduler."""
import copy
import warnings

import pytest
import torch

from fastlight import ops
from fastlight.engine.optim import fuse_optimizer, rebind_lr_scheduler
from fastlight.optim import FusedAdam, FusedAdamW, FusedSGD
from optim_helpers import clone_params, make_params, max_ulp

pytestmark = pytest.mark.skipif(ops.backend("cpu") != "native", reason="native CPU kernels not built")

SIZES = [(5,), (3, 7), (0,), (33,)]


def _set_grads(params, seed):
    gen = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen).to(p.dtype)


def _snapshot(opt, params):
    return [p.detach().clone() for p in params], {
        i: {k: v.clone() for k, v in s.items()} for i, s in opt.state_dict()["state"].items()
    }


def test_fused_optimizers_are_instances_of_their_torch_classes():
    p = [torch.zeros(2, requires_grad=True)]
    assert isinstance(FusedAdamW(p), torch.optim.AdamW)
    assert isinstance(FusedAdam(p), torch.optim.Adam) and not isinstance(FusedAdam(p), torch.optim.AdamW)
    assert isinstance(FusedSGD(p), torch.optim.SGD)


BAD_ARGS = [
    (torch.optim.AdamW, FusedAdamW, dict(lr=-1.0)),
    (torch.optim.AdamW, FusedAdamW, dict(betas=(1.0, 0.999))),
    (torch.optim.AdamW, FusedAdamW, dict(betas=(0.9, 1.5))),
    (torch.optim.AdamW, FusedAdamW, dict(eps=-1e-8)),
    (torch.optim.AdamW, FusedAdamW, dict(weight_decay=-0.1)),
    (torch.optim.Adam, FusedAdam, dict(lr=torch.tensor([1e-3, 1e-3]))),
    (torch.optim.SGD, FusedSGD, dict(lr=-0.1)),
    (torch.optim.SGD, FusedSGD, dict(lr=0.1, momentum=-0.5)),
    (torch.optim.SGD, FusedSGD, dict(lr=0.1, nesterov=True)),
    (torch.optim.SGD, FusedSGD, dict(lr=0.1, weight_decay=-1.0)),
]


@pytest.mark.parametrize("torch_cls,fused_cls,kw", BAD_ARGS)
def test_bad_hyperparameters_raise_torchs_value_error(torch_cls, fused_cls, kw):
    p = [torch.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError) as want:
        torch_cls(p, **kw)
    with pytest.raises(ValueError) as got:
        fused_cls(p, **kw)
    assert str(got.value) == str(want.value)


def test_empty_param_list_raises_like_torch():
    with pytest.raises(ValueError, match="empty parameter list"):
        FusedAdamW([])


@pytest.mark.parametrize("cls", [FusedAdamW, FusedSGD])
def test_sparse_gradient_error_names_group_and_index(cls):
    a, b = torch.zeros(4, requires_grad=True), torch.zeros(4, requires_grad=True)
    opt = cls([{"params": [a]}, {"params": [b]}], lr=0.1)
    a.grad = torch.ones(4)
    b.grad = torch.ones(4).to_sparse()
    with pytest.raises(RuntimeError, match=r"param_groups\[1\]\['params'\]\[0\] has a sparse gradient"):
        opt.step()


def test_complex_param_error_names_group_and_index():
    a, c = torch.zeros(3, requires_grad=True), torch.zeros(3, dtype=torch.complex64, requires_grad=True)
    opt = FusedAdamW([a, c])
    a.grad, c.grad = torch.ones(3), torch.ones(3, dtype=torch.complex64)
    with pytest.raises(RuntimeError, match=r"param_groups\[0\]\['params'\]\[1\] is complex"):
        opt.step()


def test_param_on_unsupported_device_error_names_group_and_index():
    a, m = torch.zeros(3, requires_grad=True), torch.zeros(3, device="meta", requires_grad=True)
    opt = FusedSGD([a, m], lr=0.1)
    a.grad, m.grad = torch.ones(3), torch.ones(3, device="meta")
    with pytest.raises(RuntimeError, match=r"param_groups\[0\]\['params'\]\[1\] is on meta"):
        opt.step()


def test_gradient_dtype_mismatch_error_names_group_and_index():
    a = torch.zeros(3, requires_grad=True)
    opt = FusedAdamW([a])
    a.grad_dtype = None  # torch refuses a gradient of another dtype unless told otherwise
    a.grad = torch.ones(3, dtype=torch.float64)
    with pytest.raises(RuntimeError, match=r"param_groups\[0\]\['params'\]\[0\] has dtype torch.float32 but its"):
        opt.step()
    assert not opt.state[a] or float(opt.state[a]["step"]) == 0.0  # nothing was stepped


def test_gradient_with_another_memory_layout_is_accepted():
    a = torch.randn(4, 6).t().contiguous().t().requires_grad_()  # column-major param
    b = a.detach().clone().requires_grad_()
    ref, fused = torch.optim.AdamW([b], foreach=False), FusedAdamW([a])
    g = torch.randn(4, 6)  # row-major gradient
    a.grad, b.grad = g.clone(), g.clone()
    ref.step()
    fused.step()
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("make", [lambda ps: FusedAdamW(ps, amsgrad=True, weight_decay=0.1),
                                  lambda ps: FusedAdam(ps, weight_decay=0.1),
                                  lambda ps: FusedSGD(ps, lr=0.1, momentum=0.9)])
def test_found_inf_leaves_params_state_and_step_untouched(make):
    params = make_params(SIZES, torch.float32)
    opt = make(params)
    for s in range(3):
        _set_grads(params, s)
        opt.step()
    before_p, before_s = _snapshot(opt, params)
    _set_grads(params, 99)
    opt.step(found_inf=torch.tensor(1.0))
    after_p, after_s = _snapshot(opt, params)
    assert all(torch.equal(x, y) for x, y in zip(before_p, after_p))
    for i in before_s:
        for k in before_s[i]:
            assert torch.equal(before_s[i][k], after_s[i][k]), (i, k)
    # found_inf == 0 steps normally: the same as a plain step
    twin = clone_params(params)
    twin_opt = make(twin)
    twin_opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # torch would alias the tensors
    _set_grads(params, 7)
    _set_grads(twin, 7)
    opt.step(found_inf=torch.tensor(0.0))
    twin_opt.step()
    assert all(torch.equal(x, y) for x, y in zip(params, twin))


@pytest.mark.parametrize("cls", [FusedAdamW, FusedSGD])
def test_grad_scale_multiplies_the_gradients_in_registers(cls):
    params = make_params(SIZES, torch.float32)
    twin = clone_params(params)
    a, b = cls(params, lr=0.01), cls(twin, lr=0.01)
    for s in range(5):
        _set_grads(params, s)
        _set_grads(twin, s)
        scaled = [p.grad * 1024.0 for p in params]
        for p, g in zip(params, scaled):
            p.grad = g
        a.step(grad_scale=torch.tensor(1.0 / 1024.0))
        b.step()
        # grads are read, not written
        assert all(torch.equal(p.grad, g) for p, g in zip(params, scaled))
    assert all(torch.equal(x, y) for x, y in zip(params, twin))  # a power of two: exact


def test_torch_grad_scaler_drives_fused_adamw_like_torch_fused_adamw():
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 4)
    twin = torch.nn.Linear(8, 4)
    twin.load_state_dict(model.state_dict())
    ours = FusedAdamW(model.parameters(), lr=0.01)
    ref = torch.optim.AdamW(twin.parameters(), lr=0.01, fused=True)
    s1, s2 = torch.amp.GradScaler("cpu", init_scale=2.0**10), torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for step in range(6):
        x = torch.randn(16, 8)
        for m, opt, sc in ((model, ours, s1), (twin, ref, s2)):
            opt.zero_grad()
            loss = m(x).square().mean()
            if step == 3:
                loss = loss * float("inf")  # an overflow step: skipped, scale backs off
            sc.scale(loss).backward()
            sc.step(opt)
            sc.update()
    assert s1.get_scale() == s2.get_scale() == 2.0**10 * 0.5
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert float(ours.state[model.weight]["step"]) == 5.0  # the inf step did not count


def _train(opt, params, steps, seed0=0):
    for s in range(steps):
        _set_grads(params, seed0 + s)
        opt.step()


@pytest.mark.parametrize("torch_cls,fused_cls,kw", [
    (torch.optim.AdamW, FusedAdamW, dict(lr=0.01, amsgrad=True)),
    (torch.optim.Adam, FusedAdam, dict(lr=0.01, weight_decay=0.01)),
    (torch.optim.SGD, FusedSGD, dict(lr=0.01, momentum=0.9)),
])
def test_state_dict_round_trips_between_torch_and_fused(torch_cls, fused_cls, kw):
    params = make_params(SIZES, torch.float32)
    # torch -> fused
    torch_params = clone_params(params)
    torch_opt = torch_cls(torch_params, foreach=False, **kw)
    _train(torch_opt, torch_params, 5)
    fused_params = clone_params(torch_params)
    fused_opt = fused_cls(fused_params, **kw)
    fused_opt.load_state_dict(copy.deepcopy(torch_opt.state_dict()))  # as if saved and loaded
    _train(torch_opt, torch_params, 5, seed0=100)
    _train(fused_opt, fused_params, 5, seed0=100)
    assert max_ulp(torch_params, fused_params) <= 32
    # fused -> torch, and the saved dicts have the same layout
    sd = copy.deepcopy(fused_opt.state_dict())
    ref_sd = torch_opt.state_dict()
    assert sd["state"].keys() == ref_sd["state"].keys()
    for i in sd["state"]:
        assert sd["state"][i].keys() == ref_sd["state"][i].keys()
    assert [sorted(g) for g in sd["param_groups"]] == [sorted(g) for g in ref_sd["param_groups"]]
    back_params = clone_params(fused_params)
    back = torch_cls(back_params, foreach=False, **kw)
    back.load_state_dict(sd)
    _train(back, back_params, 5, seed0=200)
    _train(fused_opt, fused_params, 5, seed0=200)
    assert max_ulp(back_params, fused_params) <= 32


def test_schedulers_work_unchanged_without_warnings():
    params = make_params(SIZES, torch.float32)
    ref_params = clone_params(params)
    ours = FusedAdamW(params, lr=0.1)
    ref = torch.optim.AdamW(ref_params, lr=0.1, foreach=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s1 = torch.optim.lr_scheduler.StepLR(ours, step_size=2, gamma=0.5)
        s2 = torch.optim.lr_scheduler.StepLR(ref, step_size=2, gamma=0.5)
        for s in range(7):
            _set_grads(params, s)
            _set_grads(ref_params, s)
            ours.step()
            ref.step()
            s1.step()
            s2.step()
    assert s1.get_last_lr() == s2.get_last_lr() == [0.1 * 0.5**3]
    assert max_ulp(ref_params, params) <= 32


def test_tensor_lr_changed_in_place_by_the_user_is_read_every_step():
    p = torch.zeros(3, requires_grad=True)
    lr = torch.tensor(0.5, dtype=torch.float64)
    opt = FusedSGD([p], lr=lr)
    p.grad = torch.ones(3)
    opt.step()
    lr.fill_(0.25)
    opt.step()
    assert torch.equal(p.detach(), torch.full((3,), -0.75))


def test_step_hooks_closure_and_version_counter():
    p = torch.zeros(3, requires_grad=True)
    opt = FusedAdamW([p])
    calls = []
    opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: calls.append("post"))
    version = p._version

    def closure():
        opt.zero_grad()
        loss = (p - 1).square().sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert calls == ["pre", "post"]
    assert float(loss.detach()) == 3.0
    assert p._version > version  # autograd sees the in-place update


def test_zero_grad_set_to_none_then_step_changes_nothing():
    params = make_params(SIZES, torch.float32)
    opt = FusedAdamW(params)
    _train(opt, params, 2)
    opt.zero_grad()
    before = [p.detach().clone() for p in params]
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, params))


def test_add_param_group_after_steps():
    params = make_params(SIZES, torch.float32)
    ref_params = clone_params(params)
    ours, ref = FusedAdamW(params[:2]), torch.optim.AdamW(ref_params[:2], foreach=False)
    for opt, ps in ((ours, params), (ref, ref_params)):
        _train(opt, ps[:2], 2)
        opt.add_param_group({"params": ps[2:], "lr": 0.05})
        _train(opt, ps, 3, seed0=10)
    assert max_ulp(ref_params, params) <= 32


def test_native_op_has_a_fake_kernel_for_torch_compile():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        p, g, m, v = (torch.empty(4) for _ in range(4))
        step = torch.zeros(())
        torch.ops.fastlight.adam_step_([p], [g], [m], [v], [], [step], torch.tensor(1e-3), 0.9, 0.999, 0.0,
                                       1e-8, False, False, True)
        torch.ops.fastlight.sgd_step_([p], [g], [], torch.tensor(1e-3), 0.0, 0.0, 0.0, False, False, False)


# ---- fuse_optimizer / rebind_lr_scheduler --------------------------------------------------------------------


def _groups(ps):
    return [{"params": ps[:2], "lr": 0.01, "name": "backbone"}, {"params": ps[2:], "lr": 0.003, "name": "head"}]


@pytest.mark.parametrize("torch_cls,fused_cls,kw", [
    (torch.optim.AdamW, FusedAdamW, dict(weight_decay=0.05, amsgrad=True)),
    (torch.optim.Adam, FusedAdam, dict(betas=(0.8, 0.9))),
    (torch.optim.SGD, FusedSGD, dict(momentum=0.9, nesterov=True)),
])
def test_fuse_optimizer_keeps_groups_state_and_continues_like_torch(torch_cls, fused_cls, kw):
    params = make_params(SIZES, torch.float32)
    ref_params = clone_params(params)
    user = torch_cls(_groups(params), **kw)
    ref = torch_cls(_groups(ref_params), foreach=False, **kw)
    _train(user, params, 3)
    _train(ref, ref_params, 3)
    groups_before = [{k: v for k, v in g.items() if k != "params"} for g in user.param_groups]
    new, reason = fuse_optimizer(user)
    assert type(new) is fused_cls, reason
    assert [{k: v for k, v in g.items() if k != "params"} for g in new.param_groups] == groups_before
    assert [g["params"] for g in new.param_groups] == [g["params"] for g in user.param_groups]
    for p in params:
        for k, t in user.state[p].items():
            assert new.state[p][k] is t  # taken over, not copied
    _train(new, params, 5, seed0=50)
    _train(ref, ref_params, 5, seed0=50)
    assert max_ulp(ref_params, params) <= 32


def test_fuse_optimizer_refuses_what_it_cannot_do():
    p = [torch.zeros(3, requires_grad=True)]

    class MyAdamW(torch.optim.AdamW):
        pass

    assert fuse_optimizer(MyAdamW(p))[0] is None
    assert "subclass" in fuse_optimizer(MyAdamW(p))[1]
    new, reason = fuse_optimizer(torch.optim.RMSprop(p))
    assert new is None and "RMSprop" in reason
    new, reason = fuse_optimizer(torch.optim.AdamW(p, differentiable=True))
    assert new is None and "differentiable" in reason
    c = [torch.zeros(3, dtype=torch.complex64, requires_grad=True)]
    new, reason = fuse_optimizer(torch.optim.SGD(c, lr=0.1))
    assert new is None and "param_groups[0]['params'][0] is complex" in reason
    already = FusedAdamW(p)
    assert fuse_optimizer(already)[0] is already


def test_rebind_lr_scheduler_moves_schedulers_to_the_fused_optimizer():
    params = make_params(SIZES, torch.float32)
    user = torch.optim.AdamW(params, lr=0.1)
    warm = torch.optim.lr_scheduler.LinearLR(user, start_factor=0.5, total_iters=2)
    decay = torch.optim.lr_scheduler.ExponentialLR(user, gamma=0.9)
    sched = torch.optim.lr_scheduler.SequentialLR(user, [warm, decay], milestones=[2])
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(user)
    new, _ = fuse_optimizer(user)
    rebind_lr_scheduler(sched, user, new)
    rebind_lr_scheduler(plateau, user, new)
    assert sched.optimizer is new and warm.optimizer is new and decay.optimizer is new and plateau.optimizer is new
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "lr_scheduler.step() before optimizer.step()" warning
        for s in range(4):
            _set_grads(params, s)
            new.step()
            sched.step()
    assert new.param_groups[0]["lr"] == pytest.approx(sched.get_last_lr()[0])
    assert new.param_groups[0]["lr"] != 0.1 * 0.5


def test_optimizers_fall_back_to_the_references_without_native_kernels(monkeypatch):
    params = make_params(SIZES, torch.float32)
    twin = clone_params(params)
    native_opt = FusedAdamW(params, weight_decay=0.1, amsgrad=True)
    _train(native_opt, params, 4)
    monkeypatch.setitem(ops._backend_cache, "cpu", "torch")
    monkeypatch.setattr(ops, "_op_cache", {})
    fallback_opt = FusedAdamW(twin, weight_decay=0.1, amsgrad=True)
    _train(fallback_opt, twin, 4)
    for a, b in zip(params, twin):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_native_op_errors_name_the_argument_and_index():
    p = [torch.zeros(4), torch.zeros(5)]
    g = [torch.zeros(4), torch.zeros(6)]
    st = [torch.zeros(()), torch.zeros(())]
    lr = torch.tensor(0.1)
    with pytest.raises(RuntimeError, match=r"grads\[1\] has shape \[6\] but params\[1\] has shape \[5\]"):
        ops.adam_step_(p, g, [torch.zeros(4), torch.zeros(5)], [torch.zeros(4), torch.zeros(5)], [], st, lr,
                       0.9, 0.999, 0.0, 1e-8, False, False, True)
    with pytest.raises(RuntimeError, match=r"momentum_buffers has 1 tensors but params has 2"):
        ops.sgd_step_(p, [torch.zeros(4), torch.zeros(5)], [torch.zeros(4)], lr, 0.0, 0.9, 0.0, False, False, False)
    with pytest.raises(RuntimeError, match=r"lr must have one element"):
        ops.sgd_step_(p, [torch.zeros(4), torch.zeros(5)], [], torch.ones(2), 0.0, 0.0, 0.0, False, False, False)
    assert [float(s) for s in st] == [0.0, 0.0]  # checked before anything was written
