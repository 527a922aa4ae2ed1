"""The batch-size search in validate / test / predict (Tuner.scale_batch_size(method=...) and the BatchSizeFinder
callback), side by side with pytorch_lightning: the sizes tried (the batches each trial ran), the size found, and the
rest of the stage running with it."""
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import fastlight as fl
from fastlight.tuner import Tuner

pl_ref = pytest.importorskip("pytorch_lightning")
from pytorch_lightning.tuner import Tuner as RefTuner  # noqa: E402

QUIET = dict(logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)


def _module_cls(pl):
    class Model(pl.LightningModule):
        def __init__(self, batch_size=2):
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, 2)
            self.record = []

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).sum()

        def validation_step(self, batch, batch_idx):
            self.record.append(("validation_step", batch[0].shape[0], self.training))

        def test_step(self, batch, batch_idx):
            self.record.append(("test_step", batch[0].shape[0], self.training))

        def predict_step(self, batch, batch_idx):
            self.record.append(("predict_step", batch[0].shape[0]))
            return batch[0].shape[0]

        def on_validation_start(self):
            self.record.append("on_validation_start")

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

        def _loader(self):
            return DataLoader(TensorDataset(torch.randn(40, 4)), batch_size=self.hparams.batch_size)

        def train_dataloader(self):
            return self._loader()

        def val_dataloader(self):
            return self._loader()

        def test_dataloader(self):
            return self._loader()

        def predict_dataloader(self):
            return self._loader()

    return Model


def _run_stage(trainer, method, model):
    return getattr(trainer, method)(model, **({} if method == "predict" else {"verbose": False}))


@pytest.mark.parametrize("method", ["validate", "test", "predict"])
@pytest.mark.parametrize("mode", ["power", "binsearch"])
def test_tuner_scales_the_batch_size_of_evaluation_stages_like_lightning(method, mode, tmp_path):
    seen = {}
    for name, pl, tuner_cls in (("pl", pl_ref, RefTuner), ("fl", fl, Tuner)):
        model = _module_cls(pl)()
        trainer = pl.Trainer(default_root_dir=tmp_path / name, **QUIET)
        found = tuner_cls(trainer).scale_batch_size(model, method=method, mode=mode, max_trials=4)
        trials = list(model.record)
        model.record.clear()
        result = _run_stage(trainer, method, model)
        seen[name] = (found, model.hparams.batch_size, trials, model.record,
                      result if method == "predict" else None)
    assert seen["fl"] == seen["pl"]
    assert seen["fl"][0] > 2


@pytest.mark.parametrize("method", ["validate", "test", "predict"])
def test_batch_size_finder_callback_runs_the_stage_with_the_size_found(method, tmp_path):
    seen = {}
    for name, pl in (("pl", pl_ref), ("fl", fl)):
        model = _module_cls(pl)()
        finder = pl.callbacks.BatchSizeFinder(mode="binsearch", max_trials=3)
        trainer = pl.Trainer(default_root_dir=tmp_path / name, callbacks=[finder], **QUIET)
        result = _run_stage(trainer, method, model)
        loop = getattr(trainer, f"{method}_loop")
        seen[name] = (finder.optimal_batch_size, model.record, loop.batch_progress.state_dict(),
                      result if method == "predict" else None)
        modes = [m.training for m in model.modules()]
    assert seen["fl"] == seen["pl"]
    # the module's train/eval modes are the ones it had before the stage (Lightning leaves it in eval mode here:
    # docs/compatibility.md)
    assert all(modes)


def test_batch_size_finder_refuses_several_evaluation_dataloaders(tmp_path):
    class TwoLoaders(_module_cls(fl)):
        def val_dataloader(self):
            return [self._loader(), self._loader()]

        def validation_step(self, batch, batch_idx, dataloader_idx=0):
            pass

    trainer = fl.Trainer(default_root_dir=tmp_path, callbacks=[fl.callbacks.BatchSizeFinder()], **QUIET)
    with pytest.raises(Exception, match="multiple val dataloaders"):
        trainer.validate(TwoLoaders())
