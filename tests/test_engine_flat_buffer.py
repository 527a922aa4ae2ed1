"""FlatGradBuffer: one pitfall of DESIGN.md's "Flat buffer pitfalls" list per test (DDP not covered yet)."""
import copy
import io

import pytest
import torch
from torch import nn

from fastlight.engine.flat_buffer import ALIGN_BYTES, FlatGradBuffer


def _mlp(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    # odd sizes so segments need padding
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).to(dtype)


def _batches(n, seed=1, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(4, 5, generator=g, dtype=dtype), torch.randn(4, 3, generator=g, dtype=dtype)) for _ in range(n)]


def _loss(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def _assert_bound(flat):
    for b in flat.buckets:
        for p, v in zip(b.params, b.views):
            assert p.grad is v
            assert p.grad.untyped_storage().data_ptr() == b.flat.untyped_storage().data_ptr()


def _padding_mask(bucket):
    mask = torch.ones(bucket.flat.numel(), dtype=torch.bool)
    for p, off in zip(bucket.params, bucket.offsets):
        mask[off : off + p.numel()] = False
    return mask


def test_grads_are_aligned_views_of_one_buffer_with_zero_padding():
    m = _mlp()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    flat = FlatGradBuffer(opt)
    assert len(flat.buckets) == 1
    b = flat.buckets[0]
    assert [id(p) for p in b.params] == [id(p) for p in m.parameters()]
    _assert_bound(flat)
    for v in b.views:
        assert v.data_ptr() % ALIGN_BYTES == 0
    assert b.flat.numel() % (ALIGN_BYTES // 4) == 0
    mask = _padding_mask(b)
    assert mask.any(), "the test model must need padding"
    for batch in _batches(3):
        _loss(m, batch).backward()
        opt.step()
    assert torch.count_nonzero(b.flat[mask]) == 0
    assert torch.count_nonzero(b.flat[~mask]) > 0


def test_accumulation_over_micro_batches_matches_plain_grads():
    ref, m = _mlp(), _mlp()
    flat = FlatGradBuffer(torch.optim.SGD(m.parameters(), lr=0.1))
    for batch in _batches(3):
        _loss(ref, batch).backward()
        _loss(m, batch).backward()
    _assert_bound(flat)
    for p, q in zip(ref.parameters(), m.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=0)


@pytest.mark.parametrize("set_to_none", [True, False])
def test_optimizer_zero_grad_keeps_views_and_zeroes(set_to_none):
    m = _mlp()
    opt = torch.optim.AdamW(m.parameters())
    flat = FlatGradBuffer(opt)
    _loss(m, _batches(1)[0]).backward()
    opt.zero_grad(set_to_none=set_to_none)
    _assert_bound(flat)
    assert torch.count_nonzero(flat.buffers[0]) == 0
    rebuilds = flat.rebuild_count
    _loss(m, _batches(1)[0]).backward()
    flat.ensure_bound()
    assert flat.rebuild_count == rebuilds


def test_module_zero_grad_drops_views_and_ensure_bound_repairs_before_backward():
    ref, m = _mlp(), _mlp()
    flat = FlatGradBuffer(torch.optim.SGD(m.parameters(), lr=0.1))
    b1, b2 = _batches(2)
    _loss(m, b1).backward()
    m.zero_grad()  # set_to_none=True: all views gone
    assert all(p.grad is None for p in m.parameters())
    flat.ensure_bound()
    _assert_bound(flat)
    assert torch.count_nonzero(flat.buffers[0]) == 0
    _loss(m, b2).backward()
    _loss(ref, b2).backward()
    for p, q in zip(ref.parameters(), m.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=0)


def test_dropped_views_repaired_after_backward_keep_the_values():
    """If nobody re-binds before backward, autograd makes fresh grads; ensure_bound copies them in."""
    ref, m = _mlp(), _mlp()
    flat = FlatGradBuffer(torch.optim.SGD(m.parameters(), lr=0.1))
    _loss(m, _batches(1, seed=5)[0]).backward()
    m.zero_grad()
    for batch in _batches(2):  # accumulation into the fresh (non-view) grads
        _loss(m, batch).backward()
        _loss(ref, batch).backward()
    m[0].bias.grad = m[0].bias.grad * 1  # another replacement by user code
    flat.ensure_bound()
    _assert_bound(flat)
    for p, q in zip(ref.parameters(), m.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=0)
    assert flat.rebuild_count == 1


def test_training_with_flat_buffer_is_bit_identical_to_plain_training():
    ref, m = _mlp(), _mlp()
    opt_ref = torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=0.1)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1)
    FlatGradBuffer(opt)
    for batch in _batches(6):
        for model, o in ((ref, opt_ref), (m, opt)):
            o.zero_grad()
            _loss(model, batch).backward()
            o.step()
    for p, q in zip(ref.parameters(), m.parameters()):
        torch.testing.assert_close(q, p, rtol=0, atol=0)


