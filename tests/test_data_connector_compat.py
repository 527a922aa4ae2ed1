"""Where the loops get their data, side by side with pytorch_lightning: the loops' `setup_data` (the prediction loop's
too), limits set on the trainer after it is built, the zero-length warnings, the module-level `_request_dataloader`
the loops call, `DataConnector.prepare_data` on the ranks that run it, the datamodule hooks under the profiler, the
loaders a batch-size search leaves behind (and the `is_oom_error` of its module it calls), overfit_batches swapping
out-of-order samplers, unpicklable hyperparameters dropped at a run's start, checkpoints read from an http URL and by
`cloud_io._load`, and (fastlight only, where pytorch_lightning 2.6.6 lacks them) `Tuner.lr_find(weights_only=...)`
and `Trainer(suggest_integrations=...)`."""
import functools
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, SequentialSampler

import fastlight as fl
from _parity_helpers import quiet_warnings, trainer_kwargs

pl_ref = pytest.importorskip("pytorch_lightning")
quiet_warnings()

FRAMEWORKS = [pytest.param(pl_ref, id="lightning"), pytest.param(fl, id="fastlight")]


def _boring(pl):
    from importlib import import_module

    return import_module(f"{pl.__name__}.demos.boring_classes")


def _connected(pl, tmp_path, **flags):
    """A trainer with a BoringModel attached as the loops' data source, without a run (Lightning's tests do this)."""
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, **flags))
    model = _boring(pl).BoringModel()
    trainer.strategy.connect(model)
    trainer._data_connector.attach_data(model)
    return trainer, model


@pytest.mark.parametrize("pl", FRAMEWORKS)
@pytest.mark.parametrize("limit", [0.5, 3])
def test_predict_loop_setup_data_sets_the_loaders_and_their_batch_counts(pl, tmp_path, limit):
    trainer, model = _connected(pl, tmp_path, limit_predict_batches=limit)
    trainer.predict_loop.setup_data()
    expected = int(limit * len(model.predict_dataloader())) if isinstance(limit, float) else limit
    assert trainer.num_predict_batches == [expected]
    assert isinstance(trainer.predict_dataloaders, DataLoader)
    assert isinstance(trainer.predict_dataloaders.sampler, SequentialSampler)
    assert len(trainer.predict_dataloaders) == len(model.predict_dataloader())


@pytest.mark.parametrize("pl", FRAMEWORKS)
@pytest.mark.parametrize(("stage", "attribute"), [
    ("train", "train_dataloader"), ("val", "val_dataloaders"), ("test", "test_dataloaders"),
    ("predict", "predict_dataloaders"),
])
def test_a_limit_set_on_the_trainer_applies_to_the_next_setup_data(pl, tmp_path, stage, attribute):
    trainer, _ = _connected(pl, tmp_path, **{f"limit_{stage}_batches": 0})
    loop = {"train": trainer.fit_loop, "val": trainer.validate_loop, "test": trainer.test_loop,
            "predict": trainer.predict_loop}[stage]
    trainer.state.stage = {"train": "train", "val": "validate", "test": "test", "predict": "predict"}[stage]
    loop.setup_data()
    assert getattr(trainer, attribute) is None  # limit 0: the hook is not even called
    setattr(trainer, f"limit_{stage}_batches", 1)
    assert getattr(trainer, f"limit_{stage}_batches") == 1
    loop.setup_data()
    assert isinstance(getattr(trainer, attribute), DataLoader)


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_zero_length_loaders_are_warned_about(pl, tmp_path):
    boring = _boring(pl)
    trainer = pl.Trainer(**trainer_kwargs(tmp_path))
    model = boring.BoringModel()
    trainer.strategy.connect(model)
    empty = DataLoader(boring.RandomDataset(32, 0))
    trainer._data_connector.attach_data(model, train_dataloaders=empty, val_dataloaders=empty)
    with pytest.warns(UserWarning, match="Total length of `CombinedLoader` across ranks is zero"):
        trainer.fit_loop.setup_data()
    assert trainer.num_training_batches == 0
    trainer.state.fn = "validate"
    with pytest.warns(UserWarning, match="Total length of `DataLoader` across ranks is zero"):
        trainer.validate_loop.setup_data()
    assert trainer.num_val_batches == [0]


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_a_sequential_train_loader_is_counted_before_it_is_refused(pl, tmp_path):
    boring = _boring(pl)

    class Model(boring.BoringModel):
        def train_dataloader(self):
            loaders = [DataLoader(boring.RandomDataset(32, 64)), DataLoader(boring.RandomDataset(32, 16))]
            return pl.utilities.combined_loader.CombinedLoader(loaders, "sequential")

    trainer = pl.Trainer(**trainer_kwargs(tmp_path, max_epochs=1))
    with pytest.raises(ValueError, match="FitLoop` does not support"):
        trainer.fit(Model())
    assert trainer.num_training_batches == 64 + 16


