"""EarlyStopping, LearningRateMonitor, Timer, GradientAccumulationScheduler, LambdaCallback, ModelSummary and the
progress bars, checked against Lightning's callbacks on a fake trainer (no training loop needed)."""
import io
import logging
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
import torch

from fastlight.callbacks import (
    Callback,
    EarlyStopping,
    GradientAccumulationScheduler,
    LambdaCallback,
    LearningRateMonitor,
    ModelSummary,
    RichProgressBar,
    Timer,
    TQDMProgressBar,
)

from .fake_trainer import FakeTrainer

pl = pytest.importorskip("pytorch_lightning")
plc = pl.callbacks


# -- EarlyStopping ------------------------------------------------------------------------------------------------------
def run_early_stopping(cb, trainer, values):
    """One check per epoch after validation; returns the epoch at which should_stop was first set (or None)."""
    cb.setup(trainer, None, "fit")
    for epoch, v in enumerate(values):
        trainer.current_epoch = epoch
        trainer.callback_metrics["val_loss"] = torch.tensor(v)
        cb.on_validation_end(trainer, None)
        cb.on_train_epoch_end(trainer, None)
        if trainer.should_stop:
            return epoch
    return None


ES_CASES = [
    (dict(monitor="val_loss", patience=2), [1.0, 0.9, 0.95, 0.96, 0.5]),
    (dict(monitor="val_loss", patience=2, min_delta=0.2), [1.0, 0.9, 0.85, 0.7, 0.6]),
    (dict(monitor="val_loss", patience=1, mode="max"), [0.1, 0.2, 0.15, 0.3]),
    (dict(monitor="val_loss", patience=5), [1.0, float("nan"), 0.5]),
    (dict(monitor="val_loss", patience=5, check_finite=False), [1.0, float("inf"), 0.5, 0.6]),
    (dict(monitor="val_loss", stopping_threshold=0.5), [1.0, 0.7, 0.4, 0.3]),
    (dict(monitor="val_loss", divergence_threshold=2.0, patience=10), [1.0, 1.5, 2.5, 0.3]),
    (dict(monitor="val_loss", patience=3, mode="max", min_delta=0.05), [0.1, 0.12, 0.13, 0.14, 0.3]),
    (dict(monitor="val_loss", patience=2, check_on_train_epoch_end=True), [1.0, 1.1, 1.2, 0.1]),
    (dict(monitor="val_loss", patience=2, check_on_train_epoch_end=False), [1.0, 1.1, 1.2, 0.1]),
]


@pytest.mark.parametrize("kwargs,values", ES_CASES)
def test_early_stopping_matches_lightning(tmp_path, kwargs, values):
    outcomes = []
    for cls in (EarlyStopping, plc.EarlyStopping):
        cb = cls(**kwargs)
        trainer = FakeTrainer(tmp_path)
        stopped = run_early_stopping(cb, trainer, values)
        state = cb.state_dict()
        state["best_score"] = float(state["best_score"])
        outcomes.append((stopped, cb.wait_count, cb.stopped_epoch, state, cb.stopping_reason.name))
        assert cb.state_key == "EarlyStopping{'monitor': 'val_loss', 'mode': '%s'}" % kwargs.get("mode", "min")
    assert outcomes[0] == outcomes[1]


def test_early_stopping_val_check_interval_checks_after_validation(tmp_path):
    cb = EarlyStopping("val_loss")
    cb.setup(FakeTrainer(tmp_path, val_check_interval=0.5), None, "fit")
    assert cb._check_on_train_epoch_end is False
    cb = EarlyStopping("val_loss")
    cb.setup(FakeTrainer(tmp_path), None, "fit")
    assert cb._check_on_train_epoch_end is True


def test_early_stopping_missing_metric_strict_and_not(tmp_path):
    trainer = FakeTrainer(tmp_path)
    cb = EarlyStopping("val_acc")
    cb.setup(trainer, None, "fit")
    trainer.callback_metrics["val_loss"] = torch.tensor(1.0)
    with pytest.raises(RuntimeError, match="`val_acc` which is not available.*`val_loss`"):
        cb.on_train_epoch_end(trainer, None)
    lax = EarlyStopping("val_acc", strict=False, verbose=True)
    lax.setup(trainer, None, "fit")
    with pytest.warns(RuntimeWarning, match="not available"):
        lax.on_train_epoch_end(trainer, None)
    assert not trainer.should_stop


