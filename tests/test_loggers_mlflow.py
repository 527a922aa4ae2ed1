"""MLFlowLogger against real local MLflow tracking stores (a file store and a SQLite database), read back with
mlflow's own MlflowClient, and side by side with pytorch_lightning's MLFlowLogger on the same user code."""
import os
from argparse import Namespace

import pytest
import torch
import yaml

import fastlight
from fastlight.loggers import MLFlowLogger

from ._parity_helpers import build, quiet_warnings, trainer_kwargs
from .test_loggers_optional import no_network  # noqa: F401  (fixture)

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"  # before mlflow starts its telemetry client: no network in tests
mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

pl = pytest.importorskip("pytorch_lightning")


@pytest.fixture(autouse=True)
def _mlflow_env(monkeypatch, no_network):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow >= 3.x refuses file stores without it
    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    monkeypatch.setenv("GIT_PYTHON_REFRESH", "quiet")
    quiet_warnings()


@pytest.fixture(scope="module")
def sqlite_uri(tmp_path_factory):
    """One SQLite store for the module: creating its tables (alembic migrations) takes seconds."""
    path = tmp_path_factory.mktemp("mlflow_sqlite") / "mlflow.db"
    return f"sqlite:///{path}"


def _history(client, run_id, key):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def _direct_calls(logger):
    logger.log_hyperparams({"lr": 0.1, "layers": [64, 64], "opt": {"name": "adam", "betas": (0.9, 0.99)}})
    logger.log_hyperparams(Namespace(batch_size=32))
    logger.log_metrics({"loss": torch.tensor(0.5), "acc": 0.25}, step=0)
    logger.log_metrics({"loss": 0.125, "epoch": 0}, step=3)
    logger.finalize("success")


@pytest.mark.parametrize("store", ["file", "sqlite"])
def test_mlflow_logger_round_trip_through_mlflow_client(tmp_path, store, sqlite_uri):
    if store == "file":
        logger = MLFlowLogger(experiment_name="exp", run_name="run-a", save_dir=str(tmp_path / "mlruns"),
                              tags={"team": "x"}, prefix="train")
        assert logger.save_dir == str(tmp_path / "mlruns")
        uri = f"file:{tmp_path / 'mlruns'}"
    else:
        logger = MLFlowLogger(experiment_name=f"exp-{tmp_path.name}", run_name="run-a", tracking_uri=sqlite_uri,
                              tags={"team": "x"}, prefix="train", artifact_location=str(tmp_path / "artifacts"))
        assert logger.save_dir is None  # not a local folder store
        uri = sqlite_uri
    _direct_calls(logger)

    client = MlflowClient(uri)
    run = client.get_run(logger.version)
    assert logger.version == logger.run_id == run.info.run_id
    assert logger.name == logger.experiment_id == run.info.experiment_id
    assert client.get_experiment(run.info.experiment_id).name == ("exp" if store == "file" else f"exp-{tmp_path.name}")
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.runName"] == "run-a" and run.data.tags["team"] == "x"
    assert run.data.params == {
        "lr": "0.1", "layers": "[64, 64]", "opt/name": "adam", "opt/betas": "(0.9, 0.99)", "batch_size": "32"
    }
    assert _history(client, run.info.run_id, "train-loss") == [(0, 0.5), (3, 0.125)]
    assert _history(client, run.info.run_id, "train-acc") == [(0, 0.25)]
    assert _history(client, run.info.run_id, "train-epoch") == [(3, 0.0)]


def test_mlflow_logger_calls_store_what_lightnings_store(tmp_path):
    ours = MLFlowLogger(experiment_name="ours", save_dir=str(tmp_path / "mlruns"))
    theirs = pl.loggers.MLFlowLogger(experiment_name="theirs", save_dir=str(tmp_path / "mlruns"))
    for logger in (ours, theirs):
        _direct_calls(logger)
        logger.log_metrics({"bad:name!": 1.0, "text": "x"}, step=1)  # both clean the name and drop the string
    client = MlflowClient(f"file:{tmp_path / 'mlruns'}")
    a, b = client.get_run(ours.run_id), client.get_run(theirs.run_id)
    assert a.data.params == b.data.params
    assert sorted(a.data.metrics) == sorted(b.data.metrics)
    for key in a.data.metrics:
        assert _history(client, a.info.run_id, key) == _history(client, b.info.run_id, key), key
    assert a.info.status == b.info.status


def _fit(framework, tmp_path, logger, log_model_dir, **ckpt):
    Model = build(framework)
    checkpoint = framework.callbacks.ModelCheckpoint(dirpath=str(log_model_dir), monitor="val_loss", **ckpt)
    trainer = framework.Trainer(**trainer_kwargs(tmp_path, logger=logger, callbacks=[checkpoint], max_epochs=3,
                                                 enable_checkpointing=True, log_every_n_steps=2))
    trainer.fit(Model(n_train=32, batch_size=8))
    return checkpoint


def _artifact_files(client, run_id, path=None):
    out = []
    for info in client.list_artifacts(run_id, path):
        out += _artifact_files(client, run_id, info.path) if info.is_dir else [info.path]
    return sorted(out)


