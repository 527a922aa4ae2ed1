"""Trainer(cuda_graphs=...) on the CPU: flag parsing, every up-front refusal (one info line, eager, same results),
and the capture orchestration (warm-up, verification, replay with static inputs, self.log values replayed, LR
written to the graph's LR tensor, last partial batch eager, fallbacks naming their cause) driven through a stand-in
backend whose "replay" re-runs the captured step function in place (as a graph refreshes its static outputs).
The CUDA runs are in test_cuda_graph_step.py."""
import contextlib
import logging

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import fastlight as fl
from fastlight.trainer import graph_step
from fastlight.trainer.config import ConfigError


# ------------------------------------------------------------------------------------------------ stand-in backend
class FakeBackend:
    """capture(fn) runs fn once (recording its self.log calls as the real capture does); replay re-runs it and copies
    the new outputs, logged values and grads into the captured (static) ones, leaving `.grad` attributes alone."""

    def __init__(self, trainer, perturb=False, fail_at_capture=False):
        self.trainer = trainer
        self.device = torch.device("cpu")
        self.perturb = perturb
        self.fail_at_capture = fail_at_capture
        self.capturing = False
        self.captures = 0
        self.replays = 0

    def side(self):
        return contextlib.nullcontext()

    def capture(self, fn):
        self.captures += 1
        self.recorder = self.trainer.__dict__["_log"]
        self.capturing = True
        try:
            out = fn()
        finally:
            self.capturing = False
        self.static_grads = [p.grad for p in self._params()]  # the buffers a real graph's replays write
        return object(), out

    def _params(self):
        return [p for g in self.trainer.optimizers[0].param_groups for p in g["params"]]

    def replay(self, graph, fn, out):
        self.replays += 1
        params = self._params()
        attrs = [p.grad for p in params]  # a replay writes the static grad buffers and leaves `.grad` alone
        for p in params:
            p.grad = None
        rec = graph_step._LogRecorder(self.trainer, record=True)
        with rec:
            loss, extra = fn()
        with torch.no_grad():
            for static, p in zip(self.static_grads, params):
                static.copy_(p.grad)
            for p, a in zip(params, attrs):
                p.grad = a
            out[0].copy_(loss + (1.0 if self.perturb else 0.0))
            for k, v in extra.items():
                if isinstance(v, torch.Tensor):
                    out[1][k].copy_(v)
            for (old_args, _), (new_args, _) in zip(self.recorder.calls, rec.calls):
                if isinstance(old_args[1], torch.Tensor):
                    old_args[1].copy_(new_args[1])

    def rng_state(self):
        return torch.get_rng_state()

    def set_rng_state(self, state):
        torch.set_rng_state(state)

    def synchronize(self):
        pass


@pytest.fixture
def fake(monkeypatch):
    made = []

    def use(**kw):
        def factory(trainer):
            made.append(FakeBackend(trainer, **kw))
            return made[-1]

        monkeypatch.setattr(graph_step, "_test_backend", factory)
        return made

    return use


# ------------------------------------------------------------------------------------------------ user code
def _data(n=44, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 6, generator=g), torch.randint(0, 4, (n,), generator=g))


class Net(fl.LightningModule):
    def __init__(self, optimizer="adamw", scheduler=False, dropout=0.2, backend_box=None):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Dropout(dropout), torch.nn.ReLU(),
                                       torch.nn.Linear(16, 4))
        self.optimizer, self.scheduler = optimizer, scheduler
        self.backend_box = backend_box
        self.outputs = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.backend_box and self.backend_box[0].capturing:
            raise RuntimeError("operation not permitted when stream is capturing")
        logits = self.net(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        self.log("train_loss", loss, prog_bar=True, on_epoch=True)
        self.log("acc", (logits.argmax(-1) == y).float().mean(), on_step=True, on_epoch=True)
        self.log("const", 2.0)
        return {"loss": loss, "logits_mean": logits.detach().mean()}

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.outputs.append({k: v.clone() for k, v in outputs.items()})

    def configure_optimizers(self):
        if self.optimizer == "sgd":
            opt = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)
        else:
            opt = torch.optim.AdamW(self.parameters(), lr=0.01)
        if not self.scheduler:
            return opt
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _fit(tmp_path, cuda_graphs, model=None, loader_kw=None, **kw):
    torch.manual_seed(7)
    model = model or Net()
    args = dict(accelerator="cpu", max_epochs=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                enable_checkpointing=False, default_root_dir=str(tmp_path), cuda_graphs=cuda_graphs)
    args.update(kw)
    trainer = fl.Trainer(**args)
    trainer.fit(model, DataLoader(_data(), batch_size=8, shuffle=True, **(loader_kw or {})))
    return model, trainer


