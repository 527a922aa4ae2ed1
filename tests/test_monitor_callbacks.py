"""RichModelSummary, DeviceStatsMonitor, ThroughputMonitor and ModelPruning: the same user code under
pytorch_lightning and fastlight, compared on what is observable (logged keys and values, printed rows, pruned
weights and masks), plus the errors for bad arguments or set-ups."""
import itertools
import sys
import types
import warnings

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import fastlight

FRAMEWORKS = [pl, fastlight]


def _quiet():
    warnings.filterwarnings("ignore")


def make_module(fw, with_val=False):
    class MLP(fw.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer1 = nn.Linear(8, 16)
            self.act = nn.ReLU()
            self.layer2 = nn.Linear(16, 2)

        def forward(self, x):
            return self.layer2(self.act(self.layer1(x)))

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)

    if with_val:
        class MLPWithVal(MLP):
            def validation_step(self, batch, batch_idx):
                x, y = batch
                self.log("val_loss", nn.functional.cross_entropy(self(x), y))

        return MLPWithVal
    return MLP


def loader(n=32, batch_size=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)


def recording_logger(fw, records):
    class Recording(fw.loggers.Logger):
        @property
        def name(self):
            return "rec"

        @property
        def version(self):
            return 0

        def log_metrics(self, metrics, step=None):
            records.append((step, dict(metrics)))

        def log_hyperparams(self, *args, **kwargs):
            pass

    return Recording()


def trainer_kwargs(tmp_path, fw, **kw):
    base = dict(max_epochs=1, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                default_root_dir=str(tmp_path / fw.__name__), num_sanity_val_steps=0)
    base.update(kw)
    return base


def run_both(tmp_path, make_callbacks, fit=True, with_val=False, **kw):
    """Fit (and test with the same callbacks) under both frameworks; returns each framework's logged records."""
    _quiet()
    out = []
    for fw in FRAMEWORKS:
        torch.manual_seed(0)
        records = []
        trainer = fw.Trainer(logger=recording_logger(fw, records), callbacks=make_callbacks(fw),
                             **trainer_kwargs(tmp_path, fw, **kw))
        model = make_module(fw, with_val)()
        if fit:
            trainer.fit(model, loader(), loader(16) if with_val else None)
        out.append(records)
    return out


# -- RichModelSummary ------------------------------------------------------------------------------------------------
def test_rich_model_summary_prints_lightnings_rows_and_totals(tmp_path, capsys):
    _quiet()
    printed = []
    for fw in FRAMEWORKS:
        trainer = fw.Trainer(**trainer_kwargs(tmp_path, fw, max_steps=1, logger=False,
                                              callbacks=[fw.callbacks.RichModelSummary(max_depth=1)]))
        trainer.fit(make_module(fw)(), loader())
        printed.append(capsys.readouterr().out)
    pl_out, fl_out = printed

    def rows(text):  # (name, type, params, mode) of each table row, whatever the box characters
        found = []
        for line in text.splitlines():
            cells = [c.strip() for c in line.replace("│", "|").replace("┃", "|").split("|")]
            cells = [c for c in cells if c]
            if len(cells) >= 4 and cells[0].isdigit():
                found.append(tuple(cells[1:4]) + (cells[4] if cells[4] in ("train", "eval") else "",))
        return found

    assert rows(fl_out) == rows(pl_out) == [("layer1", "Linear", "144", "train"), ("act", "ReLU", "0", "train"),
                                            ("layer2", "Linear", "34", "train")]
    for line in ("Trainable params: 178", "Non-trainable params: 0", "Total params: 178",
                 "Total estimated model params size (MB): 0.001", "Modules in train mode: 3",
                 "Modules in eval mode: 0"):
        assert line in pl_out and line in fl_out, line


def test_rich_model_summary_default_with_rich_progress_bar(tmp_path):
    _quiet()
    trainer = fastlight.Trainer(callbacks=[fastlight.callbacks.RichProgressBar()], default_root_dir=str(tmp_path))
    assert [type(c).__name__ for c in trainer.callbacks if isinstance(c, fastlight.callbacks.ModelSummary)] \
        == ["RichModelSummary"]
    plain = fastlight.Trainer(default_root_dir=str(tmp_path))
    assert [type(c).__name__ for c in plain.callbacks if isinstance(c, fastlight.callbacks.ModelSummary)] \
        == ["ModelSummary"]
    off = fastlight.Trainer(callbacks=[fastlight.callbacks.RichProgressBar()], enable_model_summary=False,
                            default_root_dir=str(tmp_path))
    assert not any(isinstance(c, fastlight.callbacks.ModelSummary) for c in off.callbacks)


