"""Callback, checkpoint, logging and Trainer-flag behaviours Lightning's users rely on, side by side with
pytorch_lightning: the exception types and texts of bad ModelCheckpoint / EarlyStopping arguments, checkpoint names
without a folder, `save_last="link"` on a URL, EarlyStopping's rank-prefixed log lines, barebones mode's refusals,
PL_TRAINER_* environment defaults, `self.log` inside callbacks and outside a run, the logger connector's
`should_update_logs`, `num_val_batches` following the validation loop, omegaconf hparams in checkpoints, a CSVLogger
writing to an fsspec URL, and TensorBoard's graph-logging warnings."""
import logging
import os
from unittest import mock

import pytest
import torch

import fastlight as fl
from _parity_helpers import quiet_warnings, trainer_kwargs

pl_ref = pytest.importorskip("pytorch_lightning")
quiet_warnings()

FRAMEWORKS = [pytest.param(pl_ref, id="lightning"), pytest.param(fl, id="fastlight")]


def _misconfiguration(pl):
    return pl.utilities.exceptions.MisconfigurationException


def _boring(pl):
    from importlib import import_module

    return import_module(f"{pl.__name__}.demos.boring_classes").BoringModel


@pytest.mark.parametrize("pl", FRAMEWORKS)
@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(save_top_k=-3), r"save_top_k=-3\. Must be >= -1"),
    (dict(save_top_k=3), r"ModelCheckpoint\(save_top_k=3, monitor=None\) is not a valid"),
    (dict(every_n_epochs=-3), r"every_n_epochs=-3\. Must be >= 0"),
    (dict(every_n_train_steps=-3), r"every_n_train_steps=-3\. Must be >= 0"),
    (dict(every_n_train_steps=1, every_n_epochs=2), "Combination of parameters every_n_train_steps"),
    (dict(mode="unknown_option"), "`mode` can be .* but got unknown_option"),
])
def test_bad_model_checkpoint_arguments_raise_a_misconfiguration(pl, kwargs, match, tmp_path):
    with pytest.raises(_misconfiguration(pl), match=match):
        pl.callbacks.ModelCheckpoint(dirpath=tmp_path, **kwargs)


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_bad_early_stopping_mode_raises_a_misconfiguration(pl):
    with pytest.raises(_misconfiguration(pl), match="`mode` can be .* got unknown_option"):
        pl.callbacks.EarlyStopping(monitor="foo", mode="unknown_option")


@pytest.mark.parametrize("pl", FRAMEWORKS)
@pytest.mark.parametrize("dirpath", [None, ""])
def test_checkpoint_name_without_a_folder_is_the_bare_file_name(pl, dirpath):
    ckpt = pl.callbacks.ModelCheckpoint(monitor="loss", dirpath=dirpath)
    assert ckpt.format_checkpoint_name({"epoch": 5, "step": 4}) == "epoch=5-step=4.ckpt"


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_save_last_link_refuses_a_url_folder_at_setup(pl):
    callback = pl.callbacks.ModelCheckpoint(dirpath="memory://not-a-filesystem-path", save_last="link")
    assert callback.dirpath == "memory://not-a-filesystem-path"  # a URL is not made an absolute local path
    trainer = pl.Trainer(**trainer_kwargs("."))
    with pytest.raises(ValueError, match="save_last='link'.* is only supported for local file paths"):
        callback.setup(trainer=trainer, pl_module=_boring(pl)(), stage="fit")


@pytest.mark.parametrize("pl", FRAMEWORKS)
@pytest.mark.parametrize(("rank_zero_only", "world_size", "rank", "expected"), [
    (False, 1, 0, "bar"),
    (False, 2, 1, "[rank: 1] bar"),
    (True, 2, 0, "[rank: 0] bar"),
    (True, 2, 1, None),
])
def test_early_stopping_log_lines_carry_the_rank(pl, rank_zero_only, world_size, rank, expected):
    trainer = mock.Mock(global_rank=rank, world_size=world_size)
    with mock.patch(f"{pl.__name__}.callbacks.early_stopping.log.info") as info:
        pl.callbacks.EarlyStopping._log_info(trainer, "bar", rank_zero_only)
    if expected is None:
        info.assert_not_called()
    else:
        info.assert_called_once_with(expected)


