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
def test_device_stats_monitor_without_psutil(tmp_path, fw):
    _quiet()
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


def test_throughput_monitor_test_and_predict_logs(tmp_path, fixed_clock):
    _quiet()
    logged = []
    for fw in FRAMEWORKS:
        records = []
        cb = fw.callbacks.ThroughputMonitor(batch_size_fn=lambda b: b[0].shape[0], window_size=2)

        class WithTest(make_module(fw)):
            def test_step(self, batch, batch_idx):
                pass

        trainer = fw.Trainer(logger=recording_logger(fw, records), callbacks=[cb],
                             **trainer_kwargs(tmp_path, fw, log_every_n_steps=1, limit_test_batches=4))
        trainer.test(WithTest(), loader())
        trainer.test(WithTest(), loader())  # counters go on across runs, as Lightning's loop totals do
        logged.append(records)
    assert logged[1] == logged[0]
    assert any("test/device/samples_per_sec" in m for _, m in logged[1])


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