def test_rich_model_summary_bad_depth_and_missing_rich(monkeypatch):
    with pytest.raises(ValueError, match="max_depth"):
        fastlight.callbacks.RichModelSummary(max_depth=-2)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "rich" else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match="`RichModelSummary` requires `rich`"):
        fastlight.callbacks.RichModelSummary()


# -- DeviceStatsMonitor ----------------------------------------------------------------------------------------------
@pytest.fixture
def fake_psutil(monkeypatch):
    """psutil is not installed here: a stand-in with fixed numbers, seen by both frameworks."""
    import pytorch_lightning.accelerators.cpu as pl_cpu
    import pytorch_lightning.callbacks.device_stats_monitor as pl_dsm

    fake = types.ModuleType("psutil")
    fake.virtual_memory = lambda: types.SimpleNamespace(percent=41.0)
    fake.swap_memory = lambda: types.SimpleNamespace(percent=2.0)
    fake.cpu_percent = lambda: 13.0
    monkeypatch.setitem(sys.modules, "psutil", fake)
    monkeypatch.setattr(pl_cpu, "_PSUTIL_AVAILABLE", True)
    monkeypatch.setattr(pl_dsm, "_PSUTIL_AVAILABLE", True)


def test_device_stats_monitor_cpu_keys_and_steps_match_lightning(tmp_path, fake_psutil):
    pl_rec, fl_rec = run_both(tmp_path, lambda fw: [fw.callbacks.DeviceStatsMonitor()], with_val=True,
                              log_every_n_steps=2, limit_train_batches=6, limit_val_batches=3)
    assert fl_rec == pl_rec
    keys = set(itertools.chain.from_iterable(m for _, m in fl_rec))
    assert "DeviceStatsMonitor.on_train_batch_start/cpu_percent" in keys
    assert "DeviceStatsMonitor.on_validation_batch_end/cpu_swap_percent" in keys


def test_device_stats_monitor_cpu_stats_false_logs_nothing_on_cpu(tmp_path):
    pl_rec, fl_rec = run_both(tmp_path, lambda fw: [fw.callbacks.DeviceStatsMonitor(cpu_stats=False)],
                              log_every_n_steps=1, limit_train_batches=3)
    assert [m for _, m in fl_rec if any(k.startswith("DeviceStats") for k in m)] == []
    assert [m for _, m in pl_rec if any(k.startswith("DeviceStats") for k in m)] == []


@pytest.mark.parametrize("fw", FRAMEWORKS, ids=lambda fw: fw.__name__)
def test_device_stats_monitor_needs_a_logger(tmp_path, fw):
    _quiet()
    trainer = fw.Trainer(**trainer_kwargs(tmp_path, fw, logger=False, max_steps=1,
                                          callbacks=[fw.callbacks.DeviceStatsMonitor()]))
    with pytest.raises(Exception, match=r"Cannot use `DeviceStatsMonitor` callback with `Trainer\(logger=False\)`"):
        trainer.fit(make_module(fw)(), loader())


@pytest.mark.parametrize("fw", FRAMEWORKS, ids=lambda fw: fw.__name__)
def test_device_stats_monitor_without_psutil(tmp_path, fw, monkeypatch):
    _quiet()
    # psutil may be installed (other packages pull it in): hide it from both frameworks' availability checks
    monkeypatch.setitem(sys.modules, "psutil", None)
    import pytorch_lightning.accelerators.cpu as pl_cpu
    import pytorch_lightning.callbacks.device_stats_monitor as pl_dsm

    for mod in (pl_cpu, pl_dsm):
        monkeypatch.setattr(mod, "_PSUTIL_AVAILABLE", False)
    trainer = fw.Trainer(logger=recording_logger(fw, []), callbacks=[fw.callbacks.DeviceStatsMonitor()],
                         **trainer_kwargs(tmp_path, fw, max_steps=1))
    with pytest.raises(ModuleNotFoundError, match="`DeviceStatsMonitor` cannot log CPU stats as `psutil` is not"):
        trainer.fit(make_module(fw)(), loader())
    trainer = fw.Trainer(logger=recording_logger(fw, []), callbacks=[fw.callbacks.DeviceStatsMonitor(cpu_stats=True)],
                         **trainer_kwargs(tmp_path, fw, max_steps=1, log_every_n_steps=1))
    with pytest.raises(ModuleNotFoundError, match="Fetching CPU device stats requires `psutil`"):
        trainer.fit(make_module(fw)(), loader())