@pytest.mark.parametrize("pl", FRAMEWORKS)
@pytest.mark.parametrize(("flag", "value"), [
    ("enable_checkpointing", True), ("logger", True), ("enable_progress_bar", True), ("enable_model_summary", True),
    ("log_every_n_steps", 1), ("num_sanity_val_steps", 1), ("fast_dev_run", 1), ("detect_anomaly", True),
    ("profiler", "simple"),
])
def test_barebones_refuses_each_feature_it_turns_off(pl, flag, value):
    shown = repr(value)
    with pytest.raises(ValueError, match=rf"`Trainer\(barebones=True, {flag}={shown}\)` was passed"):
        pl.Trainer(barebones=True, **{flag: value})


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_barebones_says_so_and_turns_everything_off(pl, caplog):
    with caplog.at_level(logging.INFO):
        trainer = pl.Trainer(barebones=True)
    assert "running in `Trainer(barebones=True)` mode" in caplog.text
    assert not trainer.checkpoint_callbacks and not trainer.loggers and not trainer.progress_bar_callback
    assert not trainer.log_every_n_steps and not trainer.num_sanity_val_steps and not trainer._detect_anomaly


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_pl_trainer_environment_variables_are_defaults(pl, monkeypatch):
    monkeypatch.setenv("PL_TRAINER_LOGGER", "False")
    monkeypatch.setenv("PL_TRAINER_MAX_STEPS", "7")
    monkeypatch.setenv("PL_TRAINER_ACCELERATOR", "cpu")  # not a Python literal: kept as the string
    trainer = pl.Trainer(enable_progress_bar=False)
    assert trainer.logger is None and trainer.max_steps == 7
    explicit = pl.Trainer(max_steps=42, logger=False, enable_progress_bar=False)  # what the caller passes wins
    assert explicit.max_steps == 42


def _callback_logging_metrics(pl, tmp_path):
    class LoggingCallback(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            self.log("on_train_start", 1)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.log("on_train_batch_end", 3)

        def on_train_epoch_end(self, trainer, pl_module):
            self.log_dict({"on_train_epoch_end": 5})

    trainer = pl.Trainer(**trainer_kwargs(tmp_path, limit_train_batches=2, limit_val_batches=1, max_epochs=1,
                                          callbacks=[LoggingCallback()]))
    trainer.fit(_boring(pl)())
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def test_callbacks_log_through_the_module_like_lightning(tmp_path):
    got = _callback_logging_metrics(fl, tmp_path / "fl")
    assert got == _callback_logging_metrics(pl_ref, tmp_path / "pl")
    assert got == {"on_train_start": 1.0, "on_train_batch_end": 3.0, "on_train_epoch_end": 5.0}


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_log_outside_a_run_goes_to_the_stage_set_on_the_trainer(pl):
    model = _boring(pl)()
    trainer = pl.Trainer(**trainer_kwargs("."))
    trainer.state.stage = pl.trainer.states.RunningStage.TRAINING
    model._current_fx_name = "training_step"
    model.trainer = trainer
    model.log("foo", torch.tensor([1.2]), on_epoch=True)
    assert trainer.callback_metrics["foo"].ndim == 0
    assert set(trainer.callback_metrics) == {"foo", "foo_epoch"}


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_logging_a_metric_that_is_not_an_attribute_is_a_misconfiguration(pl, tmp_path):
    torchmetrics = pytest.importorskip("torchmetrics")

    class Model(_boring(pl)):
        def training_step(self, batch, batch_idx):
            self.log("foo", torchmetrics.MeanMetric())
            return super().training_step(batch, batch_idx)

    trainer = pl.Trainer(**trainer_kwargs(tmp_path, limit_train_batches=1, limit_val_batches=0, max_epochs=1))
    with pytest.raises(_misconfiguration(pl), match="fix this by setting an attribute for the metric"):
        trainer.fit(Model())


def _steps_sent_to_the_loggers(pl, tmp_path):
    class Model(_boring(pl)):
        def __init__(self):
            super().__init__()
            self.should_update = []

        def training_step(self, batch, batch_idx):
            self.log("foo", 1.0, on_step=True, on_epoch=True)
            if not self.trainer.fit_loop._should_accumulate() and self.trainer._logger_connector.should_update_logs:
                self.should_update.append(self.trainer.global_step)
            return super().training_step(batch, batch_idx)

    model = Model()
    logger = pl.loggers.CSVLogger(tmp_path)
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, limit_train_batches=12, limit_val_batches=0, max_epochs=3,
                                          accumulate_grad_batches=2, log_every_n_steps=3, logger=logger))
    with mock.patch.object(type(logger), "log_metrics") as log_metrics:
        trainer.fit(model)
    logged = [c.kwargs.get("step", c.args[1] if len(c.args) > 1 else None) for c in log_metrics.call_args_list
              if "foo_step" in (c.kwargs.get("metrics") or c.args[0])]
    return model.should_update, logged