def test_frozen_params_left_out_and_tied_weights_once():
    torch.manual_seed(0)
    emb = nn.Embedding(11, 6)
    head = nn.Linear(6, 11, bias=False)
    head.weight = emb.weight  # tied
    frozen = nn.Linear(6, 6)
    frozen.requires_grad_(False)
    params = list(emb.parameters()) + list(frozen.parameters()) + list(head.parameters())
    with pytest.warns(UserWarning, match="duplicate"):
        opt = torch.optim.SGD(params, lr=0.1)
    flat = FlatGradBuffer(opt)
    b = flat.buckets[0]
    assert len(b.params) == 1 and b.params[0] is emb.weight
    assert b.flat.numel() == 11 * 6 + (-(11 * 6) % 4)
    assert frozen.weight.grad is None and frozen.bias.grad is None
    tok = torch.tensor([1, 2, 3])
    head(frozen(emb(tok))).sum().backward()
    _assert_bound(flat)
    assert frozen.weight.grad is None
    with pytest.raises(KeyError, match="not covered"):
        flat.view_of(frozen.weight)


def test_param_groups_are_contiguous_segments_in_group_order():
    m = nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 2), nn.Linear(2, 9))
    groups = [
        {"params": [m[2].weight, m[0].bias], "lr": 0.1},
        {"params": [m[1].weight, m[1].bias, m[0].weight], "lr": 0.01},
        {"params": [m[2].bias], "lr": 1.0},
    ]
    opt = torch.optim.SGD(groups, lr=0.5)
    flat = FlatGradBuffer(opt)
    b = flat.buckets[0]
    expected_order = [p for g in groups for p in g["params"]]
    assert [id(p) for p in b.params] == [id(p) for p in expected_order]
    assert [s[0] for s in b.group_segments] == [0, 1, 2]
    assert b.group_segments[0][1] == 0 and b.group_segments[-1][2] == b.flat.numel()
    for (g0, _, end), (g1, start, _) in zip(b.group_segments, b.group_segments[1:]):
        assert end == start
    for gi, start, stop in b.group_segments:
        for p in opt.param_groups[gi]["params"]:
            off = b.offsets[[id(q) for q in b.params].index(id(p))]
            assert start <= off and off + p.numel() <= stop


def test_one_bucket_per_dtype():
    a = nn.Linear(3, 3)
    c = nn.Linear(3, 3).double()
    opt = torch.optim.SGD(list(a.parameters()) + list(c.parameters()), lr=0.1)
    flat = FlatGradBuffer(opt)
    assert sorted(str(b.dtype) for b in flat.buckets) == ["torch.float32", "torch.float64"]
    assert flat.buckets[1].flat.numel() % 2 == 0  # 16 bytes = 2 doubles


def test_model_to_dtype_rebuilds_and_keeps_grads():
    m = _mlp()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    flat = FlatGradBuffer(opt)
    _loss(m, _batches(1)[0]).backward()
    before = [p.grad.clone() for p in m.parameters()]
    m.double()
    flat.ensure_bound()
    assert flat.buckets[0].dtype == torch.float64
    assert flat.rebuild_count == 2
    _assert_bound(flat)
    for g, p in zip(before, m.parameters()):
        torch.testing.assert_close(p.grad, g.double())
    # and training goes on in float64
    _loss(m, _batches(1, dtype=torch.float64)[0]).backward()
    opt.step()


def test_add_param_group_rebuilds_and_keeps_accumulated_grads():
    m = _mlp()
    extra = nn.Linear(3, 3)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    flat = FlatGradBuffer(opt)
    _loss(m, _batches(1)[0]).backward()
    before = [p.grad.clone() for p in m.parameters()]
    opt.add_param_group({"params": extra.parameters(), "lr": 0.01})
    assert flat.rebuild_count == 2
    _assert_bound(flat)
    assert [s[0] for s in flat.buckets[0].group_segments] == [0, 1]
    for g, p in zip(before, m.parameters()):
        torch.testing.assert_close(p.grad, g, rtol=0, atol=0)
    assert torch.count_nonzero(extra.weight.grad) == 0


def test_requires_grad_flips_rebuild():
    m = _mlp()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    flat = FlatGradBuffer(opt)
    m[0].requires_grad_(False)
    flat.ensure_bound()
    assert len(flat.buckets[0].params) == 2
    opt.zero_grad()
    assert m[0].weight.grad is None  # frozen: zero_grad sets to None as torch does
    m[0].requires_grad_(True)
    flat.ensure_bound()
    assert len(flat.buckets[0].params) == 4
    _assert_bound(flat)