@pytest.mark.parametrize("pl", FRAMEWORKS)
@pytest.mark.parametrize("sanity_check", [False, True])
def test_the_loops_request_each_loader_once_through_the_module_level_function(pl, tmp_path, monkeypatch,
                                                                            sanity_check):
    from importlib import import_module

    original = import_module(f"{pl.__name__}.trainer.connectors.data_connector")._request_dataloader
    stages = []
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, limit_train_batches=2, limit_val_batches=2, max_epochs=3,
                                          num_sanity_val_steps=1 if sanity_check else 0))

    def request(source):
        stages.append(str(getattr(trainer.state.stage, "value", trainer.state.stage)))
        return original(source)

    counter = mock.Mock(wraps=request)
    monkeypatch.setattr(import_module(f"{pl.__name__}.loops.fit_loop"), "_request_dataloader", counter)
    monkeypatch.setattr(import_module(f"{pl.__name__}.loops.evaluation_loop"), "_request_dataloader", counter)
    model = _boring(pl).BoringModel()
    loaders = model.train_dataloader(), model.val_dataloader(), model.test_dataloader()
    trainer.fit(model, *loaders[:2])
    assert counter.call_count == 2
    trainer.test(model, dataloaders=loaders[2])
    assert counter.call_count == 3
    assert stages == (["sanity_check", "train", "test"] if sanity_check else ["train", "validate", "test"])


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_data_connector_prepare_data_runs_on_the_ranks_lightning_runs_it_on(pl, tmp_path):
    class DataModule(pl.LightningDataModule):
        def prepare_data(self):
            pass

    dm = DataModule()
    dm.prepare_data = mock.Mock(wraps=dm.prepare_data)
    trainer = pl.Trainer(**trainer_kwargs(tmp_path))
    trainer.datamodule = dm
    cls = type(trainer)
    with mock.patch.object(cls, "local_rank", new_callable=mock.PropertyMock) as local_rank, \
            mock.patch.object(cls, "node_rank", new_callable=mock.PropertyMock) as node_rank:
        calls = []
        for per_node, local, node in [(True, 0, 0), (True, 1, 0), (True, 0, 1), (False, 0, 0), (False, 0, 1),
                                      (False, 1, 0)]:
            dm.prepare_data_per_node = per_node
            local_rank.return_value, node_rank.return_value = local, node
            dm.prepare_data.reset_mock()
            trainer._data_connector.prepare_data()
            calls.append(dm.prepare_data.call_count)
    assert calls == [1, 0, 1, 1, 0, 0]


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_datamodule_hooks_are_timed_by_the_profiler(pl, tmp_path):
    boring = _boring(pl)

    class DataModule(boring.BoringDataModule):
        def prepare_data(self):
            pass

        def state_dict(self):
            return {"seen": 1}

    def fit(**kw):
        trainer = pl.Trainer(**trainer_kwargs(tmp_path, max_steps=1, limit_val_batches=0, profiler="simple",
                                              enable_checkpointing=True))
        trainer.fit(boring.BoringModel(), datamodule=DataModule(), **kw)
        return trainer

    trainer = fit()
    recorded = trainer.profiler.recorded_durations
    for hook in ("prepare_data", "setup", "state_dict", "teardown"):
        assert len(recorded[f"[LightningDataModule]DataModule.{hook}"]) == 1
    recorded = fit(ckpt_path=trainer.checkpoint_callback.best_model_path).profiler.recorded_durations
    assert len(recorded["[LightningDataModule]DataModule.load_state_dict"]) == 1


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_a_missing_dataloader_hook_is_a_misconfiguration(pl):
    dm = pl.LightningDataModule.from_datasets(train_dataset=_boring(pl).RandomDataset(32, 8), batch_size=4)
    with pytest.raises(pl.utilities.exceptions.MisconfigurationException, match="`val_dataloader` must be"):
        dm.val_dataloader()
    if pl is fl:  # a hook without a body is a NotImplementedError too
        with pytest.raises(NotImplementedError):
            dm.test_dataloader()


