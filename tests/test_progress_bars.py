"""TQDMProgressBar and RichProgressBar side by side with Lightning's: the same user code and the same bar settings
under pytorch_lightning.Trainer and fastlight.Trainer must move the bars by the same amounts, give them the same
totals and descriptions, read the metrics at the same moments and show the same metric texts.

Lightning's bar classes are looked up at their module paths (`tqdm_progress.Tqdm`, `rich_progress.CustomProgress`, ...)
each time a bar is made, so a recording subclass put there is what each framework draws with.
"""
import importlib
import io
import os
import pickle
import subprocess
import sys
import warnings
from unittest import mock

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import fastlight

pl = pytest.importorskip("pytorch_lightning")
rich = pytest.importorskip("rich")

FRAMEWORKS = {"lightning": pl, "fastlight": fastlight}


def bar_module(fw, name):
    return importlib.import_module(f"{fw.__name__}.callbacks.progress.{name}")


@pytest.fixture(autouse=True)
def _quiet_and_keep_rich_console():
    """Both RichProgressBars reconfigure rich's global console (Lightning's behaviour); put it back afterwards."""
    console = rich.get_console()
    saved = dict(console.__dict__)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    console.__dict__ = saved


def make_model(fw, train=8, val=8, test=2, predict=2, log=True):
    """A tiny module logging prog_bar metrics in every stage (the values depend on the step: checkable texts)."""

    def loader(n):
        return DataLoader(TensorDataset(torch.arange(n * 4, dtype=torch.float32).reshape(n, 4)), batch_size=1)

    class Model(fw.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.layer = nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            loss = self.layer(batch[0]).pow(2).mean()
            if log:
                self.log("step_metric", 0.125 * (self.global_step + 1), prog_bar=True)
                self.log("a", float(self.global_step), prog_bar=True, on_step=False, on_epoch=True, reduce_fx="max")
            return loss

        def validation_step(self, batch, batch_idx):
            if log:
                self.log("b", float(self.global_step), prog_bar=True, on_step=False, on_epoch=True, reduce_fx="max")

        def test_step(self, batch, batch_idx):
            if log:
                self.log("c", 1.0, prog_bar=True)

        def predict_step(self, batch, batch_idx, dataloader_idx=0):
            return self.layer(batch[0])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

        def train_dataloader(self):
            return loader(train)

        def val_dataloader(self):
            return loader(val)

        def test_dataloader(self):
            return loader(test)

        def predict_dataloader(self):
            return loader(predict)

    return Model()


def make_trainer(fw, tmp_path, bar, **kw):
    kw.setdefault("max_epochs", 1)
    kw.setdefault("num_sanity_val_steps", 2)
    return fw.Trainer(default_root_dir=str(tmp_path), callbacks=[bar], logger=False, enable_checkpointing=False,
                      enable_model_summary=False, accelerator="cpu", devices=1, **kw)


# -- TQDM ----------------------------------------------------------------------------------------------------------------
def recording_tqdm(base, bars):
    """A subclass of the framework's Tqdm that keeps every value given to `n` and `total` and every description."""

    class Recording(base):
        def __init__(self, *args, **kwargs):
            self.n_values, self.total_values, self.descriptions = [], [], []
            super().__init__(*args, **kwargs)
            self.n_values, self.total_values, self.descriptions = [], [], []  # what tqdm's own __init__ set
            bars.append(self)

        @property
        def n(self):
            return self._n

        @n.setter
        def n(self, value):
            self._n = value
            if not self.n_values or self.n_values[-1] != value:
                self.n_values.append(value)

        @property
        def total(self):
            return self._total

        @total.setter
        def total(self, value):
            self._total = value
            self.total_values.append(value)

        def set_description(self, *args, **kwargs):
            super().set_description(*args, **kwargs)
            self.descriptions.append(self.desc)

    return Recording


def tqdm_run(fw, tmp_path, stages=("fit",), bar_kwargs=None, **trainer_kw):
    """Runs the stages with a recording Tqdm; returns one record per bar made, in order of creation."""
    bars = []
    module = bar_module(fw, "tqdm_progress")
    bar = fw.callbacks.TQDMProgressBar(**(bar_kwargs or {}))
    trainer = make_trainer(fw, tmp_path, bar, **trainer_kw)
    model = make_model(fw)
    with mock.patch.object(module, "Tqdm", recording_tqdm(module.Tqdm, bars)):
        for stage in stages:
            getattr(trainer, stage)(model)
    return [dict(desc=b.descriptions, n=b.n_values, total=b.total_values, leave=b.leave, disable=b.disable,
                 postfix=b.postfix) for b in bars]


@pytest.mark.parametrize(
    ("limits", "refresh_rate"),
    [((4, 3), 1), ((5, 2), 3), ((1, 1), 3), ((6, 0), 6), ((7, 7), 3)],
)
def test_tqdm_bars_move_by_the_same_amounts_as_lightnings(tmp_path, limits, refresh_rate):
    train, val = limits
    kw = dict(limit_train_batches=train, limit_val_batches=val, max_epochs=2)
    if train == 7:
        kw["val_check_interval"] = 3
    ours = tqdm_run(fastlight, tmp_path, bar_kwargs={"refresh_rate": refresh_rate}, **kw)
    theirs = tqdm_run(pl, tmp_path, bar_kwargs={"refresh_rate": refresh_rate}, **kw)
    assert ours == theirs
    assert any(r["n"] and r["n"][-1] == train for r in ours)  # the training bar ends on the last batch


def test_tqdm_eval_bars_totals_descriptions_and_leave_like_lightnings(tmp_path):
    stages = ("fit", "validate", "test", "predict")
    ours = tqdm_run(fastlight, tmp_path, stages, limit_train_batches=2)
    theirs = tqdm_run(pl, tmp_path, stages, limit_train_batches=2)
    assert ours == theirs
    descriptions = [d for r in ours for d in r["desc"]]
    for text in ("Sanity Checking DataLoader 0: ", "Epoch 0: ", "Validation DataLoader 0: ",
                 "Testing DataLoader 0: ", "Predicting DataLoader 0: "):
        assert text in descriptions


def test_tqdm_leave_makes_a_bar_per_epoch_like_lightning(tmp_path):
    for leave in (True, False):
        ours = tqdm_run(fastlight, tmp_path, bar_kwargs={"leave": leave}, max_epochs=3, limit_train_batches=1,
                        limit_val_batches=1, num_sanity_val_steps=0)
        theirs = tqdm_run(pl, tmp_path, bar_kwargs={"leave": leave}, max_epochs=3, limit_train_batches=1,
                          limit_val_batches=1, num_sanity_val_steps=0)
        assert ours == theirs
        assert sum(r["desc"][:1] == ["Epoch 0: "] or r["desc"][:1] == ["Epoch 1: "] for r in ours) >= (2 if leave else 1)


def metric_reads(fw, tmp_path, bar_name, refresh_rate=None, draw_every_update=True, **trainer_kw):
    """What each framework's bar shows: (stage, fn, epoch, global_step, metrics) at each get_metrics call.
    `draw_every_update`: fastlight's TQDM bar draws (and reads) on every update, as Lightning's does."""
    calls = []
    base = getattr(fw.callbacks, bar_name)

    class Recording(base):
        def get_metrics(self, trainer, pl_module):
            items = super().get_metrics(trainer, pl_module)
            stage, fn = trainer.state.stage, trainer.state.fn
            calls.append((getattr(stage, "value", stage), getattr(fn, "value", fn), trainer.current_epoch,
                          trainer.global_step, {k: round(float(v), 6) for k, v in items.items()}))
            return items

    kwargs = {} if refresh_rate is None else {"refresh_rate": refresh_rate}
    if bar_name == "RichProgressBar":
        kwargs["console_kwargs"] = {"file": io.StringIO(), "width": 120}
    elif fw is fastlight and draw_every_update:
        kwargs["min_refresh_interval"] = 0
    bar = Recording(**kwargs)
    trainer = make_trainer(fw, tmp_path, bar, log_every_n_steps=1, **trainer_kw)
    model = make_model(fw)
    trainer.fit(model)
    trainer.validate(model, verbose=False)
    trainer.test(model, verbose=False)
    return calls, bar


@pytest.mark.parametrize("bar_name", ["TQDMProgressBar", "RichProgressBar"])
def test_bars_read_the_same_metrics_at_the_same_moments_as_lightnings(tmp_path, bar_name):
    kw = dict(limit_train_batches=2, limit_val_batches=2, limit_test_batches=2, max_epochs=2)
    ours, _ = metric_reads(fastlight, tmp_path, bar_name, **kw)
    theirs, _ = metric_reads(pl, tmp_path, bar_name, **kw)
    assert ours == theirs
    # the sanity check's values, the per-step value, then the epoch values once the epoch ends
    assert ours[0][:2] == ("sanity_check", "fit")
    assert ("train", "fit", 0, 2, {"step_metric": 0.25, "a": 1.0, "b": 2.0}) in ours
    assert all(fn == "fit" for _, fn, *_ in ours)  # validate/test do not read them


def test_tqdm_reads_metrics_only_every_refresh_rate_batches_like_lightning(tmp_path):
    kw = dict(limit_train_batches=7, limit_val_batches=2, max_epochs=1)
    ours, _ = metric_reads(fastlight, tmp_path, "TQDMProgressBar", refresh_rate=4, **kw)
    theirs, _ = metric_reads(pl, tmp_path, "TQDMProgressBar", refresh_rate=4, **kw)
    assert ours == theirs
    train_steps = [step for stage, _, _, step, _ in ours if stage == "train"]
    assert train_steps == [4, 7, 7]  # batch 4, the last batch (7), the epoch end


def test_tqdm_default_reads_metrics_only_for_drawn_lines(tmp_path):
    """fastlight's default draws a line at most every 0.1 s: the metrics are read for those lines only, each read
    at a moment Lightning's bar reads too (fewer host syncs, the same texts)."""
    kw = dict(limit_train_batches=8, limit_val_batches=2, max_epochs=2)
    every, _ = metric_reads(fastlight, tmp_path, "TQDMProgressBar", **kw)
    drawn, _ = metric_reads(fastlight, tmp_path, "TQDMProgressBar", draw_every_update=False, **kw)
    assert set(map(repr, drawn)) <= set(map(repr, every)) and len(drawn) < len(every)
    train = [(epoch, step) for stage, _, epoch, step, _ in drawn if stage == "train"]
    for epoch in (0, 1):  # each epoch's first update (a fresh line), last batch and end are drawn
        assert [s for e, s in train if e == epoch][:1] == [8 * epoch + 1] and train.count((epoch, 8 * epoch + 8)) == 2


def test_rich_reads_metrics_only_as_often_as_it_draws(tmp_path):
    """Lightning's rich bar reads the metrics every batch; fastlight's at most `refresh_rate` times a second (each
    epoch's first and last batch always), each read at a moment Lightning's reads too."""
    kw = dict(limit_train_batches=8, limit_val_batches=2, max_epochs=2)
    ours, _ = metric_reads(fastlight, tmp_path, "RichProgressBar", refresh_rate=1, **kw)
    theirs, _ = metric_reads(pl, tmp_path, "RichProgressBar", refresh_rate=1, **kw)
    assert set(map(repr, ours)) <= set(map(repr, theirs)) and len(ours) < len(theirs)
    train = [step for stage, _, _, step, _ in ours if stage == "train"]
    assert train == [1, 8, 8, 9, 16, 16]  # per epoch: first batch, last batch, epoch end


def test_tqdm_postfix_text_like_lightnings(tmp_path, capsys):
    texts = []
    for fw in (fastlight, pl):
        bar = fw.callbacks.TQDMProgressBar()
        make_trainer(fw, tmp_path, bar, limit_train_batches=3, limit_val_batches=1).fit(make_model(fw))
        texts.append(str(bar.train_progress_bar.postfix))
    assert texts[0] == texts[1]
    assert texts[0].endswith("step_metric=0.375, b=3.000, a=2.000"), texts[0]  # b came with validation, a at epoch end
    assert "Epoch 0: 100%" in capsys.readouterr().out


def test_tqdm_format_num_like_lightnings():
    ours, theirs = bar_module(fastlight, "tqdm_progress").Tqdm, bar_module(pl, "tqdm_progress").Tqdm
    for value in (0, 1, 7, 1.0, 0.1, 1e-3, 1e-5, 123456.0, "1.0", "10000", "abc", "nan", float("inf"), -2.5):
        assert ours.format_num(value) == theirs.format_num(value), value


@pytest.mark.parametrize(
    ("refresh_rate", "env", "expected"),
    [(1, {}, 1), (0, {"TQDM_MINITERS": "1"}, 1), (2, {"TQDM_MINITERS": "1"}, 2), (1, {"TQDM_MINITERS": "3"}, 3),
     (1, {"COLAB_GPU": "1"}, 20), (19, {"COLAB_GPU": "1"}, 19)],
)
def test_tqdm_refresh_rate_from_the_environment_like_lightning(refresh_rate, env, expected):
    with mock.patch.dict(os.environ, env):
        for fw in (fastlight, pl):
            assert fw.callbacks.TQDMProgressBar(refresh_rate=refresh_rate).refresh_rate == expected


def test_bad_refresh_rate_is_refused():
    with pytest.raises(ValueError, match="refresh_rate"):
        fastlight.callbacks.TQDMProgressBar(refresh_rate=-1)
    with pytest.raises(ValueError, match="refresh_rate"):
        fastlight.callbacks.RichProgressBar(refresh_rate=-1)


class _Printing:
    def training_step(self, batch, batch_idx):
        self.print("train", end="")
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        self.print("val", file=sys.stderr)

    def test_step(self, batch, batch_idx):
        self.print("test")


def test_module_print_goes_through_the_tqdm_bar_like_lightning(tmp_path):
    written = {}
    for name, fw in FRAMEWORKS.items():
        model = type("PrintingModel", (_Printing, type(make_model(fw))), {})()
        bar = fw.callbacks.TQDMProgressBar()
        trainer = make_trainer(fw, tmp_path, bar, limit_train_batches=1, limit_val_batches=1, limit_test_batches=1,
                               num_sanity_val_steps=0)
        with mock.patch("tqdm.tqdm.write") as write, mock.patch("builtins.print") as plain:
            trainer.fit(model)
            trainer.test(model, verbose=False)
            bar.disable()
            trainer.test(model, verbose=False)
        written[name] = (write.call_args_list, [c for c in plain.call_args_list if c.args[:1] == ("test",)])
    assert written["fastlight"] == written["lightning"]
    assert [c.args for c in written["fastlight"][0]] == [("train",), ("val",), ("test",)]
    assert len(written["fastlight"][1]) == 1  # the disabled bar: plain print


PicklableModel = type(make_model(fastlight))  # the trainer (which a bar keeps) pickles with its model
PicklableModel.__qualname__ = "PicklableModel"


def test_tqdm_bar_pickles_between_stages(tmp_path):
    bar = fastlight.callbacks.TQDMProgressBar()
    trainer = make_trainer(fastlight, tmp_path, bar, limit_train_batches=1, limit_val_batches=1, limit_test_batches=1,
                           limit_predict_batches=1)
    model = PicklableModel()
    for stage in ("fit", "validate", "test", "predict"):
        getattr(trainer, stage)(model)
        copy = pickle.loads(pickle.dumps(bar))
        assert copy._train_progress_bar is None and copy.refresh_rate == 1


def test_tqdm_min_refresh_interval_spaces_the_drawing_not_the_state(tmp_path):
    """fastlight only: a bar's line is drawn at most every `min_refresh_interval` s (and on the last batch); where the
    bar stands and what it shows follow `refresh_rate` whatever the interval."""
    module = bar_module(fastlight, "tqdm_progress")
    drawn, states = {}, {}
    for interval in (0, 3600):
        lines, bars = [], []

        class Counting(recording_tqdm(module.Tqdm, bars)):
            def refresh(self, *args, **kwargs):
                if not self.disable and self.desc.startswith("Epoch 0"):
                    lines.append((self.n, str(self.postfix or "")))
                return super().refresh(*args, **kwargs)

        bar = fastlight.callbacks.TQDMProgressBar(min_refresh_interval=interval)
        with mock.patch.object(module, "Tqdm", Counting):
            make_trainer(fastlight, tmp_path, bar, limit_train_batches=8, limit_val_batches=2,
                         num_sanity_val_steps=0).fit(make_model(fastlight))
        drawn[interval] = sorted({n for n, _ in lines})
        states[interval] = [(b.n_values, b.total_values, b.descriptions, str(b.postfix)) for b in bars]
        assert lines[-1][0] == 8 and "step_metric=1.000" in lines[-1][1]  # the last batch drew, with its metrics
    assert drawn[0] == list(range(9))
    assert drawn[3600] == [0, 1, 8]  # the fresh bar, its first update, its last batch
    assert states[0] == states[3600]
    with pytest.raises(ValueError, match="min_refresh_interval"):
        fastlight.callbacks.TQDMProgressBar(min_refresh_interval=-1)


# -- rich ----------------------------------------------------------------------------------------------------------------
def rich_run(fw, tmp_path, stages, bar_kwargs=None, **trainer_kw):
    """Per stage: the number of Progress.update calls and each task's (description, completed, total, visible)."""
    bar = fw.callbacks.RichProgressBar(console_kwargs={"file": io.StringIO(), "width": 120}, **(bar_kwargs or {}))
    trainer = make_trainer(fw, tmp_path, bar, **trainer_kw)
    model = make_model(fw)
    out = []
    progress_cls = rich.progress.Progress
    for stage in stages:
        with mock.patch.object(progress_cls, "update", autospec=True, side_effect=progress_cls.update) as update:
            getattr(trainer, stage)(model)
        tasks = [(t.description, t.completed, t.total, t.visible) for t in bar.progress.tasks] if bar.progress else None
        out.append((stage, update.call_count, tasks))
    return out, bar


@pytest.mark.parametrize(
    ("limits", "sanity"), [((6, 6), 0), ((2, 3), 2), ((1, 0), 0), ((5, 2), 3), ((0, 0), 0)]
)
def test_rich_tasks_and_updates_like_lightnings(tmp_path, limits, sanity):
    train, val = limits
    kw = dict(limit_train_batches=train, limit_val_batches=val, num_sanity_val_steps=sanity)
    stages = ("fit", "validate", "test", "predict") if val else ("fit",)
    ours, _ = rich_run(fastlight, tmp_path, stages, **kw)
    theirs, _ = rich_run(pl, tmp_path, stages, **kw)
    assert ours == theirs
    if train:
        fit_tasks = ours[0][2]
        assert ("Epoch 0/0 ", train, train, True) in fit_tasks


def test_rich_iterable_dataset_and_val_check_interval_like_lightnings(tmp_path):
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter([(torch.ones(4),)] * 5)

    results = []
    for fw in (fastlight, pl):
        model = make_model(fw)
        model.train_dataloader = lambda: DataLoader(Stream(), batch_size=None)
        bar = fw.callbacks.RichProgressBar(console_kwargs={"file": io.StringIO(), "width": 120})
        trainer = make_trainer(fw, tmp_path, bar, val_check_interval=2, limit_val_batches=2, num_sanity_val_steps=0)
        trainer.fit(model)
        text = bar.progress.console.file.getvalue()
        results.append([(t.description, t.completed, t.total, t.visible) for t in bar.progress.tasks])
        assert "5/--" in text  # an infinite total is drawn as "--"
    assert results[0] == results[1]


def rendered_metrics(bar):
    return str(bar.progress.columns[-1]._renderable_cache[bar.train_progress_bar_id][1])


@pytest.mark.parametrize("metrics_format", [".3f", ".2e"])
def test_rich_metrics_text_like_lightnings(tmp_path, metrics_format):
    texts = []
    for fw in (fastlight, pl):
        theme = bar_module(fw, "rich_progress").RichProgressBarTheme(metrics_format=metrics_format,
                                                                      metrics_text_delimiter=" | ")
        bar = fw.callbacks.RichProgressBar(theme=theme, console_kwargs={"file": io.StringIO(), "width": 160})
        make_trainer(fw, tmp_path, bar, limit_train_batches=2, limit_val_batches=1).fit(make_model(fw))
        texts.append(rendered_metrics(bar))
    assert texts[0] == texts[1]
    assert texts[0] == " | ".join(f"{k}: {v:{metrics_format}}" for k, v in (("step_metric", 0.25), ("b", 2.0), ("a", 1.0)))


def test_rich_leave_keeps_each_epoch_like_lightning(tmp_path):
    for leave, resets in ((True, 0), (False, 2)):
        counts = []
        for fw in (fastlight, pl):
            with mock.patch.object(rich.progress.Progress, "reset", autospec=True) as reset:
                bar = fw.callbacks.RichProgressBar(leave=leave, console_kwargs={"file": io.StringIO(), "width": 120})
                make_trainer(fw, tmp_path, bar, max_epochs=3, limit_train_batches=1, limit_val_batches=0).fit(
                    make_model(fw))
            counts.append(reset.call_count)
        assert counts == [resets, resets]


def test_rich_theme_styles_reach_the_columns(tmp_path):
    module = bar_module(fastlight, "rich_progress")
    theme = module.RichProgressBarTheme(progress_bar="red", batch_progress="green", time="blue",
                                        processing_speed="yellow", description="bold")
    bar = fastlight.callbacks.RichProgressBar(theme=theme, console_kwargs={"file": io.StringIO(), "width": 120})
    columns = bar.configure_columns(None)
    assert isinstance(columns[1], module.CustomBarColumn) and columns[1].complete_style == "red"
    assert [c.style for c in columns[2:]] == ["green", "blue", "yellow"]
    make_trainer(fastlight, tmp_path, bar, limit_train_batches=1, limit_val_batches=0).fit(make_model(fastlight))
    assert bar.progress.tasks[0].description.startswith("[bold]Epoch 0")


def test_rich_disabled_bar_builds_no_display(tmp_path):
    module = bar_module(fastlight, "rich_progress")
    bar = fastlight.callbacks.RichProgressBar(refresh_rate=0)
    with mock.patch.object(module, "CustomProgress") as progress:
        trainer = make_trainer(fastlight, tmp_path, bar, limit_train_batches=2, limit_val_batches=1)
        model = make_model(fastlight)
        trainer.fit(model)
        trainer.test(model, verbose=False)
    progress.assert_not_called()
    assert bar.progress is None and bar.train_progress_bar_id is None


class Boom(Exception):
    pass


class FailingModel(PicklableModel):
    def on_train_epoch_start(self):
        raise Boom


def test_rich_bar_stops_once_on_an_exception_and_pickles(tmp_path):
    model = FailingModel()
    bar = fastlight.callbacks.RichProgressBar(console_kwargs={"file": io.StringIO(), "width": 120})
    with mock.patch.object(rich.progress.Progress, "stop", autospec=True, side_effect=rich.progress.Progress.stop) as stop:
        with pytest.raises(Boom):
            make_trainer(fastlight, tmp_path, bar, limit_train_batches=1).fit(model)
    assert stop.call_count == 1
    assert not bar.progress.live.is_started
    copy = pickle.loads(pickle.dumps(bar))
    assert copy.progress is None and copy.theme == bar.theme


def test_rich_bar_without_rich_says_what_to_install(monkeypatch):
    module = bar_module(fastlight, "rich_progress")
    monkeypatch.setattr(module, "_RICH_AVAILABLE", False)
    with pytest.raises(ModuleNotFoundError, match="requires `rich` >= 10.2.2"):
        fastlight.callbacks.RichProgressBar()


def test_rich_names_at_lightnings_paths_and_rich_loaded_lazily():
    code = ("import sys, fastlight; assert 'rich.progress' not in sys.modules, 'rich imported eagerly';"
            "from fastlight.callbacks.progress.rich_progress import CustomProgress, MetricsTextColumn, Progress;"
            "import rich.progress; assert Progress is rich.progress.Progress and issubclass(CustomProgress, Progress);"
            "from fastlight.callbacks.progress.tqdm_progress import Tqdm; import tqdm; assert issubclass(Tqdm, tqdm.tqdm)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
                                                      + sys.path))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