def test_non_contiguous_params_keep_their_strides():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3).to(memory_format=torch.channels_last)
    t = nn.Parameter(torch.randn(4, 6).t())  # transposed: dense, not contiguous
    opt = torch.optim.SGD(list(conv.parameters()) + [t], lr=0.1)
    flat = FlatGradBuffer(opt)
    assert conv.weight.grad.stride() == conv.weight.stride()
    assert t.grad.stride() == t.stride()
    ref_conv = copy.deepcopy(conv)
    ref_conv.weight.grad = None
    ref_conv.bias.grad = None
    x = torch.randn(2, 3, 8, 8).to(memory_format=torch.channels_last)
    conv(x).sum().backward()
    ref_conv(x).sum().backward()
    torch.testing.assert_close(conv.weight.grad, ref_conv.weight.grad)
    _assert_bound(flat)


def test_overlapping_param_is_rejected_with_a_clear_error():
    p = nn.Parameter(torch.randn(3, 1).expand(3, 4))
    with pytest.raises(ValueError, match="overlapping"):
        FlatGradBuffer(torch.optim.SGD([p], lr=0.1))


def test_empty_param_and_empty_optimizer():
    e = nn.Parameter(torch.empty(0))
    w = nn.Parameter(torch.randn(3))
    flat = FlatGradBuffer(torch.optim.SGD([e, w], lr=0.1))
    assert e.grad.shape == (0,) and w.grad.shape == (3,)
    assert flat.buckets[0].flat.numel() == 4
    frozen = nn.Parameter(torch.randn(2), requires_grad=False)
    assert FlatGradBuffer(torch.optim.SGD([frozen], lr=0.1)).buffers == []


def test_checkpoint_loads_into_fresh_model_with_flat_buffer():
    m = _mlp()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    FlatGradBuffer(opt)
    batches = _batches(6)
    for batch in batches[:3]:
        opt.zero_grad()
        _loss(m, batch).backward()
        opt.step()
    buf = io.BytesIO()
    torch.save({"model": m.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf)
    m2 = _mlp(seed=3)
    m2.load_state_dict(ckpt["model"])
    opt2 = torch.optim.AdamW(m2.parameters(), lr=1e-2)
    opt2.load_state_dict(ckpt["opt"])
    FlatGradBuffer(opt2)
    for batch in batches[3:]:
        for model, o in ((m, opt), (m2, opt2)):
            o.zero_grad()
            _loss(model, batch).backward()
            o.step()
    for p, q in zip(m.parameters(), m2.parameters()):
        torch.testing.assert_close(q, p, rtol=0, atol=0)


def test_saving_a_grad_view_saves_the_whole_buffer_unless_cloned():
    """The pitfall behind "clone on export": torch.save of a view writes its whole storage."""
    m = _mlp()
    flat = FlatGradBuffer(torch.optim.SGD(m.parameters(), lr=0.1))
    _loss(m, _batches(1)[0]).backward()
    whole = flat.buffers[0].untyped_storage().nbytes()

    def saved_storage_bytes(t):
        buf = io.BytesIO()
        torch.save(t, buf)
        buf.seek(0)
        return torch.load(buf).untyped_storage().nbytes()

    assert saved_storage_bytes(m[2].bias.grad) == whole
    assert saved_storage_bytes(m[2].bias.grad.clone()) == m[2].bias.numel() * 4


def test_detach_restores_the_optimizer_methods():
    m = _mlp()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    flat = FlatGradBuffer(opt)
    flat.detach()
    assert "zero_grad" not in opt.__dict__ and "add_param_group" not in opt.__dict__
    opt.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_bad_optimizer_argument():
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        FlatGradBuffer([nn.Parameter(torch.zeros(1))])


# ---- flat_params=True: params' storage in one buffer with the grads' layout ---------------------------


def _assert_params_flat(flat):
    for b in flat.buckets:
        assert b.param_flat is not None
        for p, off in zip(b.params, b.offsets):
            assert p.untyped_storage().data_ptr() == b.param_flat.untyped_storage().data_ptr()
            assert p.storage_offset() == off


def test_flat_params_train_bit_identically_and_padding_stays_zero():
    ref, m = _mlp(), _mlp()
    opt_ref = torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=0.1)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1)
    params_before = list(m.parameters())
    flat = FlatGradBuffer(opt, flat_params=True)
    assert [id(p) for p in m.parameters()] == [id(p) for p in params_before]  # same Parameter objects
    _assert_params_flat(flat)
    for batch in _batches(5):
        for model, o in ((ref, opt_ref), (m, opt)):
            o.zero_grad()
            _loss(model, batch).backward()
            o.step()
    for p, q in zip(ref.parameters(), m.parameters()):
        torch.testing.assert_close(q, p, rtol=0, atol=0)
    _assert_params_flat(flat)
    mask = _padding_mask(flat.buckets[0])
    assert torch.count_nonzero(flat.buckets[0].param_flat[mask]) == 0