def test_should_update_logs_names_the_steps_the_loggers_get(tmp_path):
    got = _steps_sent_to_the_loggers(fl, tmp_path / "fl")
    assert got == _steps_sent_to_the_loggers(pl_ref, tmp_path / "pl")
    asked, logged = got
    assert asked == logged == [2, 5, 8, 11, 14, 17]


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_num_val_batches_follows_the_validation_loop(pl):
    trainer = pl.Trainer(**trainer_kwargs(".", enable_checkpointing=True, val_check_interval=0.5))
    checkpoint = trainer.checkpoint_callback
    trainer.fit_loop.epoch_loop.val_loop._max_batches = [0]
    assert trainer.num_val_batches == [0]
    assert checkpoint._should_save_on_train_epoch_end(trainer)  # no validation: save at the epoch's end
    trainer.fit_loop.epoch_loop.val_loop._max_batches = [1]
    assert trainer.num_val_batches == [1]
    assert not checkpoint._should_save_on_train_epoch_end(trainer)  # validating twice an epoch: save after it


def _resume_past_max_epochs(pl, tmp_path):
    model = _boring(pl)()
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, limit_train_batches=2, limit_val_batches=0, max_epochs=3))
    trainer.fit(model)
    path = os.path.join(tmp_path, "three.ckpt")
    trainer.save_checkpoint(path)
    again = pl.Trainer(**trainer_kwargs(tmp_path, limit_train_batches=2, limit_val_batches=0, max_epochs=1))
    with pytest.raises(_misconfiguration(pl), match=r"You restored a checkpoint with current_epoch=3"):
        again.fit(_boring(pl)(), ckpt_path=path)


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_resuming_past_max_epochs_is_a_misconfiguration(pl, tmp_path):
    _resume_past_max_epochs(pl, tmp_path)


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_omegaconf_hparams_are_checkpointed_as_a_container(pl, tmp_path):
    omegaconf = pytest.importorskip("omegaconf")

    class Model(_boring(pl)):
        def __init__(self, hparams):
            super().__init__()
            self.save_hyperparameters(hparams)

    model = Model(omegaconf.OmegaConf.create({"a": 1, "b": 2}))
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, limit_train_batches=1, limit_val_batches=0, max_epochs=1))
    trainer.fit(model)
    checkpoint = trainer._checkpoint_connector.dump_checkpoint()
    assert isinstance(checkpoint["hyper_parameters"], omegaconf.Container)
    assert checkpoint["hparams_type"] is type(model.hparams)
    path = os.path.join(tmp_path, "omega.ckpt")
    trainer.save_checkpoint(path)
    loaded = Model.load_from_checkpoint(path, weights_only=False)
    assert isinstance(loaded.hparams, omegaconf.DictConfig) and dict(loaded.hparams) == {"a": 1, "b": 2}


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_csv_logger_writes_to_an_fsspec_url(pl):
    fsspec = pytest.importorskip("fsspec")
    url = f"memory://csv_logger_url_{pl.__name__}"
    fs, _ = fsspec.core.url_to_fs(url)
    try:
        logger = pl.loggers.CSVLogger(save_dir=url)
        logger.log_hyperparams({"lr": 0.1})
        logger.log_metrics({"loss": 0.5}, step=0)
        logger.log_metrics({"loss": 0.25, "acc": 1.0}, step=1)  # a new column: the file is rewritten
        logger.save()
        assert logger.log_dir == f"{url}/lightning_logs/version_0"
        with fs.open(f"{logger.log_dir}/metrics.csv", "r") as fp:
            rows = fp.read().splitlines()
        assert rows[0].split(",") == ["acc", "loss", "step"] and len(rows) == 3
        assert fs.isfile(f"{logger.log_dir}/hparams.yaml")
        assert pl.loggers.CSVLogger(save_dir=url).version == 1  # the next free version, read from the URL
    finally:
        if fs.exists(url):
            fs.rm(url, recursive=True)


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_tensorboard_graph_warnings_name_the_problem(pl, tmp_path):
    pytest.importorskip("tensorboard")
    model = _boring(pl)()
    model.example_input_array = None
    logger = pl.loggers.TensorBoardLogger(tmp_path, log_graph=True)
    with pytest.warns(UserWarning, match="Could not log computational graph to TensorBoard: The "
                                         "`model.example_input_array` .* was not given"):
        logger.log_graph(model)
    model.example_input_array = {"x": 1, "y": 2}
    with pytest.warns(UserWarning, match="Could not log computational graph to TensorBoard: .* can't be traced"):
        logger.log_graph(model)