def _assert_same_run(a, b):
    (ma, ta), (mb, tb) = a, b
    assert ta.global_step == tb.global_step
    for x, y in zip(ma.state_dict().values(), mb.state_dict().values()):
        assert torch.equal(x, y)
    assert sorted(ta.callback_metrics) == sorted(tb.callback_metrics)
    for k in ta.callback_metrics:
        assert torch.equal(ta.callback_metrics[k], tb.callback_metrics[k]), k
    assert len(ma.outputs) == len(mb.outputs)
    for oa, ob in zip(ma.outputs, mb.outputs):
        assert oa.keys() == ob.keys()
        for k in oa:
            assert torch.equal(oa[k], ob[k]), k


def _info(caplog):
    return [r.getMessage() for r in caplog.records if "cuda_graphs" in r.getMessage()]


# ------------------------------------------------------------------------------------------------ flag
@pytest.mark.parametrize("value,parsed", [(False, False), (True, True), ("auto", "auto"), ("AUTO", "auto")])
def test_cuda_graphs_flag_values(value, parsed):
    assert fl.Trainer(accelerator="cpu", cuda_graphs=value)._cfg.cuda_graphs == parsed


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_cuda_graphs_flag_rejects_other_values(value):
    with pytest.raises(ConfigError, match="cuda_graphs"):
        fl.Trainer(accelerator="cpu", cuda_graphs=value)


@pytest.mark.parametrize("value", [True, "auto"])
def test_cpu_run_says_why_once_and_trains_eagerly_with_the_same_results(value, tmp_path, caplog):
    ref = _fit(tmp_path, False)
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        got = _fit(tmp_path, value)
    lines = _info(caplog)
    assert len(lines) == 1 and "CUDA device" in lines[0] and "Running eagerly" in lines[0]
    assert got[1].fit_loop._graph is None
    _assert_same_run(got, ref)


# ------------------------------------------------------------------------------------------------ refusals
class ManualNet(Net):
    def __init__(self):
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(self.net(batch[0]), batch[1])
        self.manual_backward(loss)
        opt.step()


class StepOverride(Net):
    def optimizer_step(self, *args, **kwargs):
        super().optimizer_step(*args, **kwargs)


class BackwardHook(Net):
    def on_before_backward(self, loss):
        pass


class ClipOverride(Net):
    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)


class RmspropNet(Net):
    def configure_optimizers(self):
        return torch.optim.RMSprop(self.parameters(), lr=0.01)


class _ZeroGradCallback(fl.Callback):
    def on_before_zero_grad(self, trainer, pl_module, optimizer):
        pass


