"""ddp_spawn seen from the calling process, side by side with pytorch_lightning (CPU, gloo, spawned processes):
a failing rank reaches the calling process's on_exception hooks, and predictions cannot come back from spawned
processes (refused when asked for, None by default)."""
import pytest
import torch
from torch import nn
from torch.multiprocessing import ProcessRaisedException
from torch.utils.data import DataLoader, TensorDataset

import fastlight

pl = pytest.importorskip("pytorch_lightning")
pytestmark = pytest.mark.slow  # each case spawns processes, under both frameworks


def _loader():
    g = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(8, 4, generator=g)), batch_size=2)


def _module_class(framework, fail_in_training):
    # module-level classes per framework: the spawned processes unpickle them by name
    return {(pl, True): PLFailing, (pl, False): PLPredicting,
            (fastlight, True): FLFailing, (fastlight, False): FLPredicting}[framework, fail_in_training]


def _make(framework):
    class Failing(framework.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(4, 1)
            self.exceptions = 0

        def training_step(self, batch, batch_idx):
            raise RuntimeError("Error during train")

        def on_exception(self, exception):
            self.exceptions += 1

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

        def train_dataloader(self):
            return _loader()

    class Predicting(framework.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(4, 1)

        def predict_step(self, batch, batch_idx):
            return self.layer(batch[0])

    class Counter(framework.Callback):
        def __init__(self):
            self.exceptions = 0

        def on_exception(self, trainer, pl_module, exception):
            self.exceptions += 1

    return Failing, Predicting, Counter


PLFailing, PLPredicting, PLCounter = _make(pl)
FLFailing, FLPredicting, FLCounter = _make(fastlight)
for _cls in (PLFailing, PLPredicting, PLCounter, FLFailing, FLPredicting, FLCounter):
    _cls.__qualname__ = _cls.__name__ = [k for k, v in globals().items() if v is _cls][0]


def _trainer(framework, tmp_path, devices, **kw):
    return framework.Trainer(default_root_dir=tmp_path, accelerator="cpu", strategy="ddp_spawn", devices=devices,
                             fast_dev_run=True, enable_progress_bar=False, enable_model_summary=False, **kw)


@pytest.mark.parametrize("framework", [pl, fastlight], ids=["lightning", "fastlight"])
def test_a_failing_spawned_rank_reaches_on_exception_in_the_calling_process(framework, tmp_path):
    counter = (PLCounter if framework is pl else FLCounter)()
    model = _module_class(framework, True)()
    trainer = _trainer(framework, tmp_path, 1, callbacks=[counter])
    with pytest.raises(Exception, match="Error during train"):
        trainer.fit(model)
    assert counter.exceptions == 1
    assert model.exceptions == 0  # the module's copy in the failing process had the hook; this one is not called
    assert trainer.state.status == "interrupted"


@pytest.mark.parametrize("framework", [pl, fastlight], ids=["lightning", "fastlight"])
def test_spawned_predict_returns_none_by_default_and_refuses_return_predictions(framework, tmp_path):
    model = _module_class(framework, False)()
    trainer = _trainer(framework, tmp_path, 2)
    assert trainer.predict(model, dataloaders=_loader()) is None
    with pytest.raises(ProcessRaisedException, match="`return_predictions` should be set to `False`"):
        trainer.predict(model, dataloaders=_loader(), return_predictions=True)


def test_predict_in_this_process_returns_predictions_by_default(tmp_path):
    trainer = fastlight.Trainer(default_root_dir=tmp_path, accelerator="cpu", devices=1, enable_progress_bar=False,
                                logger=False)
    predictions = trainer.predict(FLPredicting(), dataloaders=_loader())
    assert len(predictions) == 4 and predictions[0].shape == (2, 1)
    assert trainer.predict(FLPredicting(), dataloaders=_loader(), return_predictions=False) is None
