"""BasePredictionWriter (with the batch indices the prediction loop records) and OnExceptionCheckpoint: the same user
code under pytorch_lightning and fastlight writes the same predictions, indices and checkpoint keys."""
import os
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import fastlight

pl = pytest.importorskip("pytorch_lightning")

QUIET = dict(logger=False, enable_progress_bar=False, enable_model_summary=False)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _plain(obj):
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, (list, tuple)):
        return [_plain(o) for o in obj]
    return obj


def _writer_cls(framework):
    class RecordingWriter(framework.callbacks.BasePredictionWriter):
        def __init__(self, write_interval):
            super().__init__(write_interval)
            self.calls = []

        def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
            self.calls.append(("batch", _plain(prediction), list(batch_indices), batch_idx, dataloader_idx))

        def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices):
            self.calls.append(("epoch", _plain(predictions), _plain(batch_indices)))

    return RecordingWriter


def _module_cls(framework, n_loaders=1):
    class Doubler(framework.LightningModule):
        def __init__(self):
            super().__init__()
            self.unused = nn.Linear(1, 1)

        if n_loaders == 1:
            def predict_step(self, batch, batch_idx):
                return batch[0] * 2
        else:
            def predict_step(self, batch, batch_idx, dataloader_idx=0):
                return batch[0] * 2 + dataloader_idx

    return Doubler


def _predict(framework, interval, return_predictions, n_loaders=1, drop_last=True, tmp_path=None):
    torch.manual_seed(7)
    data = [TensorDataset(torch.arange(10.0).view(10, 1) + 100 * i) for i in range(n_loaders)]
    loaders = [DataLoader(d, batch_size=3, shuffle=True, drop_last=drop_last) for d in data]
    writer = _writer_cls(framework)(interval)
    trainer = framework.Trainer(callbacks=[writer], default_root_dir=tmp_path, enable_checkpointing=False, **QUIET)
    out = trainer.predict(_module_cls(framework, n_loaders)(), loaders if n_loaders > 1 else loaders[0],
                          return_predictions=return_predictions)
    return writer.calls, _plain(out), _plain(trainer.predict_loop.predictions)


@pytest.mark.parametrize("interval", ["batch", "epoch", "batch_and_epoch"])
@pytest.mark.parametrize("return_predictions", [True, False], ids=["returned", "not_returned"])
def test_writer_gets_lightnings_predictions_and_batch_indices(interval, return_predictions, tmp_path):
    ours = _predict(fastlight, interval, return_predictions, tmp_path=tmp_path)
    theirs = _predict(pl, interval, return_predictions, tmp_path=tmp_path)
    assert ours == theirs
    calls, out, kept = ours
    kinds = [c[0] for c in calls]
    assert kinds.count("batch") == (4 if interval != "epoch" else 0)
    assert kinds.count("epoch") == (1 if interval != "batch" else 0)
    # every sample predicted once (drop_last is off while predicting), and each index names its sample
    batches = [c for c in calls if c[0] == "batch"]
    for _, prediction, indices, _, _ in batches:
        assert prediction == [[2.0 * i] for i in indices]
    if interval != "batch":
        epoch = calls[-1]
        assert sorted(i for b in epoch[2][0] for i in b) == list(range(10))
    assert (out is None) is (not return_predictions)
    assert kept == ([] if not return_predictions else out)


def test_writer_with_several_dataloaders_matches_lightning(tmp_path):
    ours = _predict(fastlight, "batch_and_epoch", True, n_loaders=2, drop_last=False, tmp_path=tmp_path)
    assert ours == _predict(pl, "batch_and_epoch", True, n_loaders=2, drop_last=False, tmp_path=tmp_path)
    calls = ours[0]
    assert {c[4] for c in calls if c[0] == "batch"} == {0, 1}
    epoch_predictions, epoch_indices = calls[-1][1], calls[-1][2]
    assert len(epoch_predictions) == len(epoch_indices) == 2  # per dataloader


class Batches:
    """An iterable of batches that is not a DataLoader: no batch sampler to take indices from."""

    def __iter__(self):
        return iter([[torch.ones(2, 1)], [torch.zeros(1, 1)]])

    def __len__(self):
        return 2


def test_writer_without_a_dataloader_gets_empty_indices_like_lightning(tmp_path):
    results = []
    for framework in (fastlight, pl):
        writer = _writer_cls(framework)("batch_and_epoch")
        trainer = framework.Trainer(callbacks=[writer], default_root_dir=tmp_path, enable_checkpointing=False,
                                    **QUIET)
        trainer.predict(_module_cls(framework)(), Batches(), return_predictions=False)
        results.append(writer.calls)
    assert results[0] == results[1]
    assert results[0][0][2] == [] and results[0][-1][2] == [[]]