@pytest.mark.parametrize("pl_load", ["lightning_fabric", "fastlight"])
def test_cloud_io_load_reads_local_files_and_fsspec_urls(pl_load, tmp_path):
    fsspec = pytest.importorskip("fsspec")
    if pl_load == "fastlight":
        from fastlight.utilities.cloud_io import _load, get_filesystem
    else:
        from lightning_fabric.utilities.cloud_io import _load, get_filesystem
    torch.save({"w": torch.arange(3)}, tmp_path / "local.ckpt")
    assert torch.equal(_load(str(tmp_path / "local.ckpt"))["w"], torch.arange(3))
    url = f"memory://cloud_io_{pl_load}/remote.ckpt"
    fs = get_filesystem(url)
    assert isinstance(fs, fsspec.AbstractFileSystem)
    try:
        with fs.open(url, "wb") as fp:
            torch.save({"w": torch.ones(2)}, fp)
        assert torch.equal(_load(url)["w"], torch.ones(2))
    finally:
        fs.rm(f"memory://cloud_io_{pl_load}", recursive=True)


def test_resume_state_gathered_across_ranks_goes_without_torch_save():
    """Under DDP each rank's RNG/gradient state is gathered with all_gather_object: packed as raw bytes, pickling it
    does not call torch.save (Lightning's tests count torch.save calls as checkpoint writes) and unpacks exactly."""
    import pickle

    from fastlight.trainer.resume_state import _pack_tensors, _unpack_tensors

    state = {"rng": {"torch": torch.get_rng_state(), "cuda": [], "python": (3, (1, 2), None)},
             "partial_gradients": {"w": torch.randn(2, 3), "h": torch.tensor(1.5, dtype=torch.bfloat16),
                                   "empty": torch.empty(0, 4)}, "phase": "validation", "samplers": [0, 1]}
    with mock.patch("torch.save", side_effect=AssertionError("torch.save called")):
        wire = pickle.dumps(_pack_tensors(state))
    back = _unpack_tensors(pickle.loads(wire))
    assert torch.equal(back["rng"]["torch"], state["rng"]["torch"])
    for name, tensor in state["partial_gradients"].items():
        got = back["partial_gradients"][name]
        assert got.dtype == tensor.dtype and got.shape == tensor.shape and torch.equal(got, tensor)
    assert back["rng"]["python"] == (3, (1, 2), None) and back["samplers"] == [0, 1]
