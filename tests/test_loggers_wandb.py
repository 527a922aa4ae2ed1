"""WandbLogger in wandb's offline mode: the run's .wandb transaction log is read back with wandb's own reader
(`wandb leet inspect --json`) and compared with what pytorch_lightning's WandbLogger writes for the same user code."""
import json
import os
import subprocess
import sys
from argparse import Namespace

import pytest
import torch

import fastlight
from fastlight.loggers import WandbLogger
from fastlight.utilities.exceptions import MisconfigurationException

from ._parity_helpers import build, quiet_warnings, trainer_kwargs
from .test_loggers_optional import no_network  # noqa: F401  (fixture)

wandb = pytest.importorskip("wandb")
pl = pytest.importorskip("pytorch_lightning")


@pytest.fixture(autouse=True)
def _wandb_offline(tmp_path, monkeypatch, no_network):
    for var, value in {
        "WANDB_MODE": "offline", "WANDB_DIR": tmp_path, "WANDB_DATA_DIR": tmp_path / "wandb_data",
        "WANDB_CACHE_DIR": tmp_path / "wandb_cache", "WANDB_CONFIG_DIR": tmp_path / "wandb_config",
        "WANDB_ARTIFACT_DIR": tmp_path / "wandb_artifacts", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off",
        "WANDB_X_DISABLE_STATS": "true", "WANDB_DISABLE_GIT": "true", "WANDB_DISABLE_CODE": "true",
    }.items():
        monkeypatch.setenv(var, str(value))
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    quiet_warnings()
    yield
    if wandb.run is not None:
        wandb.finish()


def read_run(run):
    """Finish `run` and read its transaction log with wandb's reader: run info, config, history rows, artifacts."""
    run_dir = os.path.dirname(run.dir)  # .../offline-run-<time>-<id>/files -> the run folder
    run.finish()
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", "--json", run_dir],
                         capture_output=True, text=True, check=True).stdout
    info, config, history, artifacts = {}, {}, [], []
    for line in out.splitlines():
        record = json.loads(line)
        kind = record["type"]
        if kind == "run":
            info = record["run"]
            config.update(info.get("config", {}).get("update", {}))
        elif kind == "config":
            config.update(record["config"].get("update", {}))
        elif kind == "history":
            history.append({k: v for k, v in record["history"]["item"].items() if not k.startswith("_")})
        elif kind == "artifact":
            artifacts.append(record["artifact"])
    config.pop("_wandb", None)
    return info, config, history, artifacts


def test_wandb_logger_round_trip_offline(tmp_path):
    logger = WandbLogger(name="run-a", project="proj", save_dir=str(tmp_path), prefix="train", offline=True)
    assert logger.version is None  # no run started just to answer
    logger.log_hyperparams({"lr": 0.1, "layers": [64, 64], "act": torch.nn.ReLU, "opt": {"name": "adam"}})
    logger.log_hyperparams(Namespace(batch_size=32))
    logger.log_metrics({"loss": 0.5, "acc": 0.25}, step=0)
    logger.log_metrics({"loss": 0.125}, step=3)
    logger.finalize("success")
    run = logger.experiment
    assert logger.version == run.id and logger.name == "proj" and logger.save_dir == str(tmp_path)
    assert run.dir.startswith(str(tmp_path))

    info, config, history, _ = read_run(run)
    assert info["project"] == "proj" and info["display_name"] == "run-a" and info["run_id"] == logger.version
    assert config == {"lr": 0.1, "layers": [64, 64], "act": "ReLU", "opt": {"name": "adam"}, "batch_size": 32}
    assert history == [
        {"train-loss": 0.5, "train-acc": 0.25, "trainer/global_step": 0},
        {"train-loss": 0.125, "trainer/global_step": 3},
    ]


def test_wandb_logger_offline_with_log_model_is_refused():
    with pytest.raises(MisconfigurationException, match="offline"):
        WandbLogger(offline=True, log_model=True)


def _fit(framework, root, logger, **ckpt):
    Model = build(framework)
    checkpoint = framework.callbacks.ModelCheckpoint(dirpath=str(root / "ckpt"), monitor="val_loss", **ckpt)
    trainer = framework.Trainer(**trainer_kwargs(root, logger=logger, callbacks=[checkpoint], max_epochs=2,
                                                 enable_checkpointing=True, log_every_n_steps=2))
    trainer.fit(Model(n_train=32, batch_size=8))
    return checkpoint


def _artifact_summary(artifact):
    meta = json.loads(artifact["metadata"])
    return (artifact["type"], artifact["name"].split("-")[0], tuple(artifact["aliases"]),
            tuple(c["path"] for c in artifact["manifest"]["contents"]), meta["original_filename"],
            meta["ModelCheckpoint"]["save_top_k"])