# -- ThroughputMonitor -----------------------------------------------------------------------------------------------
@pytest.fixture
def fixed_clock(monkeypatch):
    """time.perf_counter advances by 0.25 s per call (both frameworks' monitors read it through `time`)."""
    counter = itertools.count()
    monkeypatch.setattr("time.perf_counter", lambda: next(counter) * 0.25)


def test_throughput_monitor_logs_lightnings_keys_and_values(tmp_path, fixed_clock):
    def callbacks(fw):
        return [fw.callbacks.ThroughputMonitor(batch_size_fn=lambda b: b[0].shape[0],
                                               length_fn=lambda b: 3 * b[0].shape[0], window_size=3)]

    pl_rec, fl_rec = run_both(tmp_path, callbacks, with_val=True, log_every_n_steps=2, limit_train_batches=6,
                              limit_val_batches=3, val_check_interval=3)

    def throughput(records):
        return [(s, m) for s, m in records if any(k.startswith(("train/", "validate/")) for k in m)]

    assert throughput(fl_rec) == throughput(pl_rec)
    keys = set(itertools.chain.from_iterable(m for _, m in throughput(fl_rec)))
    assert {"train/time", "train/batches", "train/samples", "train/lengths", "train/device/batches_per_sec",
            "train/device/samples_per_sec", "train/device/items_per_sec", "validate/samples", "epoch"} <= keys


def test_throughput_monitor_test_validate_predict_logs(tmp_path, fixed_clock):
    _quiet()
    logged = []
    for fw in FRAMEWORKS:
        records = []
        cb = fw.callbacks.ThroughputMonitor(batch_size_fn=lambda b: b[0].shape[0], window_size=2)

        class WithTest(make_module(fw, with_val=True)):
            def test_step(self, batch, batch_idx):
                pass

            def predict_step(self, batch, batch_idx):
                return self(batch[0])

        trainer = fw.Trainer(logger=recording_logger(fw, records), callbacks=[cb],
                             **trainer_kwargs(tmp_path, fw, log_every_n_steps=1, limit_test_batches=4))
        trainer.test(WithTest(), loader())
        trainer.test(WithTest(), loader())  # counters go on across runs, as Lightning's loop totals do
        trainer.validate(WithTest(), loader(12))
        trainer.predict(WithTest(), loader(12))
        logged.append([(step, m) for step, m in records if "val_loss" not in m])  # the model's own log aside
    assert logged[1] == logged[0]
    keys = set(itertools.chain.from_iterable(m for _, m in logged[1]))
    assert {"test/device/samples_per_sec", "validate/samples", "predict/device/batches_per_sec"} <= keys


def test_throughput_class_windowing_and_errors():
    from lightning_fabric.utilities.throughput import Throughput as PLThroughput

    from fastlight.utilities.throughput import Throughput

    for world_size in (1, 2):
        ours, theirs = (T(available_flops=50.0, world_size=world_size, window_size=3) for T in (Throughput, PLThroughput))
        for i in range(1, 6):
            for t in (ours, theirs):
                t.update(time=0.5 * i + 0.01 * i * i, batches=i, samples=4 * i, lengths=12 * i, flops=10 * i)
            assert ours.compute() == pytest.approx(theirs.compute())
            assert ours.compute().keys() == theirs.compute().keys()
        ours.reset()
        with pytest.raises(IndexError):
            ours.compute()
    t = Throughput()
    t.update(time=1.0, batches=1, samples=1)
    with pytest.raises(ValueError, match="Expected the value to increase"):
        t.update(time=1.0, batches=2, samples=2)
    with pytest.raises(ValueError, match=r"Expected samples \(1\) to be greater or equal than batches \(2\)"):
        Throughput().update(time=1.0, batches=2, samples=1)
    with pytest.raises(ValueError, match="window_size"):
        Throughput(window_size=1)


