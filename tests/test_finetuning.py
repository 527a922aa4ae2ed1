"""BaseFinetuning and BackboneFinetuning under fastlight give pytorch_lightning's results for the same user code and
seed: final weights (bit-identical with fused=False, fp32-close with the fused optimizers, whose add_param_group must
work mid-training), the LR of every param group at every step, the callback's checkpoint state and a resume after the
backbone was unfrozen; the freezing helpers behave as Lightning's."""
import pytest
import torch
from torch import nn

pl_ref = pytest.importorskip("pytorch_lightning")

from fastlight.engine.optim import _FusedMixin
import fastlight as fl  # noqa: E402
from _averaging_helpers import assert_state_dicts_equal, build_bn, lr_recorder, needs_native_kernels  # noqa: E402
from _parity_helpers import quiet_warnings, trainer_kwargs  # noqa: E402

quiet_warnings()


def _half_lr(epoch):
    return 1.5


def _custom_finetuning(pl):
    class HeadThenBackbone(pl.callbacks.BaseFinetuning):
        """User code: the backbone (BatchNorm included) frozen, then unfrozen at epoch 2 at lr / 4."""

        def freeze_before_training(self, pl_module):
            self.freeze([pl_module.backbone], train_bn=False)

        def finetune_function(self, pl_module, epoch, optimizer):
            if epoch == 2:
                self.unfreeze_and_add_param_group(pl_module.backbone, optimizer, initial_denom_lr=4.0)

    return HeadThenBackbone()


CALLBACKS = {
    "backbone_sgd_steplr": (lambda pl: pl.callbacks.BackboneFinetuning(unfreeze_backbone_at_epoch=1),
                            dict(scheduler="step")),
    "backbone_adam_no_bn_training": (
        lambda pl: pl.callbacks.BackboneFinetuning(unfreeze_backbone_at_epoch=2, train_bn=False, lambda_func=_half_lr),
        dict(optimizer="adam", lr=0.01)),
    "backbone_fixed_lr_unaligned": (
        lambda pl: pl.callbacks.BackboneFinetuning(unfreeze_backbone_at_epoch=1, backbone_initial_lr=0.04,
                                                   should_align=False),
        dict(scheduler="exp_per_step")),
    "custom_base_finetuning": (_custom_finetuning, dict(optimizer="adamw", lr=0.02)),
}


def _fit(pl, tmp_path, name, ckpt_path=None, extra_callbacks=(), max_epochs=4, **extra):
    make_cb, model_kw = CALLBACKS[name]
    torch.manual_seed(1234)
    model = build_bn(pl)(**model_kw)
    cb, lrs = make_cb(pl), lr_recorder(pl)
    kw = trainer_kwargs(tmp_path, max_epochs=max_epochs)
    kw.update(extra)
    trainer = pl.Trainer(callbacks=[cb, lrs, *extra_callbacks], **kw)
    trainer.fit(model, ckpt_path=ckpt_path)
    return model, trainer, cb, lrs


def _requires_grad(model):
    return {n: p.requires_grad for n, p in model.named_parameters()}


def _bn_tracking(model):
    return [m.track_running_stats for m in model.modules() if isinstance(m, nn.BatchNorm1d)]


@pytest.mark.parametrize("name", sorted(CALLBACKS))
def test_finetuning_matches_lightning_bitwise_without_fused(name, tmp_path):
    ref, ref_tr, ref_cb, ref_lrs = _fit(pl_ref, tmp_path / "pl", name)
    got, tr, cb, lrs = _fit(fl, tmp_path / "fl", name, fused=False)
    assert_state_dicts_equal(ref, got)
    assert lrs.lrs == ref_lrs.lrs  # every param group's LR at every step
    assert len(tr.optimizers[0].param_groups) == len(ref_tr.optimizers[0].param_groups) == 2
    assert _requires_grad(got) == _requires_grad(ref)
    assert _bn_tracking(got) == _bn_tracking(ref)
    assert cb.state_dict() == ref_cb.state_dict()


@needs_native_kernels
@pytest.mark.parametrize("name", ["backbone_sgd_steplr", "backbone_fixed_lr_unaligned"])
def test_finetuning_with_fused_optimizers_within_fp32(name, tmp_path):
    """add_param_group on fastlight's fused optimizers mid-training: the new group is stepped like torch's."""
    ref, _, ref_cb, ref_lrs = _fit(pl_ref, tmp_path / "pl", name)
    got, tr, cb, lrs = _fit(fl, tmp_path / "fl", name)  # fused=True, the default
    assert isinstance(tr.optimizers[0], _FusedMixin)  # fused in place: it still reports the torch class
    assert_state_dicts_equal(ref, got, exact=False)
    assert lrs.lrs == ref_lrs.lrs
    assert cb.state_dict() == ref_cb.state_dict()


