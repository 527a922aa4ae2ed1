"""The evaluation and prediction loops as Lightning's own tests and users see them, side by side with
pytorch_lightning: `_evaluation_step` called once per batch (the method the loop really runs, so patching it counts
batches), `_on_evaluation_epoch_end`, CombinedLoader modes in validate/test, the `dataloader_idx` signature rules,
the printed results table (plain and rich), sampler epochs outside a fit, prediction's flattened loaders and
index-recording batch sampler, Lightning's result keys, and the logger connector's end-of-run logging."""
import io
import os
import warnings
from contextlib import redirect_stdout
from unittest import mock

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

import fastlight

pl = pytest.importorskip("pytorch_lightning")
FRAMEWORKS = [pytest.param(pl, id="lightning"), pytest.param(fastlight, id="fastlight")]
QUIET = dict(logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _boring(fw):
    from pytorch_lightning.demos.boring_classes import RandomDataset

    class Boring(fw.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(32, 2)

        def forward(self, x):
            return self.layer(x)

        def training_step(self, batch, batch_idx):
            return self(batch).sum()

        def validation_step(self, batch, batch_idx):
            self.log("v", self(batch).sum())

        def test_step(self, batch, batch_idx):
            self.log("t", self(batch).sum())

        def predict_step(self, batch, batch_idx):
            return self(batch)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

        def train_dataloader(self):
            return DataLoader(RandomDataset(32, 64), batch_size=2)

        def val_dataloader(self):
            return DataLoader(RandomDataset(32, 64), batch_size=2)

        def test_dataloader(self):
            return DataLoader(RandomDataset(32, 64), batch_size=2)

        def predict_dataloader(self):
            return DataLoader(RandomDataset(32, 64), batch_size=2)

    return Boring


def _dataset(n=64):
    from pytorch_lightning.demos.boring_classes import RandomDataset

    return RandomDataset(32, n)


# ----------------------------------------------------------------------------------------- per-batch method
def _count_evaluation_steps(fw, tmp_path):
    class TwoLoaders(_boring(fw)):
        def validation_step(self, batch, batch_idx, dataloader_idx=0):
            self.log("v", self(batch).sum())

        def test_step(self, batch, batch_idx, dataloader_idx=0):
            self.log("t", self(batch).sum())

        def val_dataloader(self):
            return [DataLoader(_dataset(), batch_size=8), DataLoader(_dataset())]

        def test_dataloader(self):
            return [DataLoader(_dataset(), batch_size=16), DataLoader(_dataset(), batch_size=32)]

    trainer = fw.Trainer(default_root_dir=tmp_path, max_steps=2, limit_val_batches=3, num_sanity_val_steps=2,
                         val_check_interval=1, **QUIET)
    val_loop = trainer.fit_loop.epoch_loop.val_loop
    model = TwoLoaders()
    with mock.patch.object(val_loop, "_evaluation_step", wraps=val_loop._evaluation_step) as fit_mock:
        trainer.fit(model)
    with mock.patch.object(trainer.test_loop, "_evaluation_step", wraps=trainer.test_loop._evaluation_step) as t:
        trainer.test(model, verbose=False)
    fit_calls = [(c.args[1], c.args[2]) for c in fit_mock.call_args_list]  # (batch_idx, dataloader_idx)
    test_calls = [(c.args[1], c.args[2]) for c in t.call_args_list]
    # the patch is undone: the loop runs its own method again
    assert "_evaluation_step" not in vars(trainer.validate_loop if fw is fastlight else val_loop)
    return fit_calls, test_calls, trainer.num_sanity_val_batches


def test_evaluation_step_is_called_once_per_batch_like_lightning(tmp_path):
    expected = _count_evaluation_steps(pl, tmp_path / "pl")
    got = _count_evaluation_steps(fastlight, tmp_path / "fl")
    assert got == expected
    fit_calls, test_calls, sanity = got
    assert sanity == [2, 2]
    # sanity check (2 + 2) and two validation runs (3 + 3 each)
    assert len(fit_calls) == 4 + 12
    assert test_calls == [(0, 0), (1, 0), (2, 0), (3, 0), (0, 1), (1, 1)]


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_on_evaluation_epoch_end_runs_once_per_evaluation(fw, tmp_path):
    loops = pytest.importorskip(f"{fw.__name__}.loops")
    with mock.patch.object(loops._EvaluationLoop, "_on_evaluation_epoch_end") as epoch_end:
        trainer = fw.Trainer(default_root_dir=tmp_path, limit_train_batches=2, limit_val_batches=2, max_epochs=2,
                             **QUIET)
        model = _boring(fw)()
        trainer.fit(model)
        assert epoch_end.call_count == 3  # sanity check + two epochs
        trainer.test(model, verbose=False)
        assert epoch_end.call_count == 4


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_epoch_metrics_reach_the_loggers_before_on_validation_end(fw, tmp_path):
    order = []

    class Model(_boring(fw)):
        def on_validation_end(self):
            order.append("on_validation_end")

    trainer = fw.Trainer(default_root_dir=tmp_path, fast_dev_run=1, **dict(QUIET, logger=None))
    connector_cls = type(trainer._logger_connector)
    with mock.patch.object(connector_cls, "log_eval_end_metrics",
                           side_effect=lambda metrics: order.append(sorted(metrics))):
        trainer.fit(Model())
    assert order == [["v"], "on_validation_end"]


# ----------------------------------------------------------------------------------------- CombinedLoader modes
def _combined_run(fw, tmp_path, mode, fn):
    seen = []

    class Model(_boring(fw)):
        def validation_step(self, batch, batch_idx):
            seen.append((batch, batch_idx))

        def test_step(self, batch, batch_idx):
            seen.append((batch, batch_idx))

    loader = fw.utilities.CombinedLoader({"a": [0, 1, 2], "b": [3, 4]}, mode)
    trainer = fw.Trainer(default_root_dir=tmp_path, **QUIET)
    getattr(trainer, fn)(Model(), loader, verbose=False)
    counts = trainer.num_val_batches if fn == "validate" else trainer.num_test_batches
    return seen, counts, trainer.num_sanity_val_batches


@pytest.mark.parametrize("mode", ["max_size_cycle", "min_size", "max_size"])
@pytest.mark.parametrize("fn", ["validate", "test"])
def test_evaluation_runs_a_combined_loader_in_its_mode_like_lightning(tmp_path, mode, fn):
    expected = _combined_run(pl, tmp_path / "pl", mode, fn)
    got = _combined_run(fastlight, tmp_path / "fl", mode, fn)
    assert got == expected
    if mode == "min_size":
        assert got[0] == [({"a": 0, "b": 3}, 0), ({"a": 1, "b": 4}, 1)]
    assert got[1] == [3, 2]


# ----------------------------------------------------------------------------------------- dataloader_idx rules
def _raised(fw, tmp_path, fn, hooks, n_loaders):
    stage = {"validate": "validation", "test": "test", "predict": "predict"}[fn]
    prefix = {"validate": "val", "test": "test", "predict": "predict"}[fn]
    base = _boring(fw)
    ns = {}
    for hook, sig in hooks.items():
        name = hook.format(stage=stage)
        ns[name] = sig
    if n_loaders > 1:
        ns[f"{prefix}_dataloader"] = lambda self: [DataLoader(_dataset(4)), DataLoader(_dataset(4))]
    Model = type("Model", (base,), ns)
    trainer = fw.Trainer(default_root_dir=tmp_path, fast_dev_run=True, **QUIET)
    try:
        getattr(trainer, fn)(Model(), **({} if fn == "predict" else {"verbose": False}))
    except (RuntimeError, TypeError) as err:
        return type(err).__name__, str(err)
    return None


def step_required(self, batch, batch_idx, dataloader_idx):
    return None


def step_default(self, batch, batch_idx, dataloader_idx=0):
    return None


def step_varargs(self, batch, batch_idx, *_):
    return None


def step_varkw(self, batch, batch_idx, **_):
    return None


def step_plain(self, batch, batch_idx):
    return None


def batch_hook_required(self, batch, batch_idx, dataloader_idx):
    return None


def batch_hook_plain(self, batch, batch_idx):
    return None


CASES = [
    ("required-one-loader", {"{stage}_step": step_required}, 1, "have included `dataloader_idx` in `Model.{stage}_step"),
    ("default-one-loader", {"{stage}_step": step_default}, 1, None),
    ("plain-two-loaders", {"{stage}_step": step_plain}, 2, "no `dataloader_idx` argument in `Model.{stage}_step"),
    ("varargs-two-loaders", {"{stage}_step": step_varargs}, 2, None),
    ("varkw-two-loaders", {"{stage}_step": step_varkw}, 2, "no `dataloader_idx` argument in `Model.{stage}_step"),
    ("batch-start-required-one-loader", {"on_{stage}_batch_start": batch_hook_required}, 1,
     "have included `dataloader_idx` in `Model.on_{stage}_batch_start"),
    ("batch-start-plain-two-loaders", {"{stage}_step": step_default, "on_{stage}_batch_start": batch_hook_plain}, 2,
     "no `dataloader_idx` argument in `Model.on_{stage}_batch_start"),
]


@pytest.mark.parametrize("fn", ["validate", "test", "predict"])
@pytest.mark.parametrize(("hooks", "n_loaders", "match"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_dataloader_idx_signature_rules_match_lightning(tmp_path, fn, hooks, n_loaders, match):
    expected = _raised(pl, tmp_path / "pl", fn, hooks, n_loaders)
    got = _raised(fastlight, tmp_path / "fl", fn, hooks, n_loaders)
    assert (got is None) == (expected is None), (got, expected)
    if match is None:
        return
    stage = {"validate": "validation", "test": "test", "predict": "predict"}[fn]
    assert got[0] == expected[0] == "RuntimeError"
    assert match.format(stage=stage) in got[1]


# ----------------------------------------------------------------------------------------- the results table
TABLES = [
    ([{"log": torch.tensor(5)}, {"no_log": torch.tensor(6)}], "test"),
    ([{"value": torch.tensor(2), "perf": {"a:1": torch.tensor(0), "b": torch.tensor(3.5)}, "x": {"y": 7}},
      {"other value": torch.tensor(1.5), "n:m": {"p": torch.tensor(6), "q": torch.tensor([1, 2])}}], "validate"),
    ([{f"a {'very ' * 14}long name": torch.tensor(5)}, {f"a {'very ' * 14}long name": torch.tensor([[6]])}],
     "validate"),
    ([{f"m/dataloader_idx_{i}": torch.tensor(i)} for i in range(6)], "test"),
    ([{}], "test"),
]


def _printed(fw, inputs, rich):
    loop_module = __import__(f"{fw.__name__}.loops.evaluation_loop", fromlist=["_EvaluationLoop"])
    with mock.patch.object(loop_module, "_RICH_AVAILABLE", rich):
        if rich:
            from rich import get_console

            console = get_console()
            with console.capture() as capture:
                loop_module._EvaluationLoop._print_results(*inputs)
            return capture.get()
        with redirect_stdout(io.StringIO()) as out:
            loop_module._EvaluationLoop._print_results(*inputs)
        return out.getvalue()


@pytest.mark.parametrize("rich", [False, True], ids=["text", "rich"])
@pytest.mark.parametrize("inputs", TABLES, ids=["two-loaders", "nested", "long-names", "six-loaders", "empty"])
def test_results_table_prints_like_lightning(inputs, rich):
    if rich:
        pytest.importorskip("rich")
    with mock.patch.dict(os.environ, {"COLUMNS": "120"}):
        assert _printed(fastlight, inputs, rich) == _printed(pl, inputs, rich)


def test_results_table_falls_back_to_dashes_when_the_terminal_cannot_show_the_bar():
    from fastlight.loops import evaluation_loop

    out = mock.Mock()
    out.encoding = "latin-1"
    with mock.patch.object(evaluation_loop, "_RICH_AVAILABLE", False), redirect_stdout(out):
        evaluation_loop._EvaluationLoop._print_results(*TABLES[0])
    written = "".join(c.args[0] for c in out.write.call_args_list)
    written.encode("latin-1")
    assert "-" * 40 in written and "Test metric" in written


def test_loops_path_is_the_evaluation_module():
    from fastlight.loops import _EvaluationLoop, _PredictionLoop, evaluation_loop, prediction_loop
    from fastlight.trainer import evaluation

    assert evaluation_loop is prediction_loop is evaluation
    assert _EvaluationLoop is evaluation.EvaluationLoop and _PredictionLoop is evaluation.PredictionLoop


# ----------------------------------------------------------------------------------------- sampler epochs
def _set_epoch_calls(fw, tmp_path, batch_sampler):
    def loader():
        dataset = _dataset()
        sampler = RandomSampler(dataset)
        sampler.set_epoch = mock.Mock()
        if batch_sampler:
            return DataLoader(dataset, batch_sampler=torch.utils.data.BatchSampler(sampler, 2, True))
        return DataLoader(dataset, sampler=sampler)

    def calls(dl):
        sampler = dl.batch_sampler.sampler if batch_sampler else dl.sampler
        return [c.args for c in sampler.set_epoch.mock_calls]

    trainer = fw.Trainer(default_root_dir=tmp_path, limit_train_batches=1, limit_val_batches=1, max_epochs=2,
                         **QUIET)
    train, val = loader(), loader()
    model = _boring(fw)()
    trainer.fit(model, train_dataloaders=train, val_dataloaders=val)
    later_val, later_test = loader(), loader()
    trainer.validate(model, dataloaders=later_val, verbose=False)
    trainer.test(model, dataloaders=later_test, verbose=False)
    return calls(train), calls(val), calls(later_val), calls(later_test)


@pytest.mark.parametrize("batch_sampler", [False, True])
def test_evaluation_samplers_get_the_epoch_like_lightning(tmp_path, batch_sampler):
    expected = _set_epoch_calls(pl, tmp_path / "pl", batch_sampler)
    got = _set_epoch_calls(fastlight, tmp_path / "fl", batch_sampler)
    assert got == expected
    assert got[2] == got[3] == [(2,)]  # outside a fit: the epochs the fit processed


# ----------------------------------------------------------------------------------------- prediction
def _predict_shapes(fw, tmp_path):
    class Model(_boring(fw)):
        def predict_step(self, batch, batch_idx, dataloader_idx=0):
            return (batch, batch_idx, dataloader_idx)

    trainer = fw.Trainer(default_root_dir=tmp_path, limit_predict_batches=3, **QUIET)
    model = Model()
    return [trainer.predict(model, data) for data in ({"a": [0, 1], "b": [2, 3]}, [[0, 1], [2, 3]], [[5, 6, 7]])]


def test_predict_runs_each_flattened_iterable_like_lightning(tmp_path):
    expected = _predict_shapes(pl, tmp_path / "pl")
    got = _predict_shapes(fastlight, tmp_path / "fl")
    assert got == expected
    assert got[1] == [[(0, 0, 0), (1, 1, 0)], [(2, 0, 1), (3, 1, 1)]]


def test_predict_refuses_a_parallel_combined_loader(tmp_path):
    trainer = fastlight.Trainer(default_root_dir=tmp_path, **QUIET)
    loader = fastlight.utilities.CombinedLoader({"a": [0, 1], "b": [2, 3]}, "min_size")
    with pytest.raises(ValueError, match="sequential"):
        trainer.predict(_boring(fastlight)(), loader)


def _predict_sampler(fw, tmp_path):
    class Model(_boring(fw)):
        def predict_dataloader(self):
            dataset = _dataset()
            return DataLoader(dataset, batch_size=4, sampler=DistributedSampler(dataset, num_replicas=1, rank=0))

    trainer = fw.Trainer(default_root_dir=tmp_path, limit_predict_batches=2, **QUIET)
    trainer.fit_loop.epoch_progress.current.processed = 2
    trainer.predict(Model())
    dl = trainer.predict_dataloaders
    wrapper = __import__(f"{fw.__name__}.overrides.distributed", fromlist=["x"])._IndexBatchSamplerWrapper
    return (type(dl.sampler).__name__, isinstance(dl.batch_sampler, wrapper),
            type(dl.batch_sampler.sampler).__name__, dl.batch_sampler.sampler.epoch,
            [list(b) for b in dl.batch_sampler.seen_batch_indices])


def test_predict_loaders_record_batch_indices_and_get_the_epoch_like_lightning(tmp_path):
    expected = _predict_sampler(pl, tmp_path / "pl")
    got = _predict_sampler(fastlight, tmp_path / "fl")
    assert got == expected
    assert got[:4] == ("SequentialSampler", True, "DistributedSampler", 2)


# ----------------------------------------------------------------------------------------- logging
def _result_entries(fw, tmp_path):
    seen = []

    class Model(_boring(fw)):
        def validation_step(self, batch, batch_idx, dataloader_idx):
            self.log("val_loss", float(batch_idx + dataloader_idx), on_epoch=True)

        def on_validation_epoch_end(self):
            results = self.trainer._results
            seen.append(sorted((k, results[k].cumulated_batch_size) for k in results))

        def val_dataloader(self):
            return [DataLoader(_dataset(10), batch_size=2), DataLoader(_dataset(6), batch_size=3)]

    trainer = fw.Trainer(default_root_dir=tmp_path, limit_train_batches=2, max_epochs=1, num_sanity_val_steps=0,
                         **QUIET)
    trainer.fit(Model())
    return seen


def test_result_collection_keys_are_lightnings(tmp_path):
    expected = _result_entries(pl, tmp_path / "pl")
    got = _result_entries(fastlight, tmp_path / "fl")
    assert got == expected == [[("validation_step.val_loss.0", 10), ("validation_step.val_loss.1", 6)]]


def _stage_in_setup(fw, tmp_path):
    stages = []

    class Model(_boring(fw)):
        def setup(self, stage):
            stages.append((str(getattr(stage, "value", stage)), self.trainer.state.stage.value))

    trainer = fw.Trainer(default_root_dir=tmp_path, limit_val_batches=1, limit_test_batches=1,
                         limit_predict_batches=1, **QUIET)
    model = Model()
    trainer.validate(model, verbose=False)
    trainer.test(model, verbose=False)
    trainer.predict(model)
    return stages


def test_the_running_stage_is_known_in_setup_like_lightning(tmp_path):
    expected = _stage_in_setup(pl, tmp_path / "pl")
    assert _stage_in_setup(fastlight, tmp_path / "fl") == expected


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_logging_in_on_save_checkpoint_is_refused(fw, tmp_path):
    raised = []

    class Model(_boring(fw)):
        def on_save_checkpoint(self, checkpoint):
            try:
                self.log("x", 1.0)
            except Exception as err:  # MisconfigurationException in both
                raised.append(str(err))

    trainer = fw.Trainer(default_root_dir=tmp_path, max_steps=1, limit_val_batches=0,
                         **dict(QUIET, enable_checkpointing=True))
    trainer.fit(Model())
    assert raised and "on_save_checkpoint" in raised[0]


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_logger_true_without_a_logger_warns(fw, tmp_path):
    class Model(_boring(fw)):
        def training_step(self, batch, batch_idx):
            self.log("epoch", -batch_idx, logger=True)
            self.log("plain", 1.0)
            return super().training_step(batch, batch_idx)

    trainer = fw.Trainer(default_root_dir=tmp_path, limit_train_batches=2, limit_val_batches=0, max_epochs=1,
                         **QUIET)
    with pytest.warns(UserWarning, match=r"log\('epoch', ..., logger=True\)` but have no logger") as record:
        trainer.fit(Model())
    assert not [w for w in record if "'plain'" in str(w.message)]
    assert trainer.logged_metrics == {"epoch": -1, "plain": 1.0}


@pytest.mark.parametrize("compute_groups", [True, False])
@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_log_dict_asks_a_metric_collection_for_its_items_once(fw, tmp_path, compute_groups):
    torchmetrics = pytest.importorskip("torchmetrics")
    from torchmetrics.classification import MulticlassAccuracy, MulticlassPrecision

    asked = []

    class Collection(torchmetrics.MetricCollection):
        def items(self, keep_base=False, copy_state=True):
            if getattr(self, "_logging", False):
                asked.append((keep_base, copy_state))
            return super().items(keep_base=keep_base, copy_state=copy_state)

    class Model(_boring(fw)):
        def __init__(self):
            super().__init__()
            self.metrics = Collection([MulticlassAccuracy(num_classes=4), MulticlassPrecision(num_classes=4)],
                                      compute_groups=compute_groups)

        def training_step(self, batch, batch_idx):
            self.metrics(torch.rand(8, 4).softmax(-1), torch.randint(0, 4, (8,)))
            self.metrics._logging = True
            self.log_dict(self.metrics)
            self.metrics._logging = False
            return super().training_step(batch, batch_idx)

    trainer = fw.Trainer(default_root_dir=tmp_path, limit_train_batches=2, limit_val_batches=0, max_epochs=1,
                         **QUIET)
    trainer.fit(Model())
    assert asked == [(False, not compute_groups)] * 2


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_prediction_writer_refuses_an_unknown_interval_as_lightning(fw):
    from pytorch_lightning.utilities.exceptions import MisconfigurationException as PLMisconfiguration

    expected = PLMisconfiguration if fw is pl else fastlight.utilities.exceptions.MisconfigurationException
    with pytest.raises(expected, match=r"`write_interval` should be one of \['batch"):
        fw.callbacks.BasePredictionWriter("something")


class _NoLenLoader:
    """An iterable of batches without a length (as an IterableDataset's DataLoader)."""

    def __init__(self, loader):
        self.loader = loader

    def __iter__(self):
        return iter(self.loader)


@pytest.mark.parametrize("fn", ["validate", "test", "predict"])
@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_a_fractional_limit_on_a_loader_without_length_is_refused_as_lightning(fw, tmp_path, fn):
    prefix = {"validate": "val", "test": "test", "predict": "predict"}[fn]
    trainer = fw.Trainer(default_root_dir=tmp_path, **{f"limit_{prefix}_batches": 0.5}, **QUIET)
    loader = _NoLenLoader(DataLoader(_dataset(8), batch_size=2))
    with pytest.raises(Exception, match=r"IterableDataset`.*limit_.*_batches\)`.*`1.0` or an int") as err:
        getattr(trainer, fn)(_boring(fw)(), loader)
    assert "MisconfigurationException" in [c.__name__ for c in type(err.value).__mro__]


def _iterable_len_warnings(fw, tmp_path):
    from torch.utils.data import IterableDataset

    class WithLen(IterableDataset):
        def __iter__(self):
            return iter(_dataset(8))

        def __len__(self):
            return 8

    trainer = fw.Trainer(default_root_dir=tmp_path, **QUIET)
    model = _boring(fw)()
    out = []
    for fn in ("validate", "test", "predict"):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            getattr(trainer, fn)(model, [DataLoader(WithLen(), batch_size=4)])
        out.append(any("Your `IterableDataset` has `__len__` defined" in str(w.message) for w in record))
    return out


def test_an_iterable_dataset_with_a_length_is_warned_about_like_lightning(tmp_path):
    expected = _iterable_len_warnings(pl, tmp_path / "pl")
    assert _iterable_len_warnings(fastlight, tmp_path / "fl") == expected == [True, True, True]


def _validation_steps_run(fw, tmp_path, on_class):
    ran = []

    class Model(_boring(fw)):
        def validation_step(self, batch, batch_idx):
            ran.append(batch_idx)

    if on_class:
        Model.validation_step = None
    model = Model()
    if not on_class:
        model.validation_step = None
    trainer = fw.Trainer(default_root_dir=tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=2,
                         **QUIET)
    trainer.fit(model)
    return ran, trainer.num_sanity_val_batches


@pytest.mark.parametrize("on_class", [True, False], ids=["class", "instance"])
def test_a_validation_step_set_to_none_turns_validation_off_like_lightning(tmp_path, on_class):
    expected = _validation_steps_run(pl, tmp_path / "pl", on_class)
    assert _validation_steps_run(fastlight, tmp_path / "fl", on_class) == expected
    assert expected[0] == []