def test_throughput_monitor_bad_arguments():
    with pytest.raises(TypeError, match="batch_size_fn"):
        fastlight.callbacks.ThroughputMonitor(batch_size_fn=4)
    with pytest.raises(TypeError, match="unexpected keyword arguments"):
        fastlight.callbacks.ThroughputMonitor(batch_size_fn=len, window=3)


# -- ModelPruning ----------------------------------------------------------------------------------------------------
def _fit_pruned(tmp_path, fw, pruning_kwargs, max_epochs=3, **trainer_kw):
    _quiet()
    torch.manual_seed(0)
    model = make_module(fw)()
    cb = fw.callbacks.ModelPruning("l1_unstructured", **pruning_kwargs)
    trainer = fw.Trainer(callbacks=[cb], **trainer_kwargs(tmp_path, fw, max_epochs=max_epochs, logger=False,
                                                          limit_train_batches=4, **trainer_kw))
    trainer.fit(model, loader())
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, model


@pytest.mark.parametrize("use_global", [True, False], ids=["global", "local"])
@pytest.mark.parametrize("permanent", [True, False], ids=["permanent", "masks_kept"])
def test_model_pruning_weights_and_masks_match_lightning(tmp_path, use_global, permanent):
    """Pruned at each of 3 epoch ends (training with the masks in between, lottery ticket resets included):
    fastlight with torch's optimizer gives Lightning's tensors bit for bit, with its fused optimizer within fp32
    rounding."""
    kwargs = dict(amount=0.5, use_global_unstructured=use_global, make_pruning_permanent=permanent)
    theirs, _ = _fit_pruned(tmp_path, pl, kwargs)
    exact, model = _fit_pruned(tmp_path, fastlight, kwargs, fused=False)
    fused, _ = _fit_pruned(tmp_path, fastlight, kwargs)
    assert exact.keys() == theirs.keys() == fused.keys()
    expected_keys = {"layer1.weight", "layer1.bias", "layer2.weight", "layer2.bias"}
    if not permanent:
        expected_keys = {f"{k}_orig" for k in expected_keys} | {f"{k}_mask" for k in expected_keys}
    assert set(theirs) == expected_keys
    for key in theirs:
        assert torch.equal(exact[key], theirs[key]), key
        torch.testing.assert_close(fused[key], theirs[key], rtol=1e-5, atol=1e-6)
        if key.endswith("_mask"):
            assert torch.equal(fused[key], theirs[key]), key
    weights = [model.layer1.weight, model.layer2.weight, model.layer1.bias, model.layer2.bias]
    if use_global:  # 3 rounds of half of what is left, all 178 parameters ranked together: 89, 45, 23 kept
        assert sum(int((w != 0).sum()) for w in weights) == 23
    else:  # each weight matrix on its own: 128 -> 64 -> 32 -> 16 and 32 -> 16 -> 8 -> 4 kept
        assert [int((w != 0).sum()) for w in weights[:2]] == [16, 4]


def test_model_pruning_with_flat_gradient_buffers(tmp_path):
    """The lottery-ticket reset writes into the parameters in place: flat gradient buffers stay attached."""
    kwargs = dict(amount=0.5, make_pruning_permanent=False)
    theirs, _ = _fit_pruned(tmp_path, pl, kwargs)
    ours, _ = _fit_pruned(tmp_path, fastlight, kwargs, flat_grads=True)
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], rtol=1e-5, atol=1e-6)


def test_model_pruning_checkpoint_holds_permanent_weights(tmp_path):
    _quiet()
    saved = []
    for fw in FRAMEWORKS:
        torch.manual_seed(0)
        trainer = fw.Trainer(callbacks=[fw.callbacks.ModelPruning("l1_unstructured", amount=0.5)],
                             **trainer_kwargs(tmp_path, fw, max_epochs=1, logger=False, limit_train_batches=2,
                                              enable_checkpointing=True, fused=False) if fw is fastlight else
                             trainer_kwargs(tmp_path, fw, max_epochs=1, logger=False, limit_train_batches=2,
                                            enable_checkpointing=True))
        trainer.fit(make_module(fw)(), loader())
        path = trainer.checkpoint_callback.best_model_path
        saved.append(torch.load(path, weights_only=False)["state_dict"])
    assert saved[0].keys() == saved[1].keys() == {"layer1.weight", "layer1.bias", "layer2.weight", "layer2.bias"}
    for key in saved[0]:
        assert torch.equal(saved[0][key], saved[1][key]), key