def test_finetuning_checkpoint_state_and_resume_after_unfreeze_match_lightning(tmp_path):
    name = "backbone_sgd_steplr"
    for tag, pl, extra in (("pl", pl_ref, {}), ("fl", fl, {"fused": False})):
        ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / tag, filename="{epoch}", save_top_k=-1)
        _fit(pl, tmp_path / tag, name, extra_callbacks=[ckpt], enable_checkpointing=True, **extra)
    ref = torch.load(tmp_path / "pl" / "epoch=1.ckpt", weights_only=False)
    got = torch.load(tmp_path / "fl" / "epoch=1.ckpt", weights_only=False)
    state = got["callbacks"]["BackboneFinetuning"]
    assert state == ref["callbacks"]["BackboneFinetuning"]
    groups = state["internal_optimizer_metadata"][0]
    assert [g["params"] for g in groups] == [
        ["backbone.1.weight", "backbone.1.bias", "head.0.weight", "head.0.bias", "head.2.weight", "head.2.bias"],
        ["backbone.0.weight", "backbone.0.bias"],
    ]
    assert len(got["optimizer_states"][0]["param_groups"]) == 2

    # resumed as Lightning resumes (the loader shuffles, and Lightning does not restore the RNGs): without the
    # random state fastlight's checkpoint carries (with it, fastlight's resumed run draws the uninterrupted run's order)
    del got["fastlight_resume"]
    torch.save(got, tmp_path / "fl" / "epoch=1.ckpt")
    resumed = {}
    for tag, pl, extra in (("pl", pl_ref, {}), ("fl", fl, {"fused": False})):
        resumed[tag] = _fit(pl, tmp_path / f"resume_{tag}", name, ckpt_path=str(tmp_path / tag / "epoch=1.ckpt"),
                            **extra)
    (ref_m, ref_tr, ref_cb, ref_lrs), (m, tr, cb, lrs) = resumed["pl"], resumed["fl"]
    assert_state_dicts_equal(ref_m, m)
    assert lrs.lrs == ref_lrs.lrs
    assert len(tr.optimizers[0].param_groups) == 2  # the backbone's group came back from the callback's state
    assert cb.state_dict() == ref_cb.state_dict()
    assert tr.global_step == ref_tr.global_step


@needs_native_kernels
@pytest.mark.parametrize("opt_cls, kw", [(torch.optim.SGD, dict(lr=0.1, momentum=0.9)),
                                          (torch.optim.Adam, dict(lr=0.01)),
                                          (torch.optim.AdamW, dict(lr=0.01, weight_decay=0.1))])
def test_fused_optimizer_steps_a_param_group_added_after_steps(opt_cls, kw):
    from fastlight.engine.optim import fuse_optimizer

    def run(fused):
        torch.manual_seed(0)
        a, b = nn.Linear(4, 4), nn.Linear(4, 2)
        opt = opt_cls(a.parameters(), **kw)
        if fused:
            opt, why = fuse_optimizer(opt)
            assert opt is not None, why
        for step in range(6):
            if step == 2:
                opt.add_param_group({"params": list(b.parameters()), "lr": 0.003})
            opt.zero_grad()
            b(a(torch.randn(3, 4))).pow(2).sum().backward()
            opt.step()
        return [p.detach().clone() for p in (*a.parameters(), *b.parameters())], opt

    ref, ref_opt = run(False)
    got, opt = run(True)
    assert isinstance(opt, _FusedMixin)
    for r, g in zip(ref, got):
        torch.testing.assert_close(g, r, rtol=1e-6, atol=1e-7)
    assert len(opt.state_dict()["state"]) == len(ref_opt.state_dict()["state"]) == 4


def _nested_modules():
    torch.manual_seed(0)
    return nn.ModuleDict({
        "a": nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)),
        "b": nn.Linear(3, 3),
    })


def test_freezing_helpers_behave_as_lightnings():
    from pytorch_lightning.callbacks import BaseFinetuning as RefBase

    Base = fl.callbacks.BaseFinetuning
    ref_mods, mods = _nested_modules(), _nested_modules()
    assert [type(m).__name__ for m in Base.flatten_modules([mods, [mods["b"]]])] == \
        [type(m).__name__ for m in RefBase.flatten_modules([ref_mods, [ref_mods["b"]]])]
    Base.freeze(mods, train_bn=False)
    RefBase.freeze(ref_mods, train_bn=False)
    assert [p.requires_grad for p in mods.parameters()] == [p.requires_grad for p in ref_mods.parameters()]
    assert mods["a"][1].track_running_stats is False
    assert list(Base.filter_params(mods, requires_grad=True)) == []
    assert len(list(Base.filter_params(mods, train_bn=False, requires_grad=False))) == 4
    opt = torch.optim.SGD([nn.Parameter(torch.ones(1))], lr=0.5)
    Base.unfreeze_and_add_param_group(mods["a"], opt, train_bn=True)
    assert [p.requires_grad for p in mods.parameters()] == [True] * 4 + [False] * 2
    assert opt.param_groups[1]["lr"] == 0.05 and len(opt.param_groups[1]["params"]) == 4
    with pytest.warns(UserWarning, match="already exist within another group"):
        kept = Base.filter_on_optimizer(opt, list(mods["a"].parameters()))
    assert kept == []


def test_backbone_finetuning_needs_a_backbone(tmp_path):
    class NoBackbone(fl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(8, 3)

    cb = fl.callbacks.BackboneFinetuning()
    with pytest.raises(ValueError, match="should have a nn.Module `backbone` attribute"):
        cb.on_fit_start(None, NoBackbone())
    with pytest.raises(TypeError, match="lambda_func"):
        fl.callbacks.BackboneFinetuning(lambda_func=2.0)


def test_base_finetuning_without_overrides_says_what_to_implement(tmp_path):
    with pytest.raises(NotImplementedError, match="freeze_before_training"):
        fl.callbacks.BaseFinetuning().freeze_before_training(nn.Linear(1, 1))
    with pytest.raises(NotImplementedError, match="finetune_function"):
        fl.callbacks.BaseFinetuning().finetune_function(nn.Linear(1, 1), 0, None)