def test_early_stopping_skips_sanity_check_non_fit_and_fast_dev_run(tmp_path):
    for overrides in (dict(sanity_checking=True), dict(fast_dev_run=True), dict(state=SimpleNamespace(fn="validate"))):
        trainer = FakeTrainer(tmp_path, **overrides)
        cb = EarlyStopping("val_loss", patience=1)
        assert run_early_stopping(cb, trainer, [1.0, 2.0, 3.0]) is None


def test_early_stopping_state_round_trip_and_from_lightning(tmp_path):
    pl_cb = plc.EarlyStopping("val_loss", patience=3)
    run_early_stopping(pl_cb, FakeTrainer(tmp_path), [1.0, 0.5, 0.6])
    ours = EarlyStopping("val_loss", patience=3)
    ours.load_state_dict(pl_cb.state_dict())
    assert ours.wait_count == 1 and float(ours.best_score) == 0.5
    trainer = FakeTrainer(tmp_path)
    ours.setup(trainer, None, "fit")
    for epoch, v in enumerate([0.7, 0.8]):
        trainer.current_epoch = 3 + epoch
        trainer.callback_metrics["val_loss"] = torch.tensor(v)
        ours.on_train_epoch_end(trainer, None)
    assert trainer.should_stop and ours.stopped_epoch == 4


def test_early_stopping_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping("x", mode="avg")


# -- LearningRateMonitor -------------------------------------------------------------------------------------------------
class RecordingLogger:
    def __init__(self):
        self.rows = []
        self.version = 0
        self.name = "rec"
        self.save_dir = None

    def log_metrics(self, metrics, step=None):
        self.rows.append((step, {k: round(float(v), 10) for k, v in metrics.items()}))

    def after_save_checkpoint(self, cb):
        pass


def _lr_setup():
    p = [torch.nn.Parameter(torch.zeros(1)) for _ in range(5)]
    sgd = torch.optim.SGD([{"params": [p[0]]}, {"params": [p[1]], "lr": 0.5}], lr=0.1, momentum=0.9)
    adam = torch.optim.Adam([p[2]], lr=1e-3, betas=(0.8, 0.99))
    adam2 = torch.optim.Adam([{"params": [p[3]], "name": "head"}], lr=2e-3, weight_decay=0.1)
    plain = torch.optim.SGD([p[4]], lr=0.3)
    configs = [
        SimpleNamespace(scheduler=torch.optim.lr_scheduler.StepLR(sgd, 1, gamma=0.5), interval="step", name=None, frequency=1),
        SimpleNamespace(scheduler=torch.optim.lr_scheduler.StepLR(adam, 1, gamma=0.1), interval="epoch", name=None, frequency=1),
        SimpleNamespace(scheduler=torch.optim.lr_scheduler.StepLR(adam2, 1), interval="epoch", name="my-name", frequency=1),
    ]
    return [sgd, adam, adam2, plain], configs


@pytest.mark.filterwarnings("ignore:You have set log_momentum")
@pytest.mark.parametrize("interval", [None, "step", "epoch"])
@pytest.mark.parametrize("momentum", [False, True])
def test_lr_monitor_logs_same_keys_and_values_as_lightning(tmp_path, interval, momentum):
    results = []
    for cls in (LearningRateMonitor, plc.LearningRateMonitor):
        optimizers, configs = _lr_setup()
        logger = RecordingLogger()
        trainer = FakeTrainer(tmp_path, loggers=[logger], optimizers=optimizers, lr_scheduler_configs=configs)
        cb = cls(logging_interval=interval, log_momentum=momentum, log_weight_decay=momentum)
        cb.on_train_start(trainer)
        for epoch in range(2):
            trainer.current_epoch = epoch
            cb.on_train_epoch_start(trainer)
            for b in range(2):
                cb.on_train_batch_start(trainer, None, None, b)
                trainer.step()
                optimizers[0].step()
                configs[0].scheduler.step()
            optimizers[1].step()
            configs[1].scheduler.step()
        results.append((logger.rows, {k: [round(x, 10) for x in v] for k, v in cb.lrs.items()}))
    assert results[0] == results[1]
    keys = set().union(*(r[1] for r in results[0][0]))
    assert {"lr-SGD/pg1", "lr-SGD/pg2", "my-name/head"} <= keys or interval == "epoch"


def test_lr_monitor_needs_a_logger(tmp_path):
    with pytest.raises(ValueError, match="no logger"):
        LearningRateMonitor().on_train_start(FakeTrainer(tmp_path))
    with pytest.raises(ValueError, match="logging_interval"):
        LearningRateMonitor(logging_interval="batch")