def test_a_predict_loader_keeps_its_distributed_sampler_when_it_records_batch_indices():
    from fastlight.strategies.data import IndexRecordingBatchSampler, process_dataloader, record_batch_indices

    loader = DataLoader(_boring(fl).RandomDataset(32, 8), batch_size=2)
    distributed = process_dataloader(loader, "predict", sampler_kwargs={"num_replicas": 1, "rank": 0})
    recorded = record_batch_indices(distributed)
    assert isinstance(recorded.batch_sampler, IndexRecordingBatchSampler)
    assert isinstance(recorded.batch_sampler.sampler, DistributedSampler)
    assert [len(b) for b in recorded] == [2, 2, 2, 2]


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_a_batch_size_search_leaves_train_and_val_loaders_at_the_size_found(pl, tmp_path):
    boring = _boring(pl)

    class Model(boring.BoringModel):
        def __init__(self):
            super().__init__()
            self.batch_size = 16

        def train_dataloader(self):
            return DataLoader(boring.RandomDataset(32, 64), batch_size=self.batch_size)

        def val_dataloader(self):
            return DataLoader(boring.RandomDataset(32, 64), batch_size=self.batch_size)

    trainer = pl.Trainer(**trainer_kwargs(tmp_path, max_epochs=1))
    found = pl.tuner.Tuner(trainer).scale_batch_size(Model(), max_trials=2, steps_per_trial=2, init_val=8)
    assert found == 16
    assert trainer.train_dataloader.batch_size == trainer.val_dataloaders.batch_size == found


class _Opaque:  # picklable, but outside the safe loader's allowlist
    pass


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_unpicklable_hyperparameters_are_dropped_when_a_run_starts(pl, tmp_path):
    class Model(_boring(pl).BoringModel):
        def __init__(self, fn, lr=0.1):
            super().__init__()
            self.save_hyperparameters()

    model = Model(fn=lambda x: x)
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, fast_dev_run=1))
    with pytest.warns(UserWarning, match="Attribute 'fn' removed from hparams because it cannot be pickled"):
        trainer.fit(model)
    assert dict(model.hparams) == {"lr": 0.1}


@pytest.mark.parametrize("weights_only", [None, False])
def test_lr_find_reads_its_temporary_checkpoint_with_weights_only(tmp_path, weights_only):
    class Model(_boring(fl).BoringModel):
        def __init__(self, extra, lr=0.1):
            super().__init__()
            self.save_hyperparameters()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    trainer = fl.Trainer(**trainer_kwargs(tmp_path, max_epochs=1))
    tuner = fl.tuner.Tuner(trainer)
    if weights_only is None:  # the safe load refuses the object in the hyperparameters
        with pytest.raises(fl.utilities.checkpoint_io.UnsafeCheckpointError, match="_Opaque"):
            tuner.lr_find(Model(_Opaque()), num_training=5)
    else:
        # (no early stop on a diverging loss: unseeded data could end the search before 5 steps)
        finder = tuner.lr_find(Model(_Opaque()), num_training=5, early_stop_threshold=None, weights_only=weights_only)
        assert len(finder.results["lr"]) == 5


def test_suggest_integrations_is_accepted_and_kept(tmp_path, capsys):
    assert fl.Trainer(**trainer_kwargs(tmp_path)).suggest_integrations is True
    trainer = fl.Trainer(**trainer_kwargs(tmp_path, suggest_integrations=False, max_steps=1))
    assert trainer.suggest_integrations is False
    trainer.fit(_boring(fl).BoringModel())