@pytest.mark.parametrize("log_model", ["all", True])
def test_mlflow_fit_logs_metrics_params_and_checkpoints_like_lightning(tmp_path, log_model):
    store = tmp_path / "mlruns"
    ours = MLFlowLogger(experiment_name="ours", save_dir=str(store), log_model=log_model)
    theirs = pl.loggers.MLFlowLogger(experiment_name="theirs", save_dir=str(store), log_model=log_model)
    ours_ckpt = _fit(fastlight, tmp_path / "a", ours, tmp_path / "ckpt_ours", save_top_k=2)
    theirs_ckpt = _fit(pl, tmp_path / "b", theirs, tmp_path / "ckpt_theirs", save_top_k=2)

    client = MlflowClient(f"file:{store}")
    a, b = client.get_run(ours.run_id), client.get_run(theirs.run_id)
    assert a.info.status == b.info.status == "FINISHED"
    assert a.data.params == b.data.params and a.data.params["hidden"] == "16"
    assert sorted(a.data.metrics) == sorted(b.data.metrics) == ["epoch", "train_loss", "val_loss"]
    for key in a.data.metrics:
        ha, hb = _history(client, a.info.run_id, key), _history(client, b.info.run_id, key)
        assert [s for s, _ in ha] == [s for s, _ in hb], key
        assert [v for _, v in ha] == pytest.approx([v for _, v in hb], rel=1e-5, abs=1e-6), key

    # the same checkpoints, each in a folder named after it, with its file, metadata.yaml and aliases.txt
    files_a, files_b = _artifact_files(client, a.info.run_id), _artifact_files(client, b.info.run_id)
    assert files_a == files_b and files_a
    best = os.path.splitext(os.path.basename(ours_ckpt.best_model_path))[0]
    assert f"{best}/{best}.ckpt" in files_a
    local = client.download_artifacts(a.info.run_id, best, str(tmp_path / "dl"))
    with open(os.path.join(local, "metadata.yaml")) as fp:
        meta = yaml.safe_load(fp)
    assert meta["original_filename"] == f"{best}.ckpt"
    assert meta["score"] == pytest.approx(ours_ckpt.best_model_score.item())
    assert meta["Checkpoint"]["monitor"] == "val_loss" and meta["Checkpoint"]["save_top_k"] == 2
    with open(os.path.join(local, "aliases.txt")) as fp:
        assert fp.read() == str(["latest", "best"])
    state = torch.load(os.path.join(local, f"{best}.ckpt"), weights_only=False)
    assert state["global_step"] == torch.load(ours_ckpt.best_model_path, weights_only=False)["global_step"]
    assert theirs_ckpt.best_model_path  # Lightning's run kept checkpoints too


def test_mlflow_fit_into_sqlite_store(tmp_path, sqlite_uri):
    # a database store keeps artifacts in ./mlruns unless the experiment says where
    logger = MLFlowLogger(experiment_name=f"fit-{tmp_path.name}", tracking_uri=sqlite_uri, log_model="all",
                          artifact_location=str(tmp_path / "artifacts"))
    ckpt = _fit(fastlight, tmp_path, logger, tmp_path / "ckpt", save_top_k=1)
    client = MlflowClient(sqlite_uri)
    run = client.get_run(logger.run_id)
    assert run.info.status == "FINISHED"
    assert set(run.data.metrics) == {"epoch", "train_loss", "val_loss"}
    assert [s for s, _ in _history(client, run.info.run_id, "val_loss")] == [3, 7, 11]  # 4 batches a epoch
    best = os.path.splitext(os.path.basename(ckpt.best_model_path))[0]
    assert f"{best}/{best}.ckpt" in _artifact_files(client, run.info.run_id)
    assert (tmp_path / "artifacts" / run.info.run_id / "artifacts" / best / f"{best}.ckpt").is_file()


def test_mlflow_logger_without_any_log_call_creates_no_run(tmp_path):
    logger = MLFlowLogger(experiment_name="unused", save_dir=str(tmp_path / "mlruns"))
    logger.finalize("success")
    client = MlflowClient(f"file:{tmp_path / 'mlruns'}")
    assert client.get_experiment_by_name("unused") is None
    assert not client.search_runs([e.experiment_id for e in client.search_experiments()])


def test_mlflow_failed_fit_marks_the_run_failed(tmp_path):
    logger = MLFlowLogger(save_dir=str(tmp_path / "mlruns"))
    logger.log_metrics({"x": 1.0}, step=0)
    logger.finalize("failed")
    assert MlflowClient(f"file:{tmp_path / 'mlruns'}").get_run(logger.run_id).info.status == "FAILED"


def test_mlflow_refused_file_store_error_names_the_way_out(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    try:
        MlflowClient(f"file:{tmp_path / 'probe'}")
    except mlflow.exceptions.MlflowException:
        pass
    else:
        pytest.skip(f"mlflow {mlflow.__version__} opens file stores without opting in")
    with pytest.raises(mlflow.exceptions.MlflowException, match="sqlite:///mlflow.db.*MLFLOW_ALLOW_FILE_STORE|"
                                                                "MLFLOW_ALLOW_FILE_STORE.*sqlite"):
        MLFlowLogger(save_dir=str(tmp_path / "mlruns"))


def test_mlflow_logger_pickled_for_spawned_workers_keeps_logging_to_the_same_run(tmp_path):
    import pickle

    logger = MLFlowLogger(save_dir=str(tmp_path / "mlruns"))
    logger.log_metrics({"a": 1.0}, step=0)
    copy = pickle.loads(pickle.dumps(logger))
    copy.log_metrics({"a": 2.0}, step=1)
    assert copy.run_id == logger.run_id
    assert _history(MlflowClient(f"file:{tmp_path / 'mlruns'}"), logger.run_id, "a") == [(0, 1.0), (1, 2.0)]