def test_lr_monitor_skips_steps_that_do_not_log(tmp_path):
    logger = RecordingLogger()
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    trainer = FakeTrainer(tmp_path, loggers=[logger], optimizers=[opt], log_every_n_steps=3)
    cb = LearningRateMonitor()
    cb.on_train_start(trainer)
    for b in range(6):
        cb.on_train_batch_start(trainer, None, None, b)
        trainer.step()
    assert [step for step, _ in logger.rows] == [2, 5]
    assert logger.rows[0][1] == {"lr-SGD": 0.1}


# -- Timer ---------------------------------------------------------------------------------------------------------------
def test_timer_parses_durations_and_stops(tmp_path):
    assert Timer("00:01:00:00")._duration == 3600
    assert Timer({"minutes": 2})._duration == 120
    assert Timer(timedelta(seconds=5))._duration == 5
    with pytest.raises(ValueError, match="DD:HH:MM:SS"):
        Timer("1 hour")
    with pytest.raises(ValueError, match="interval"):
        Timer(interval="batch")
    trainer = FakeTrainer(tmp_path)
    timer = Timer(duration=timedelta(seconds=0.05), interval="step")
    timer.on_fit_start(trainer)
    timer.on_train_start(trainer, None)
    timer.on_train_batch_end(trainer)
    assert not trainer.should_stop
    time.sleep(0.06)
    timer.on_train_epoch_end(trainer)  # interval is step: epoch end does not check
    assert not trainer.should_stop
    timer.on_train_batch_end(trainer)
    assert trainer.should_stop
    assert 0 < timer.time_remaining() + timer.time_elapsed() - 0.05 < 1e-3 or timer.time_remaining() <= 0


def test_timer_state_matches_lightning_layout_and_resumes(tmp_path):
    ours, theirs = Timer(), plc.Timer()
    assert set(ours.state_dict()["time_elapsed"]) == set(theirs.state_dict()["time_elapsed"])
    ours.load_state_dict({"time_elapsed": {"train": 10.0}})
    assert ours.time_elapsed("train") == 10.0
    ours.on_train_start(FakeTrainer(tmp_path), None)
    assert ours.time_elapsed() >= 10.0
    assert ours.start_time("validate") is None and ours.time_elapsed("validate") == 0


# -- GradientAccumulationScheduler ---------------------------------------------------------------------------------------
def test_gradient_accumulation_scheduler_matches_lightning(tmp_path):
    schedule = {2: 4, 5: 2}
    ours, theirs = GradientAccumulationScheduler(dict(schedule)), plc.GradientAccumulationScheduler(dict(schedule))
    assert [ours.get_accumulate_grad_batches(e) for e in range(8)] == [theirs.get_accumulate_grad_batches(e) for e in range(8)]
    trainer = FakeTrainer(tmp_path)
    module = torch.nn.Linear(1, 1)
    module.automatic_optimization = True
    ours.on_train_start(trainer, module)
    trainer.current_epoch = 3
    ours.on_train_epoch_start(trainer)
    assert trainer.accumulate_grad_batches == 4


def test_gradient_accumulation_scheduler_errors(tmp_path):
    with pytest.raises(TypeError):
        GradientAccumulationScheduler({})
    with pytest.raises(ValueError, match="Epoch"):
        GradientAccumulationScheduler({-1: 2})
    with pytest.raises(ValueError, match="Accumulation factor"):
        GradientAccumulationScheduler({0: 0})
    module = torch.nn.Linear(1, 1)
    module.automatic_optimization = False
    with pytest.raises(RuntimeError, match="manual optimization"):
        GradientAccumulationScheduler({0: 2}).on_train_start(FakeTrainer(tmp_path), module)
    module.automatic_optimization = True
    with pytest.raises(ValueError, match="accumulate_grad_batches"):
        GradientAccumulationScheduler({0: 2}).on_train_start(FakeTrainer(tmp_path, accumulate_grad_batches=2), module)


