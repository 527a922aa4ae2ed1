"""The `dataloader_iter` step flavour and Lightning's data fetchers (`lightning.pytorch.loops.fetchers`), side by side
with pytorch_lightning: the same user code under both, comparing the batches each step fetches, the batch hooks'
arguments, is_last_batch, progress counters, logged metrics, predictions, the loops' `_data_fetcher` and the
fetchers' own `fetched` / `done` bookkeeping."""
import warnings

import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

import fastlight as fl
from fastlight.loops import fetchers as fl_fetchers
from fastlight.utilities.combined_loader import CombinedLoader as FlCombinedLoader
from fastlight.utilities.exceptions import MisconfigurationException

pl = pytest.importorskip("pytorch_lightning")
from pytorch_lightning.loops import fetchers as pl_fetchers  # noqa: E402
from pytorch_lightning.utilities.combined_loader import CombinedLoader as PlCombinedLoader  # noqa: E402

FRAMEWORKS = (("pl", pl, pl_fetchers, PlCombinedLoader), ("fl", fl, fl_fetchers, FlCombinedLoader))
QUIET = dict(enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False, logger=False,
             accelerator="cpu")


class Counting(IterableDataset):
    """1..n without a length."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        yield from range(1, self.n + 1)


def _iterables(kind):
    return {
        "sized": [1, 2, 3],
        "unsized": Counting(3),
        "two_sized": [[1, 2], [10, 20, 30]],
        "two_unsized": [Counting(2), Counting(3)],
        "mixed": [[1, 2], Counting(3)],
        "empty": [],
        "one_empty": [[], [1, 2, 3]],
    }[kind]


def _plain(batch):
    return batch.tolist() if isinstance(batch, torch.Tensor) else batch


# ------------------------------------------------------------------------------------------------ the fetchers alone
@pytest.mark.parametrize("prefetch_batches", [0, 1, 2])
@pytest.mark.parametrize("kind", ["sized", "unsized", "two_sized", "two_unsized", "mixed", "empty"])
@pytest.mark.parametrize("mode", ["min_size", "max_size_cycle", "max_size", "sequential"])
def test_prefetch_fetcher_counts_and_finds_the_last_batch_as_lightning(mode, kind, prefetch_batches):
    seen = {}
    for name, _, fetchers, Combined in FRAMEWORKS:
        fetcher = fetchers._PrefetchDataFetcher(prefetch_batches=prefetch_batches)
        fetcher.setup(Combined(_iterables(kind), mode=mode))
        record = []
        for _ in range(2):  # a second iter() starts over
            iter(fetcher)
            record.append(("start", fetcher.fetched, fetcher.done, fetcher.length))
            record += [(fetcher.fetched, _plain(batch), batch_idx, dl_idx, fetcher.done)
                       for batch, batch_idx, dl_idx in fetcher]
            record.append(("end", fetcher.fetched, fetcher.done))
        fetcher.teardown()
        record.append(("teardown", fetcher.fetched, fetcher.iterator))
        seen[name] = record
    assert seen["fl"] == seen["pl"]


@pytest.mark.parametrize("limit", [None, 0, 1, 2, 100])
@pytest.mark.parametrize("kind", ["sized", "unsized", "two_sized", "two_unsized", "mixed", "one_empty"])
@pytest.mark.parametrize("mode", ["min_size", "max_size_cycle", "max_size", "sequential"])
def test_dataloader_iter_fetcher_done_follows_lightning(mode, kind, limit):
    """`done` of the fetcher and of the iterator the step gets, after each fetch, with limits on the loaders."""
    seen = {}
    for name, _, fetchers, Combined in FRAMEWORKS:
        loader = Combined(_iterables(kind), mode=mode)
        loader.limits = limit
        fetcher = fetchers._DataLoaderIterDataFetcher()
        fetcher.setup(loader)
        iter(fetcher)
        record = [("start", fetcher.done, fetcher.length)]
        if not fetcher.done:
            dataloader_iter = next(fetcher)
            record.append(("same iterator", next(fetcher) is dataloader_iter, dataloader_iter.data_fetcher is fetcher))
            while True:
                try:
                    batch, batch_idx, dl_idx = next(dataloader_iter)
                except StopIteration:
                    record.append(("stop", dataloader_iter.done, fetcher.fetched))
                    break
                record.append((_plain(batch), batch_idx, dl_idx, dataloader_iter.done, dataloader_iter.fetched,
                               dataloader_iter.length, _plain(fetcher._batch), fetcher._batch_idx,
                               fetcher._dataloader_idx))
            with pytest.raises(StopIteration):
                next(fetcher)
        seen[name] = record
    assert seen["fl"] == seen["pl"]


def test_fetcher_without_setup_or_with_negative_prefetch_says_what_is_wrong():
    with pytest.raises(MisconfigurationException, match="setup"):
        iter(fl_fetchers._PrefetchDataFetcher())
    with pytest.raises(ValueError, match="prefetch_batches"):
        fl_fetchers._PrefetchDataFetcher(prefetch_batches=-1)
    fl_fetchers._DataLoaderIterDataFetcher().teardown()  # a teardown before any setup is fine


def test_each_fetch_is_timed_through_the_profiler_callbacks():
    for prefetch in (0, 1):
        timed = []
        fetcher = fl_fetchers._PrefetchDataFetcher(prefetch_batches=prefetch)
        fetcher.setup(FlCombinedLoader(Counting(2)))
        fetcher._start_profiler = lambda: timed.append("start")
        fetcher._stop_profiler = lambda: timed.append("stop")
        assert [b for b, _, _ in fetcher] == [1, 2]
        # every fetch is closed, the one that found the end too
        assert timed == ["start", "stop"] * 3


# ------------------------------------------------------------------------------------------------ in the loops
def _data(n=8, batch_size=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(torch.randn(n, 4, generator=gen)), batch_size=batch_size)


def _fetching_module(framework, fetchers, fetches_per_step, record):
    """Every step takes `dataloader_iter` and fetches `fetches_per_step` batches; the batch hooks and steps record
    what they see."""

    class Fetching(framework.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def _fetch(self, stage, dataloader_iter):
            trainer = self.trainer
            if stage in ("val", "sanity"):  # a fit's validation runs in fit_loop.epoch_loop.val_loop
                loop = trainer.fit_loop.epoch_loop.val_loop if trainer.state.fn == "fit" else trainer.validate_loop
            else:
                loop = getattr(trainer, {"train": "fit_loop", "test": "test_loop", "predict": "predict_loop"}[stage])
            data_fetcher = loop._data_fetcher
            record.append((stage, "fetcher", type(data_fetcher).__name__,
                           isinstance(data_fetcher, fetchers._DataLoaderIterDataFetcher)))
            batch = None
            for _ in range(fetches_per_step):
                try:
                    batch, batch_idx, dl_idx = next(dataloader_iter)
                except StopIteration:
                    record.append((stage, "raised"))
                    raise
                record.append((stage, "fetched", batch_idx, dl_idx, data_fetcher.fetched, dataloader_iter.done,
                               batch[0].device.type))
            return self.layer(batch[0]).sum()

        def _stage(self):
            return "sanity" if self.trainer.sanity_checking else "val"

        def training_step(self, dataloader_iter):
            loss = self._fetch("train", dataloader_iter)
            self.log("train_loss", loss, batch_size=2)
            return loss

        def validation_step(self, dataloader_iter):
            out = self._fetch(self._stage(), dataloader_iter)
            self.log("val_out", out, batch_size=2)
            return out

        def test_step(self, dataloader_iter):
            out = self._fetch("test", dataloader_iter)
            self.log("test_out", out, batch_size=2)
            return out

        def predict_step(self, dataloader_iter):
            return self._fetch("predict", dataloader_iter)

        def _hook(self, stage, what, batch, batch_idx, dataloader_idx=None):
            record.append((stage, what, None if batch is None else round(float(batch[0].sum()), 4), batch_idx,
                           dataloader_idx))

        def on_train_batch_start(self, batch, batch_idx):
            self._hook("train", "start", batch, batch_idx)

        def on_train_batch_end(self, outputs, batch, batch_idx):
            self._hook("train", "end", batch, batch_idx)
            record.append(("train", "is_last_batch", self.trainer.fit_loop.epoch_loop.batch_progress.is_last_batch))

        def on_validation_batch_start(self, batch, batch_idx, dataloader_idx=0):
            self._hook(self._stage(), "start", batch, batch_idx, dataloader_idx)

        def on_validation_batch_end(self, outputs, batch, batch_idx, dataloader_idx=0):
            self._hook(self._stage(), "end", batch, batch_idx, dataloader_idx)

        def on_test_batch_start(self, batch, batch_idx, dataloader_idx=0):
            self._hook("test", "start", batch, batch_idx, dataloader_idx)

        def on_test_batch_end(self, outputs, batch, batch_idx, dataloader_idx=0):
            self._hook("test", "end", batch, batch_idx, dataloader_idx)

        def on_predict_batch_start(self, batch, batch_idx, dataloader_idx=0):
            self._hook("predict", "start", batch, batch_idx, dataloader_idx)

        def on_predict_batch_end(self, outputs, batch, batch_idx, dataloader_idx=0):
            self._hook("predict", "end", batch, batch_idx, dataloader_idx)

        def on_validation_epoch_end(self):
            record.append((self._stage(), "epoch_end", self.trainer.current_epoch))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return Fetching


def _metrics(trainer):
    return {k: round(float(v), 5) for k, v in trainer.callback_metrics.items()}


@pytest.mark.parametrize(("fetches_per_step", "limits"), [(1, None), (2, None), (2, 3), (3, 2)])
def test_every_loop_runs_dataloader_iter_steps_as_lightning(fetches_per_step, limits, tmp_path):
    """fit (sanity check, training, validation after the epoch's last step), validate, test and predict, with two
    validation / test / predict dataloaders: the same fetches, hook arguments, metrics, predictions and weights."""
    seen = {}
    for name, framework, fetchers, _ in FRAMEWORKS:
        record = []
        torch.manual_seed(0)
        model = _fetching_module(framework, fetchers, fetches_per_step, record)()
        trainer = framework.Trainer(default_root_dir=tmp_path / name, max_epochs=2, num_sanity_val_steps=2,
                                    limit_train_batches=limits, limit_val_batches=limits, limit_test_batches=limits,
                                    limit_predict_batches=limits, **QUIET)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(model, _data(), [_data(seed=1), _data(6, seed=2)])
            fit_state = (trainer.global_step, trainer.fit_loop.epoch_loop.batch_progress.state_dict(),
                         trainer.fit_loop._data_fetcher, _metrics(trainer))
            validated = trainer.validate(model, [_data(seed=1), _data(6, seed=2)], verbose=False)
            tested = trainer.test(model, _data(seed=3), verbose=False)
            test_progress = trainer.test_loop.batch_progress.state_dict()
            predicted = trainer.predict(model, [_data(seed=4), _data(4, seed=5)])
        seen[name] = (record, fit_state, validated, tested, test_progress,
                      [[round(float(p), 4) for p in dl] for dl in predicted], trainer.validate_loop._data_fetcher,
                      trainer.predict_loop._data_fetcher, [p.detach().tolist() for p in model.parameters()])
    assert seen["fl"] == seen["pl"]
    stages = {r[0] for r in seen["fl"][0] if r[1] == "fetched"}
    assert stages == {"sanity", "train", "val", "test", "predict"}  # every loop's steps fetched
    if fetches_per_step <= (limits or 4):
        assert seen["fl"][1][0] > 0  # and trained (a step asking for more batches than the limit ends its epoch)


def _sums(batch):
    """A batch as the rounded sum of each dataloader's tensor (dicts and lists opened; None for an exhausted one)."""
    if batch is None:
        return None
    if isinstance(batch, dict):
        return {k: _sums(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and not isinstance(batch[0], torch.Tensor):
        return [_sums(v) for v in batch]
    return round(float(batch[0].sum()), 4)


@pytest.mark.parametrize("mode", ["sequential", "min_size", "max_size_cycle", "max_size"])
def test_a_dataloader_iter_evaluation_step_fetches_from_the_users_combined_loader_as_lightning(mode, tmp_path):
    """validate/test given a CombinedLoader: the step fetches in the loader's own mode (a parallel mode gives one
    batch of each dataloader per fetch, dataloader_idx 0); the same fetches, hook arguments, metrics and progress."""
    seen = {}
    for name, framework, _, combined_cls in FRAMEWORKS:
        record = []

        class Fetching(framework.LightningModule):
            def __init__(self):
                super().__init__()
                self.layer = torch.nn.Linear(4, 1)

            def _step(self, dataloader_iter):
                batch, batch_idx, dl_idx = next(dataloader_iter)
                record.append(("step", _sums(batch), batch_idx, dl_idx, dataloader_iter.done))
                out = self.layer(torch.ones(1, 4)).sum() * batch_idx
                self.log("out", out, batch_size=2)
                return out

            validation_step = test_step = _step

            def on_validation_batch_start(self, batch, batch_idx, dataloader_idx=0):
                record.append(("start", _sums(batch), batch_idx, dataloader_idx))

            def on_test_batch_end(self, outputs, batch, batch_idx, dataloader_idx=0):
                record.append(("end", _sums(batch), batch_idx, dataloader_idx))

        def loaders():
            return combined_cls({"a": _data(6, seed=1), "b": _data(10, seed=2)}, mode)

        trainer = framework.Trainer(default_root_dir=tmp_path / name, **QUIET)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.manual_seed(0)
            model = Fetching()
            validated = trainer.validate(model, loaders(), verbose=False)
            tested = trainer.test(model, loaders(), verbose=False)
        seen[name] = (record, validated, tested, trainer.test_loop.batch_progress.state_dict(),
                      trainer.validate_loop._data_fetcher, trainer.num_test_batches)
    assert seen["fl"] == seen["pl"]
    assert any(r[0] == "step" for r in seen["fl"][0])


def test_a_dataloader_hook_returning_an_empty_list_runs_no_batches_as_lightning(tmp_path):
    """`return []` from val/test/predict_dataloader: one empty iterable (`num_val_batches == [0]`), no step runs and
    nothing fails (no limit to apply to a length of 0)."""
    seen = {}
    for name, framework, _, _ in FRAMEWORKS:
        steps = []

        class NoData(framework.LightningModule):
            def __init__(self):
                super().__init__()
                self.layer = torch.nn.Linear(4, 1)

            def training_step(self, batch, batch_idx):
                return self.layer(batch[0]).sum()

            def validation_step(self, batch, batch_idx):
                steps.append("val")

            def test_step(self, batch, batch_idx):
                steps.append("test")

            def predict_step(self, batch, batch_idx):
                steps.append("predict")

            def train_dataloader(self):
                return _data()

            def val_dataloader(self):
                return []

            test_dataloader = predict_dataloader = val_dataloader

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

        trainer = framework.Trainer(default_root_dir=tmp_path / name, max_epochs=1, **QUIET)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = NoData()
            trainer.fit(model)
            fit_val_batches = trainer.num_val_batches
            tested = trainer.test(model, verbose=False)
            test_batches = trainer.num_test_batches
            trainer.predict(model)
        seen[name] = (steps, fit_val_batches, tested, test_batches, trainer.global_step)
    assert seen["fl"] == seen["pl"]
    assert seen["fl"][0] == [] and seen["fl"][1] == [0]


def test_a_step_can_end_the_epoch_with_stop_iteration(tmp_path):
    seen = {}
    for name, framework, _, _ in FRAMEWORKS:
        steps = []

        class Stopping(framework.LightningModule):
            def __init__(self):
                super().__init__()
                self.layer = torch.nn.Linear(4, 1)

            def training_step(self, dataloader_iter):
                batch, batch_idx, _ = next(dataloader_iter)
                steps.append((self.current_epoch, batch_idx))
                if batch_idx == 2:
                    raise StopIteration
                return self.layer(batch[0]).sum()

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

        trainer = framework.Trainer(default_root_dir=tmp_path / name, max_epochs=2, **QUIET)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(Stopping(), _data())
        seen[name] = (steps, trainer.global_step, trainer.current_epoch)
    assert seen["fl"] == seen["pl"]


def test_logging_without_batch_size_needs_one_in_a_dataloader_iter_training_step(tmp_path):
    for name, framework, _, _ in FRAMEWORKS:
        errors = []

        class Logging(framework.LightningModule):
            def __init__(self):
                super().__init__()
                self.layer = torch.nn.Linear(4, 1)

            def training_step(self, dataloader_iter):
                batch, _, _ = next(dataloader_iter)
                loss = self.layer(batch[0]).sum()
                with pytest.raises(MisconfigurationException if name == "fl" else
                                   pl.utilities.exceptions.MisconfigurationException, match="batch_size") as info:
                    self.log("loss", loss)
                errors.append(str(info.value))
                self.log("loss", loss, batch_size=2)
                return loss

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

        trainer = framework.Trainer(default_root_dir=tmp_path / name, max_epochs=1, limit_train_batches=2, **QUIET)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(Logging(), _data())
        assert len(errors) == 2, name
        assert "dataloader_iter" in errors[0]


def test_lightning_warns_that_the_flavour_is_experimental(tmp_path):
    messages = {}
    for name, framework, _, _ in FRAMEWORKS:
        class Validating(framework.LightningModule):
            def __init__(self):
                super().__init__()
                self.layer = torch.nn.Linear(4, 1)

            def validation_step(self, dataloader_iter):
                batch, _, _ = next(dataloader_iter)
                return self.layer(batch[0]).sum()

        trainer = framework.Trainer(default_root_dir=tmp_path / name, **QUIET)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.validate(Validating(), _data(), verbose=False)
        messages[name] = sorted((w.category.__name__, "validation_step" in str(w.message)) for w in caught
                                if "dataloader_iter" in str(w.message))
    assert messages["fl"] == messages["pl"]
    # the step flavour (PossibleUserWarning), and the fetcher picked for validation_step (UserWarning)
    assert messages["fl"] == [("PossibleUserWarning", False), ("UserWarning", True)]


def test_fetches_are_profiled_under_lightnings_action_names(tmp_path):
    """The number of timed fetches per action (and of timed training batches), on the default path and when the step
    fetches (two per step)."""
    seen = {}
    for name, framework, _, _ in FRAMEWORKS:
        class Plain(framework.LightningModule):
            def __init__(self):
                super().__init__()
                self.layer = torch.nn.Linear(4, 1)

            def training_step(self, batch, batch_idx):
                return self.layer(batch[0]).sum()

            def validation_step(self, batch, batch_idx, dataloader_idx=0):
                return self.layer(batch[0]).sum()

            test_step = validation_step

            def predict_step(self, batch, batch_idx, dataloader_idx=0):
                return self.layer(batch[0])

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

        class Fetching(Plain):
            def training_step(self, dataloader_iter):
                next(dataloader_iter)
                batch, _, _ = next(dataloader_iter)
                return self.layer(batch[0]).sum()

        counts = []
        for module_cls in (Plain, Fetching):
            trainer = framework.Trainer(default_root_dir=tmp_path / name, fast_dev_run=2, profiler="simple", **QUIET)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = module_cls()
                trainer.fit(model, _data(), [_data(), _data()])
                trainer.test(model, _data(), verbose=False)
                trainer.predict(model, _data())
            durations = trainer.profiler.recorded_durations
            counts.append({k: len(v) for k, v in durations.items() if k.endswith("_next") or k == "run_training_batch"})
        seen[name] = counts
    assert seen["fl"] == seen["pl"]
    assert seen["fl"][1]["[_TrainingEpochLoop].train_dataloader_next"] == 2  # fast_dev_run=2: one step of two


# ------------------------------------------------------------------------------------------------ dataloader_idx checks
def _outcome(fn):
    try:
        fn()
    except RuntimeError as err:
        msg = str(err)
        return "no dataloader_idx" if "no `dataloader_idx` argument in" in msg else (
            "has dataloader_idx" if "have included `dataloader_idx` in" in msg else msg)
    except TypeError as err:
        return f"TypeError {'dl_idx' in str(err)}"
    return "ran"


_SIGNATURES = {
    "required": "(self, {args}, dataloader_idx): return None",
    "default": "(self, {args}, dataloader_idx=0): return None",
    "other name": "(self, {args}, dl_idx): return None",
    "varargs": "(self, {args}, *_): return None",
    "varkw": "(self, {args}, **_): return None",
    "absent": "(self, {args}): return None",
    "dataloader_iter": "(self, dataloader_iter): next(dataloader_iter)",
}


_HOOKS = ["validation_step", "on_validation_batch_start", "test_step", "on_test_batch_end", "predict_step",
          "on_predict_batch_start", "on_predict_batch_end"]


@pytest.mark.parametrize("several", [False, True])
@pytest.mark.parametrize(("signature", "hook"), [(s, h) for s in sorted(_SIGNATURES) for h in _HOOKS
                                                 if s != "dataloader_iter" or h.endswith("_step")])
def test_dataloader_idx_parameter_is_checked_before_the_first_batch_as_lightning(signature, hook, several, tmp_path,
                                                                                 record_property):
    """With several dataloaders every step and batch hook must take `dataloader_idx` (a dataloader_iter step need
    not); with one, a `dataloader_idx` without a default is refused."""
    args = {"_step": "batch, batch_idx", "_start": "batch, batch_idx", "_end": "outputs, batch, batch_idx"}
    params = _SIGNATURES[signature].format(args=args["_" + hook.rsplit("_", 1)[1]])
    fn = "validate" if "validation" in hook else ("test" if "test" in hook else "predict")
    seen = {}
    for name, framework, _, _ in FRAMEWORKS:
        namespace = {}
        exec(f"def {hook}{params}", namespace)  # noqa: S102 - the hook under test, the same under both

        class Model(framework.LightningModule):
            def __init__(self):
                super().__init__()
                self.layer = torch.nn.Linear(4, 1)

            def validation_step(self, batch, batch_idx, dataloader_idx=0):
                return None

            test_step = validation_step

            def predict_step(self, batch, batch_idx, dataloader_idx=0):
                return self.layer(batch[0])

        setattr(Model, hook, namespace[hook])
        Model.__name__ = Model.__qualname__ = "Model"
        trainer = framework.Trainer(default_root_dir=tmp_path / name, fast_dev_run=True, **QUIET)
        loaders = [_data(4), _data(4)] if several else _data(4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seen[name] = _outcome(lambda: getattr(trainer, fn)(Model(), loaders))
    record_property("outcome", seen["fl"])
    assert seen["fl"] == seen["pl"]


def test_signature_helper_sees_through_decorators_as_lightning():
    from fastlight.utilities.signature_utils import is_param_in_hook_signature as ours
    from pytorch_lightning.utilities.signature_utils import is_param_in_hook_signature as theirs

    class Module:
        @torch.no_grad()
        def decorated(self, dataloader_iter):
            pass

        def plain(self, batch, batch_idx):
            pass

        def varargs(self, *args):
            pass

    m = Module()
    for fn in (m.decorated, m.plain, m.varargs):
        for param, explicit, min_args in (("dataloader_iter", True, None), ("dataloader_iter", False, None),
                                          ("batch_idx", True, None), ("x", True, 2), ("x", True, 3)):
            assert ours(fn, param, explicit, min_args) == theirs(fn, param, explicit, min_args), (fn, param)
    assert ours(m.decorated, "dataloader_iter", explicit=True)