@pytest.mark.parametrize("kwargs, message", [
    (dict(pruning_fn="l3_unstructured"), "isn't available in PyTorch's built-in functions"),
    (dict(pruning_fn="ln_structured", use_global_unstructured=False), "the `pruning_dim` should be provided"),
    (dict(pruning_fn="ln_structured", use_global_unstructured=False, pruning_dim=0),
     "the `pruning_norm` should be provided"),
    (dict(pruning_fn="random_structured", pruning_dim=0), 'Only the "unstructured" PRUNING_TYPE is supported'),
    (dict(pruning_fn="l1_unstructured", parameter_names=["gamma"]), "`parameter_names` name: gamma isn't in"),
    (dict(pruning_fn="l1_unstructured", amount="half"), "`amount` should be provided and be either an int"),
    (dict(pruning_fn="l1_unstructured", verbose=3), r"`verbose` must be any of \(0, 1, 2\)"),
    (dict(pruning_fn=len), "`pruning_fn` is expected to be a str"),
])
def test_model_pruning_bad_arguments_raise_lightnings_messages(kwargs, message):
    for fw in FRAMEWORKS:
        with pytest.raises(Exception, match=message):
            fw.callbacks.ModelPruning(**kwargs)
    with pytest.raises(ValueError, match=message):
        fastlight.callbacks.ModelPruning(**kwargs)


def test_model_pruning_unknown_parameters_to_prune(tmp_path):
    _quiet()
    stranger = nn.Linear(2, 2)
    for fw in FRAMEWORKS:
        trainer = fw.Trainer(callbacks=[fw.callbacks.ModelPruning("l1_unstructured",
                                                                   parameters_to_prune=[(stranger, "weight")])],
                             **trainer_kwargs(tmp_path, fw, max_steps=1, logger=False))
        with pytest.raises(Exception, match="Some provided `parameters_to_prune` don't exist in the model"):
            trainer.fit(make_module(fw)(), loader())


# -- SpikeDetection --------------------------------------------------------------------------------------------------
def _spiky_module(fw, factors):
    class Spiky(make_module(fw)):
        def training_step(self, batch, batch_idx):
            return super().training_step(batch, batch_idx) * factors.get(batch_idx, 1.0)

    return Spiky


@pytest.mark.parametrize("factors, spike_kwargs", [
    ({5: 50.0}, {}),
    ({3: float("nan")}, {}),
    ({4: 1.5}, dict(rtol=None, atol=0.3, window=3)),
    ({2: float("inf")}, dict(finite_only=False)),
    ({4: 0.01}, dict(mode="max", warmup=2, rtol=0.5)),
    ({}, dict(warmup=2)),
], ids=["rtol", "nan", "atol", "inf_not_finite_only", "max", "no_spike"])
def test_spike_detection_stops_at_lightnings_batch(tmp_path, factors, spike_kwargs):
    _quiet()
    outcomes = []
    for fw in FRAMEWORKS:
        torch.manual_seed(0)
        cb = fw.callbacks.SpikeDetection(**spike_kwargs)
        root = tmp_path / fw.__name__
        trainer = fw.Trainer(callbacks=[cb], **trainer_kwargs(tmp_path, fw, max_epochs=1, logger=False))
        error = None
        try:
            trainer.fit(_spiky_module(fw, factors)(), loader())
        except RuntimeError as e:
            error = (type(e).__name__, str(e))
        written = (root / "skip_batches.json").read_text() if (root / "skip_batches.json").exists() else None
        outcomes.append((error, written, cb.bad_batches, trainer.global_step))
    assert outcomes[1] == outcomes[0]


def test_spike_detection_bad_arguments_and_outputs():
    with pytest.raises(ValueError, match="Invalid mode. Has to be min or max, found mean"):
        fastlight.callbacks.SpikeDetection(mode="mean")
    with pytest.raises(ValueError, match="window"):
        fastlight.callbacks.SpikeDetection(window=0)
    cb = fastlight.callbacks.SpikeDetection()
    with pytest.raises(TypeError, match="outputs have to be of type torch.Tensor or Mapping, got list"):
        cb.on_train_batch_end(None, None, [1.0], None, 0)