# -- LambdaCallback ------------------------------------------------------------------------------------------------------
def test_lambda_callback_calls_given_hooks_and_is_seen_as_overriding():
    calls = []
    cb = LambdaCallback(on_train_epoch_end=lambda t, m: calls.append(("epoch_end", t, m)), setup=lambda t, m, stage: calls.append(stage))
    cb.on_train_epoch_end("T", "M")
    cb.setup("T", "M", "fit")
    cb.on_train_start("T", "M")  # not given: the base no-op
    assert calls == [("epoch_end", "T", "M"), "fit"]
    # class-level override detection (how a loop resolves hooks once per run)
    assert type(cb).on_train_epoch_end is not Callback.on_train_epoch_end
    assert type(cb).on_train_start is Callback.on_train_start
    assert isinstance(cb, LambdaCallback) and cb.state_key == "LambdaCallback"
    assert type(LambdaCallback()).on_train_epoch_end is Callback.on_train_epoch_end  # a second instance is not affected
    with pytest.raises(TypeError, match="on_train_epoch_ned"):
        LambdaCallback(on_train_epoch_ned=print)
    with pytest.raises(TypeError, match="callable"):
        LambdaCallback(on_fit_start=3)


# -- ModelSummary --------------------------------------------------------------------------------------------------------
class _Net(pl.LightningModule):
    def __init__(self, example=True):
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
        self.head = torch.nn.Linear(4, 2)
        self.bn = torch.nn.BatchNorm1d(2)
        self.bn.eval()
        self.scale = torch.nn.Parameter(torch.ones(1))  # a parameter outside any layer
        self.frozen = torch.nn.Linear(2, 2)
        self.frozen.requires_grad_(False)
        if example:
            self.example_input_array = torch.zeros(3, 8)

    def forward(self, x):
        return self.frozen(self.bn(self.head(self.encoder(x))) * self.scale)


@pytest.mark.parametrize("max_depth", [1, 2, -1])
@pytest.mark.parametrize("example", [False, True])
def test_model_summary_table_matches_lightning(max_depth, example):
    from pytorch_lightning.utilities.model_summary import ModelSummary as PLSummary

    from fastlight.callbacks.model_summary import format_summary_table, summary_columns

    net = _Net(example)
    theirs = dict(PLSummary(net, max_depth=max_depth)._get_summary_data())
    theirs.pop("FLOPs")
    ours = dict(summary_columns(net, max_depth))
    assert ours == theirs
    table = format_summary_table(net, summary_columns(net, max_depth))
    pl_lines = str(PLSummary(net, max_depth=max_depth)).splitlines()
    our_lines = table.splitlines()
    assert our_lines[-6:] == pl_lines[-7:-1]  # totals: trainable, non-trainable, total, size MB, train/eval modes
    assert ("other params" in table) == (max_depth == 1)  # deeper tables count nested params twice, as Lightning's do
    assert "Non-trainable params" in table


def test_model_summary_callback_logs_on_rank_zero(tmp_path, caplog):
    net = _Net(False)
    cb = ModelSummary(max_depth=1)
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        cb.on_fit_start(FakeTrainer(tmp_path), net)
    assert "encoder" in caplog.text and "Total params" in caplog.text
    quiet = ModelSummary(max_depth=0)
    quiet.on_fit_start(FakeTrainer(tmp_path), net)
    assert quiet.last_summary == ""
    with pytest.raises(ValueError, match="max_depth"):
        ModelSummary(max_depth=-2)


def test_human_readable_counts_match_lightning():
    from pytorch_lightning.utilities.model_summary.model_summary import get_human_readable_count as theirs

    from fastlight.callbacks.model_summary import get_human_readable_count as ours

    for n in (0, 7, 123, 999, 1000, 1234, 99_999, 100_000, 2_000_000, 3e9, 4e14, 5e15):
        assert ours(n) == theirs(n)


# -- progress bars -------------------------------------------------------------------------------------------------------
def _drive_bar(bar, trainer, epochs=2, batches=50, val_batches=3):
    module = None
    bar.setup(trainer, module, "fit")
    trainer.sanity_checking = True
    bar.on_sanity_check_start(trainer, module)
    bar.on_validation_start(trainer, module)
    for b in range(2):
        bar.on_validation_batch_start(trainer, module, None, b)
        bar.on_validation_batch_end(trainer, module, None, None, b)
    bar.on_validation_end(trainer, module)
    bar.on_sanity_check_end(trainer, module)
    trainer.sanity_checking = False
    bar.on_train_start(trainer, module)
    for epoch in range(epochs):
        trainer.current_epoch = epoch
        bar.on_train_epoch_start(trainer, module)
        for b in range(batches):
            trainer.step()
            trainer._progress_bar_metrics["loss"] = torch.tensor(1.0 / (b + 1))
            bar.on_train_batch_end(trainer, module, None, None, b)
        bar.on_validation_start(trainer, module)
        for b in range(val_batches):
            bar.on_validation_batch_start(trainer, module, None, b)
            bar.on_validation_batch_end(trainer, module, None, None, b)
        bar.on_validation_end(trainer, module)
        bar.on_train_epoch_end(trainer, module)
    bar.on_train_end(trainer, module)