def test_flat_state_and_one_fused_call_over_the_buffers_match_per_param_adamw():
    """What a fused optimizer can do with the layout: state from bucket.new_flat(), one kernel call."""
    ref, m = _mlp(), _mlp()
    opt_ref = torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=0.1, fused=True)
    flat = FlatGradBuffer(torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1), flat_params=True)
    b = flat.buckets[0]
    exp_avg, exp_avg_sq, step = b.new_flat(), b.new_flat(), torch.zeros(())
    for batch in _batches(5):
        opt_ref.zero_grad()
        _loss(ref, batch).backward()
        opt_ref.step()
        flat.zero_grad()
        _loss(m, batch).backward()
        step += 1  # torch.optim.AdamW increments the step before its fused kernel runs
        torch._fused_adamw_([b.param_flat], [b.flat], [exp_avg], [exp_avg_sq], [], [step], lr=1e-2, beta1=0.9,
                            beta2=0.999, weight_decay=0.1, eps=1e-8, amsgrad=False, maximize=False)
    for p, q in zip(ref.parameters(), m.parameters()):
        torch.testing.assert_close(q, p, rtol=0, atol=0)
    for p, v in zip(ref.parameters(), b.split(exp_avg)):
        torch.testing.assert_close(v, opt_ref.state[p]["exp_avg"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="expected a tensor of shape"):
        b.split(torch.zeros(3))


def test_flat_params_rebuild_after_model_to_and_load_state_dict_keeps_views():
    m = _mlp()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    flat = FlatGradBuffer(opt, flat_params=True)
    sd = {k: v.clone() + 1 for k, v in m.state_dict().items()}
    m.load_state_dict(sd)  # copies in place: still views
    flat.ensure_bound()
    assert flat.rebuild_count == 1
    _assert_params_flat(flat)
    torch.testing.assert_close(m[0].weight, sd["0.weight"], rtol=0, atol=0)
    m.double()
    flat.ensure_bound()
    assert flat.rebuild_count == 2 and flat.buckets[0].param_flat.dtype == torch.float64
    _assert_params_flat(flat)
    torch.testing.assert_close(m[0].weight, sd["0.weight"].double(), rtol=0, atol=0)
    with torch.no_grad():
        m[2].bias.data = torch.zeros(3, dtype=torch.float64)  # user code replacing one param's storage
    flat.ensure_bound()
    assert flat.rebuild_count == 3
    _assert_params_flat(flat)
    assert torch.count_nonzero(m[2].bias) == 0


def test_patched_optimizer_can_be_deep_copied_and_pickled():
    import pickle

    m = _mlp()
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    flat = FlatGradBuffer(opt)
    _loss(m, _batches(1)[0]).backward()
    opt.step()
    clone = copy.deepcopy(opt)
    clone.zero_grad()  # plain torch method on the copy: sets the copy's grads to None
    assert all(p.grad is None for g in clone.param_groups for p in g["params"])
    _assert_bound(flat)  # the original is untouched
    assert torch.count_nonzero(flat.buffers[0]) > 0
    restored = pickle.loads(pickle.dumps(opt))
    assert restored.state_dict()["state"].keys() == opt.state_dict()["state"].keys()
    opt.zero_grad()
    _assert_bound(flat)
    assert torch.count_nonzero(flat.buffers[0]) == 0


def test_ddp_bucket_views_take_the_grads_back_every_step_and_a_warning_says_so(tmp_path):
    """DDP(gradient_as_bucket_view=True) re-points p.grad to its own buckets in every backward: the flat buffer
    must give way (the Trainer uses the grad list under DDP). The values stay right, the cost is a copy."""
    import torch.distributed as dist

    if not dist.is_available():
        pytest.skip("torch.distributed unavailable")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ref, m = _mlp(), _mlp()
        ddp = nn.parallel.DistributedDataParallel(m, gradient_as_bucket_view=True)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1)
        flat = FlatGradBuffer(opt)
        with pytest.warns(RuntimeWarning, match="gradient_as_bucket_view"):
            for batch in _batches(3):
                opt.zero_grad()
                _loss(ddp, batch).backward()
                assert m[0].weight.grad is not flat.view_of(m[0].weight)  # DDP's bucket view now
                flat.ensure_bound()
                _assert_bound(flat)
                opt.step()
                opt_ref.zero_grad()
                _loss(ref, batch).backward()
                opt_ref.step()
        assert flat.copy_count >= 3
        for p, q in zip(ref.parameters(), m.parameters()):
            torch.testing.assert_close(q, p, rtol=1e-6, atol=1e-7)
    finally:
        dist.destroy_process_group()