@pytest.mark.parametrize("log_model", ["all", True])
def test_wandb_fit_logs_what_lightning_logs(tmp_path, log_model):
    # offline through WANDB_MODE (offline=True refuses log_model): artifacts are recorded in the run's log
    ours = WandbLogger(project="proj", save_dir=str(tmp_path), log_model=log_model)
    ours_ckpt = _fit(fastlight, tmp_path / "a", ours, save_top_k=2)
    ours_read = read_run(ours.experiment)
    theirs = pl.loggers.WandbLogger(project="proj", save_dir=str(tmp_path), log_model=log_model)
    _fit(pl, tmp_path / "b", theirs, save_top_k=2)
    theirs_read = read_run(theirs.experiment)

    (_, config_a, hist_a, art_a), (_, config_b, hist_b, art_b) = ours_read, theirs_read
    assert config_a == config_b and config_a["hidden"] == 16
    assert [sorted(row) for row in hist_a] == [sorted(row) for row in hist_b]
    assert [row["trainer/global_step"] for row in hist_a] == [row["trainer/global_step"] for row in hist_b]
    for row_a, row_b in zip(hist_a, hist_b):
        assert row_a == pytest.approx(row_b, rel=1e-5, abs=1e-6)
    assert {"train_loss", "val_loss", "epoch", "trainer/global_step"} == set().union(*hist_a)

    assert [_artifact_summary(a) for a in art_a] == [_artifact_summary(b) for b in art_b] and art_a
    if log_model is True:  # logged once, at the end: the kept top-2, the best one last
        assert len(art_a) == 2 and set(art_a[-1]["aliases"]) == {"latest", "best"}
    best = [a for a in art_a if "best" in a["aliases"]][-1]
    staged = best["manifest"]["contents"][0]["local_path"]  # the copy wandb uploads on `wandb sync`
    with open(staged, "rb") as fp, open(ours_ckpt.best_model_path, "rb") as ref:
        assert fp.read() == ref.read()
    assert json.loads(best["metadata"])["score"] == pytest.approx(ours_ckpt.best_model_score.item())


def test_wandb_logger_reuses_active_run_with_warning(tmp_path):
    run = wandb.init(project="outer", dir=str(tmp_path))
    logger = WandbLogger(project="proj")
    with pytest.warns(UserWarning, match="already active"):
        assert logger.experiment is run
    logger.log_metrics({"x": 1.0}, step=5)
    _, _, history, _ = read_run(run)
    assert history == [{"x": 1.0, "trainer/global_step": 5}]


def test_wandb_log_image_and_table_reach_the_run(tmp_path):
    logger = WandbLogger(project="proj", save_dir=str(tmp_path))
    logger.log_image("samples", [torch.rand(3, 8, 8), torch.rand(3, 8, 8)], step=1, caption=["a", "b"])
    logger.log_text("text", columns=["in", "out"], data=[["x", "y"]], step=2)
    with pytest.raises(ValueError, match="caption"):
        logger.log_image("bad", [torch.rand(3, 4, 4)], caption=["a", "b"])
    with pytest.raises(TypeError, match="list"):
        logger.log_image("bad", torch.rand(3, 4, 4))
    _, _, history, _ = read_run(logger.experiment)
    assert history[0]["samples._type"] == "images/separated" and history[0]["samples.count"] == 2
    assert history[0]["samples.captions"] == ["a", "b"] and history[0]["trainer/global_step"] == 1
    assert history[1]["text._type"] == "table-file" and history[1]["text.nrows"] == 1
    assert history[1]["text.ncols"] == 2 and history[1]["trainer/global_step"] == 2


def test_wandb_default_checkpoint_folder_and_log_dir_match_lightning(tmp_path):
    layouts = []
    for framework, cls in ((fastlight, WandbLogger), (pl, pl.loggers.WandbLogger)):
        root = tmp_path / framework.__name__
        logger = cls(project="proj", save_dir=str(root))
        trainer = framework.Trainer(**trainer_kwargs(root, logger=logger, max_epochs=1, enable_checkpointing=True))
        trainer.fit(build(framework)(n_train=16, batch_size=8))
        run_id = logger.experiment.id
        assert logger.version == run_id
        layouts.append((os.path.relpath(trainer.checkpoint_callback.dirpath, root).replace(run_id, "<id>"),
                        os.path.relpath(trainer.log_dir, root)))
        logger.experiment.finish()
    assert layouts[0] == layouts[1] == (os.path.join("proj", "<id>", "checkpoints"), ".")