def test_tqdm_bar_reads_metrics_only_when_redrawing_like_lightning(tmp_path, capsys):
    reads = []
    for bar in (TQDMProgressBar(refresh_rate=10, min_refresh_interval=0), plc.TQDMProgressBar(refresh_rate=10)):
        trainer = FakeTrainer(tmp_path, num_training_batches=50, num_val_batches=3)
        _drive_bar(bar, trainer)
        reads.append(trainer.progress_bar_reads)
    out = capsys.readouterr().out
    # after the sanity check; per epoch: 5 redraws (every 10 batches, the 50th is the last), validation end, epoch end
    assert reads == [1 + 2 * (5 + 1 + 1)] * 2
    assert "Epoch 1" in out and "loss=0.020]" in out and "50/50" in out


def test_tqdm_bar_time_throttle_and_hidden_bar(tmp_path, capsys):
    trainer = FakeTrainer(tmp_path, num_training_batches=50, num_val_batches=3)
    _drive_bar(TQDMProgressBar(refresh_rate=1, min_refresh_interval=3600), trainer)
    # only drawn lines read the metrics: the sanity check's end; per epoch its first update (a fresh line), its last
    # batch, validation end and epoch end
    assert trainer.progress_bar_reads == 1 + 2 * (1 + 1 + 1 + 1)
    assert "50/50" in capsys.readouterr().out  # the last batch always draws
    capsys.readouterr()
    reads = []
    for bar in (TQDMProgressBar(refresh_rate=0), plc.TQDMProgressBar(refresh_rate=0)):
        trainer = FakeTrainer(tmp_path, num_training_batches=50, num_val_batches=3)
        _drive_bar(bar, trainer)
        reads.append(trainer.progress_bar_reads)
    assert reads == [1 + 2] * 2  # a hidden bar still reads them after each validation, as Lightning's does
    assert "Epoch" not in capsys.readouterr().out


def test_tqdm_bar_v_num_and_metrics_like_lightning(tmp_path):
    from fastlight.loggers import CSVLogger

    trainer = FakeTrainer(tmp_path, loggers=[CSVLogger(tmp_path, version=7)])
    trainer._progress_bar_metrics.update(a=torch.tensor(0.5), b=2.0)
    ours = TQDMProgressBar().get_metrics(trainer, None)
    theirs = plc.TQDMProgressBar().get_metrics(trainer, None)
    assert ours == {"v_num": 7, "a": 0.5, "b": 2.0}
    assert ours.keys() == theirs.keys()
    with pytest.raises(ValueError, match="refresh_rate"):
        TQDMProgressBar(refresh_rate=-1)


def test_rich_bar_runs_a_fit_and_test(tmp_path):
    import rich

    console = rich.get_console()
    saved = dict(console.__dict__)  # the bar reconfigures rich's global console (as Lightning's does): put it back
    try:
        out = io.StringIO()
        trainer = FakeTrainer(tmp_path, num_training_batches=20, num_val_batches=3, num_test_batches=[4])
        bar = RichProgressBar(refresh_rate=5, console_kwargs={"file": out, "force_terminal": False, "width": 120})
        _drive_bar(bar, trainer, batches=20)
        bar.teardown(trainer, None, "fit")  # stopping the live display draws it a last time
        assert "Epoch 1" in out.getvalue() and "loss: 0.050" in out.getvalue()
        # Lightning's reads every batch (1 + 2 * (20 + 1 + 1)); at 5 draws a second, a fast epoch reads on its first
        # and last batch only, besides the sanity check's, validation's and the epoch's ends
        assert trainer.progress_bar_reads == 1 + 2 * (2 + 1 + 1)
        trainer.state.fn = "test"
        bar.on_test_start(trainer, None)
        for b in range(4):
            bar.on_test_batch_start(trainer, None, None, b)
            bar.on_test_batch_end(trainer, None, None, None, b)
        bar.on_test_end(trainer, None)
        bar.teardown(trainer, None, "test")
        assert "Testing" in out.getvalue()
    finally:
        console.__dict__ = saved