def test_prediction_writer_refuses_an_unknown_write_interval():
    with pytest.raises(ValueError, match="write_interval.*batch_and_epoch.*'step'"):
        fastlight.callbacks.BasePredictionWriter("step")


def test_prediction_writer_that_does_not_override_the_write_hook_says_so(tmp_path):
    trainer = fastlight.Trainer(callbacks=[fastlight.callbacks.BasePredictionWriter("epoch")],
                                default_root_dir=tmp_path, enable_checkpointing=False, **QUIET)
    loader = DataLoader(TensorDataset(torch.ones(2, 1)), batch_size=1)
    with pytest.raises(NotImplementedError, match="write_on_epoch_end"):
        trainer.predict(_module_cls(fastlight)(), loader)


# ---------------------------------------------------------------------------------------------------- OnExceptionCheckpoint
def _failing_fit(framework, tmp_path, fail_at=3, extra_callbacks=()):
    class FailsMidEpoch(framework.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            if self.global_step == fail_at:
                raise RuntimeError("boom")
            return self.net(batch[0]).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    callback = framework.callbacks.OnExceptionCheckpoint(tmp_path)
    trainer = framework.Trainer(max_epochs=2, default_root_dir=tmp_path, callbacks=[callback, *extra_callbacks],
                                **QUIET)
    loader = DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=2)
    if fail_at is None:
        trainer.fit(FailsMidEpoch(), loader)
    else:
        with pytest.raises(RuntimeError, match="boom"):
            trainer.fit(FailsMidEpoch(), loader)
    return trainer, callback


def test_on_exception_checkpoint_saves_what_lightning_saves(tmp_path):
    contents = {}
    for framework in (fastlight, pl):
        folder = tmp_path / framework.__name__
        trainer, callback = _failing_fit(framework, folder)
        assert callback.ckpt_path == os.path.join(folder, "on_exception.ckpt")
        assert trainer.checkpoint_callbacks == [callback]  # no default ModelCheckpoint beside it
        assert sorted(os.listdir(folder)) == ["on_exception.ckpt"]
        ckpt = torch.load(callback.ckpt_path, weights_only=False)
        contents[framework.__name__] = (sorted(k for k in ckpt if not k.endswith("_version") and k != "fastlight_resume"),
                                        ckpt["global_step"],
                                        ckpt["epoch"], sorted(ckpt["state_dict"]), sorted(ckpt["callbacks"]))
    assert contents["fastlight"] == contents["pytorch_lightning"]
    assert contents["fastlight"][1] == 3


def test_on_exception_checkpoint_is_removed_after_a_run_that_ends_normally(tmp_path):
    _failing_fit(fastlight, tmp_path, fail_at=None)
    assert not (tmp_path / "on_exception.ckpt").exists()


def test_a_fit_after_a_crash_continues_from_the_on_exception_checkpoint_like_lightning(tmp_path):
    """fit(ckpt_path=None) with an OnExceptionCheckpoint resumes from its file (Lightning's "last" rule), then the
    run ends normally and the file is removed."""
    outcomes = {}
    for framework in (fastlight, pl):
        folder = tmp_path / framework.__name__
        _failing_fit(framework, folder, fail_at=3)
        path = os.path.join(folder, "on_exception.ckpt")
        assert os.path.exists(path)
        trainer, _ = _failing_fit(framework, folder, fail_at=None)
        # (the step it ends at differs: Lightning re-runs the batch that raised, 8; fastlight's resume from an
        # exception-time checkpoint counts it done, 7; docs/compatibility.md "Counters after an exception ...")
        outcomes[framework.__name__] = (trainer.ckpt_path == path, trainer.global_step > 3, os.path.exists(path))
    assert outcomes["fastlight"] == outcomes["pytorch_lightning"] == (True, True, False)


def test_on_exception_checkpoint_refuses_an_empty_filename_and_disabled_checkpointing(tmp_path):
    with pytest.raises(ValueError, match="filename"):
        fastlight.callbacks.OnExceptionCheckpoint(tmp_path, filename="")
    callback = fastlight.callbacks.OnExceptionCheckpoint(tmp_path, filename="crash")
    assert callback.ckpt_path == os.path.join(tmp_path, "crash.ckpt")
    assert isinstance(callback, fastlight.callbacks.Checkpoint)
    assert isinstance(fastlight.callbacks.ModelCheckpoint(), fastlight.callbacks.Checkpoint)
    with pytest.raises(ValueError, match="enable_checkpointing=False"):
        fastlight.Trainer(callbacks=[callback], enable_checkpointing=False)