@pytest.fixture
def http_folder(tmp_path):
    """(url of tmp_path/served, that folder): a local http server over the folder, as Lightning's tests use."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = ThreadingHTTPServer(("localhost", 0), functools.partial(SimpleHTTPRequestHandler,
                                                                     directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}", folder
    finally:
        server.shutdown()


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_a_checkpoint_loads_from_an_http_url(pl, tmp_path, http_folder, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    url, folder = http_folder
    boring = _boring(pl)
    model = boring.BoringModel()
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, fast_dev_run=1))
    trainer.fit(model)
    trainer.save_checkpoint(str(folder / "model.ckpt"))
    loaded = boring.BoringModel.load_from_checkpoint(f"{url}/model.ckpt")
    assert torch.equal(loaded.layer.weight, model.layer.weight)
    assert os.path.isfile(tmp_path / "torch_home" / "hub" / "checkpoints" / "model.ckpt")  # torch.hub's cache
    other = boring.BoringModel()
    pl.Trainer(**trainer_kwargs(tmp_path, limit_val_batches=1)).validate(other, ckpt_path=f"{url}/model.ckpt")
    assert torch.equal(other.layer.weight, model.layer.weight)
    with pytest.raises(Exception, match="404"):
        boring.BoringModel.load_from_checkpoint(f"{url}/missing.ckpt")


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_overfit_batches_swaps_any_out_of_order_sampler_for_a_sequential_one(pl, tmp_path):
    boring = _boring(pl)

    class InOrderButNotSequential(torch.utils.data.Sampler):
        def __init__(self, data):
            self.data = data

        def __iter__(self):
            return iter(range(len(self.data)))

        def __len__(self):
            return len(self.data)

    class Model(boring.BoringModel):
        def train_dataloader(self):
            data = boring.RandomDataset(32, 64)
            return DataLoader(data, sampler=InOrderButNotSequential(data))

        def val_dataloader(self):
            data = boring.RandomDataset(32, 64)
            return DataLoader(data, sampler=InOrderButNotSequential(data))

    trainer = pl.Trainer(**trainer_kwargs(tmp_path, max_epochs=1, overfit_batches=2))
    with pytest.warns(UserWarning, match="requested to overfit but enabled train dataloader shuffling"):
        trainer.fit(Model())
    assert isinstance(trainer.train_dataloader.sampler, SequentialSampler)
    assert isinstance(trainer.val_dataloaders.sampler, SequentialSampler)
    assert trainer.num_training_batches == 2 and trainer.num_val_batches == [2]


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_the_batch_size_search_calls_is_oom_error_of_its_module(pl, tmp_path):
    boring = _boring(pl)

    class Model(boring.BoringModel):
        def __init__(self):
            super().__init__()
            self.batch_size = 16

        def training_step(self, batch, batch_idx):
            if self.batch_size > 100:
                raise RuntimeError("too big")  # an out-of-memory error, as the patched check says
            return super().training_step(batch, batch_idx)

        def train_dataloader(self):
            return DataLoader(boring.RandomDataset(32, 1000), batch_size=self.batch_size)

    model = Model()
    model.validation_step = None
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, max_epochs=2))
    with mock.patch(f"{pl.__name__}.tuner.batch_size_scaling.is_oom_error", return_value=True):
        found = pl.tuner.Tuner(trainer).scale_batch_size(model, max_trials=10, steps_per_trial=1, init_val=500)
    assert found == model.batch_size == trainer.train_dataloader.batch_size == 62


def test_cloud_io_load_reads_what_lightnings_reads(tmp_path):
    from lightning_fabric.utilities.cloud_io import _load as lightning_load

    from fastlight.utilities.cloud_io import _load

    trainer = fl.Trainer(**trainer_kwargs(tmp_path, fast_dev_run=1))
    trainer.fit(_boring(fl).BoringModel())
    path = str(tmp_path / "model.ckpt")
    trainer.save_checkpoint(path)
    ours, theirs = _load(path), lightning_load(path)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours["state_dict"][k], v) for k, v in theirs["state_dict"].items())