REFUSALS = {
    "manual_optimization": (lambda: ManualNet(), {}, "manual optimization"),
    "optimizer_step_overridden": (lambda: StepOverride(), {}, "`optimizer_step` is overridden"),
    "not_fused": (lambda: Net(), dict(fused=False), "not one of the fused engine's"),
    "unmanaged_optimizer": (lambda: RmspropNet(), {}, "RMSprop is not one of the fused engine's"),
    "accumulation": (lambda: Net(), dict(accumulate_grad_batches=2), "gradient accumulation"),
    "hook_in_step": (lambda: BackwardHook(), {}, "`on_before_backward` hook"),
    "callback_hook_in_step": (lambda: Net(), dict(callbacks=[_ZeroGradCallback()]), "`on_before_zero_grad` hook"),
    "clip_override": (lambda: ClipOverride(), {}, "`configure_gradient_clipping` is overridden"),
    "profiler": (lambda: Net(), dict(profiler="simple"), "a profiler records the step"),
    "flat_grads": (lambda: Net(), dict(flat_grads=True), "flat gradient buffers"),
    "anomaly": (lambda: Net(), dict(detect_anomaly=True), "anomaly detection"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused_up_front_with_one_line(case, tmp_path, caplog, fake):
    made = fake()
    make, kw, expected = REFUSALS[case]
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        _, trainer = _fit(tmp_path, True, model=make(), **kw)
    lines = _info(caplog)
    assert len(lines) == 1, lines
    assert expected in lines[0] and "Running eagerly" in lines[0]
    assert trainer.fit_loop._graph is None and not made


def test_plain_config_is_not_refused_apart_from_the_device(tmp_path):
    seen = {}

    class Probe(fl.Callback):
        def on_train_start(self, trainer, pl_module):
            seen["without device"] = graph_step.refusal(trainer, trainer.fit_loop, pl_module, need_cuda=False)
            seen["with device"] = graph_step.refusal(trainer, trainer.fit_loop, pl_module)

    _fit(tmp_path, False, callbacks=[Probe()], max_epochs=1, gradient_clip_val=0.5)
    assert seen["without device"] is None
    assert "CUDA device" in seen["with device"]


# ------------------------------------------------------------------------------------------------ orchestration
@pytest.mark.parametrize("optimizer,scheduler,kw", [
    ("adamw", False, {}),
    ("sgd", True, {}),
    ("adamw", True, dict(gradient_clip_val=0.05)),
    ("sgd", False, dict(precision="bf16-mixed")),
])
def test_captured_run_equals_the_eager_run(optimizer, scheduler, kw, tmp_path, caplog, fake):
    """Warm-up, capture with verification, replays (inputs copied into static buffers, LR written to the graph's
    tensor, self.log values and outputs from the static outputs), the last partial batch (44 = 5 x 8 + 4) eager."""
    made = fake()
    ref = _fit(tmp_path, False, model=Net(optimizer, scheduler), **kw)
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        got = _fit(tmp_path, True, model=Net(optimizer, scheduler), **kw)
    _assert_same_run(got, ref)
    backend = made[0]
    assert backend.captures == 1
    # batches per epoch: 6 (the last partial); epoch 0: 3 warm-up, capture at batch 3 (+1 verification replay),
    # batch 4 replayed, batch 5 eager; epoch 1: 5 replays, 1 eager
    assert backend.replays == 1 + 1 + 5
    lines = _info(caplog)
    assert len(lines) == 1 and "captured" in lines[0]


def test_capture_error_falls_back_naming_the_line(tmp_path, caplog, fake):
    made = fake()
    ref = _fit(tmp_path, False, model=Net())
    model = Net()
    model.backend_box = made  # it raises while the stand-in backend captures, as a host sync does under capture
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        got = _fit(tmp_path, True, model=model)
    _assert_same_run(got, ref)
    lines = _info(caplog)
    assert len(lines) == 1
    assert "capture failed" in lines[0] and "operation not permitted when stream is capturing" in lines[0]
    assert "test_graph_step.py" in lines[0]  # the user's line that broke the capture
    assert got[1].fit_loop._graph.failed


def test_verification_mismatch_falls_back(tmp_path, caplog, fake):
    fake(perturb=True)
    ref = _fit(tmp_path, False, model=Net())
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        got = _fit(tmp_path, True, model=Net())
    _assert_same_run(got, ref)
    lines = _info(caplog)
    assert len(lines) == 1 and "verification failed" in lines[0] and "loss" in lines[0]


def test_changing_batch_shapes_end_capture(tmp_path, caplog, fake):
    fake()

    class Varying(torch.utils.data.Sampler):
        def __iter__(self):
            sizes = [8, 8, 8, 8, 6, 6]
            start = 0
            for s in sizes:
                yield list(range(start, start + s))
                start += s

        def __len__(self):
            return 6

    def fit(graphs):
        torch.manual_seed(7)
        model = Net()
        trainer = fl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_progress_bar=False,
                             enable_model_summary=False, enable_checkpointing=False,
                             default_root_dir=str(tmp_path), cuda_graphs=graphs)
        trainer.fit(model, DataLoader(_data(), batch_sampler=Varying()))
        return model, trainer

    ref = fit(False)
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        got = fit(True)
    _assert_same_run(got, ref)
    assert any("batch shapes change" in m for m in _info(caplog))


def test_changed_momentum_ends_capture(tmp_path, caplog, fake):
    fake()

    class Bump(fl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 5:
                trainer.optimizers[0].param_groups[0]["momentum"] = 0.5

    ref = _fit(tmp_path, False, model=Net("sgd"), callbacks=[Bump()])
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        got = _fit(tmp_path, True, model=Net("sgd"), callbacks=[Bump()])
    _assert_same_run(got, ref)
    assert any("'momentum' changed" in m for m in _info(caplog))


def test_cause_names_the_user_line_of_the_original_error():
    def user_step():
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nmore")

    try:
        try:
            user_step()
        finally:
            raise RuntimeError("operation failed due to a previous error during capture")
    except RuntimeError as err:
        cause = graph_step._cause(err)
    assert cause.startswith("RuntimeError: CUDA error: operation not permitted when stream is capturing (at ")
    assert "test_graph_step.py" in cause and "raise RuntimeError" in cause


def test_grads_point_at_the_graph_buffers_after_validation_zeroed_them(tmp_path, fake):
    """Validation's on_validation_model_zero_grad sets .grad to None; the next replay points .grad back at the
    buffers the graph writes (a hook reading grads after the step sees this step's gradients)."""
    fake()
    seen = []

    class GradProbe(fl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            seen.append(pl_module.net[0].weight.grad is not None)

    class WithVal(Net):
        def validation_step(self, batch, batch_idx):
            self.log("val_loss", torch.nn.functional.cross_entropy(self.net(batch[0]), batch[1]))

    model = WithVal()
    torch.manual_seed(7)
    trainer = fl.Trainer(accelerator="cpu", max_epochs=2, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, default_root_dir=str(tmp_path),
                         cuda_graphs=True, val_check_interval=2, callbacks=[GradProbe()], num_sanity_val_steps=0)
    trainer.fit(model, DataLoader(_data(), batch_size=8), DataLoader(_data(8), batch_size=4))
    assert trainer.fit_loop._graph.graph is not None
    assert all(seen)
