"""NeptuneLogger on the neptune client's local modes: "debug" (read back through the run object's fetch API) and
"offline" (the operations queued on disk under .neptune/, read back with the client's own DiskQueue and Operation
classes, i.e. what `neptune sync` would upload).

pytorch_lightning 2.6.4+ has no working NeptuneLogger to compare with (its class raises: Neptune's hosted service
was shut down), so these tests check the run layout of Lightning <= 2.6.1's logger: "<prefix>/<metric>" series,
"<prefix>/hyperparams", "<prefix>/model/checkpoints/<name>"."""
import glob
import os
import threading
from argparse import Namespace
from pathlib import Path

import pytest
import torch

import fastlight
from fastlight.loggers import NeptuneLogger

from ._parity_helpers import build, quiet_warnings, trainer_kwargs
from .test_loggers_optional import no_network  # noqa: F401  (fixture)

neptune = pytest.importorskip("neptune")

QUIET_RUN = dict(capture_stdout=False, capture_stderr=False, capture_hardware_metrics=False,
                 capture_traceback=False, git_ref=False, source_files=[])


@pytest.fixture(autouse=True)
def _neptune_local(tmp_path, monkeypatch, no_network):
    monkeypatch.chdir(tmp_path)  # offline runs go to ./.neptune
    for var in ("NEPTUNE_API_TOKEN", "NEPTUNE_PROJECT", "NEPTUNE_MODE"):
        monkeypatch.delenv(var, raising=False)
    quiet_warnings()


def read_offline_run(root):
    """Operations of the one offline run under `root`/.neptune, with the client's DiskQueue reader:
    {"path/to/attr": [operation, ...]} in the order they were made."""
    from neptune.core.components.queue.disk_queue import DiskQueue
    from neptune.internal.operation import Operation

    (run_dir,) = glob.glob(os.path.join(root, ".neptune", "offline", "run__*"))
    queue = DiskQueue(Path(run_dir), to_dict=lambda op: op.to_dict(), from_dict=Operation.from_dict,
                      lock=threading.RLock())
    ops = {}
    while True:
        batch = queue.get_batch(1000)
        if not batch:
            break
        for element in batch:
            ops.setdefault("/".join(element.obj.path), []).append(element.obj)
    queue.close()
    return ops


def _series(ops, path):
    return [(v.step, v.value) for op in ops.get(path, []) for v in getattr(op, "values", [])]


def _last_value(ops, path):
    return ops[path][-1].value


def test_neptune_logger_debug_mode_round_trip():
    logger = NeptuneLogger(mode="debug", name="run-a", **QUIET_RUN)
    logger.log_hyperparams({"lr": 0.1, "layers": [64, 64], "act": torch.nn.ReLU, "opt": {"name": "adam"}})
    logger.log_hyperparams(Namespace(batch_size=32))
    logger.log_metrics({"loss": torch.tensor(0.5), "acc": 0.25}, step=0)
    logger.log_metrics({"loss": 0.125}, step=3)
    logger.finalize("success")
    run = logger.experiment
    assert logger.name == "run-a" and logger.version == run["sys/id"].fetch()
    # assigning a dict to a namespace adds to it: both calls are kept; unsupported values as strings
    assert run["training/hyperparams"].fetch() == {
        "lr": 0.1, "layers": "[64, 64]", "act": "ReLU", "opt": {"name": "adam"}, "batch_size": 32
    }
    assert run["training/loss"].fetch_values()["value"].tolist() == [0.5, 0.125]
    assert run["training/acc"].fetch_last() == 0.25
    assert run["training/status"].fetch() == "success"
    run.stop()
    logger.log_metrics({"loss": 1.0}, step=4)  # a stopped run: logging is skipped, no error


def test_neptune_logger_offline_round_trip(tmp_path):
    logger = NeptuneLogger(mode="offline", prefix="exp", **QUIET_RUN)
    logger.log_hyperparams({"lr": 0.1, "act": torch.nn.ReLU, "opt": {"name": "adam", "betas": (0.9, 0.99)}})
    logger.log_metrics({"loss": 0.5, "acc": 0.25}, step=0)
    logger.log_metrics({"loss": 0.125}, step=3)
    logger.finalize("success")
    assert (logger.name, logger.version) == ("offline-name", "OFFLINE")
    assert logger.save_dir == os.path.join(str(tmp_path), ".neptune")
    logger.run.stop()

    ops = read_offline_run(tmp_path)
    assert _series(ops, "exp/loss") == [(0, 0.5), (3, 0.125)]
    assert _series(ops, "exp/acc") == [(0, 0.25)]
    assert _last_value(ops, "exp/hyperparams/lr") == 0.1
    assert _last_value(ops, "exp/hyperparams/act") == "ReLU"
    assert _last_value(ops, "exp/hyperparams/opt/name") == "adam"
    assert _last_value(ops, "exp/hyperparams/opt/betas") == "(0.9, 0.99)"
    assert _last_value(ops, "exp/status") == "success"
    assert _last_value(ops, "source_code/integrations/fastlight")


def test_neptune_fit_uploads_kept_checkpoints_and_drops_replaced_ones(tmp_path):
    logger = NeptuneLogger(mode="offline", **QUIET_RUN)
    Model = build(fastlight)
    checkpoint = fastlight.callbacks.ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), monitor="val_loss",
                                                     save_top_k=1, filename="{epoch}")
    trainer = fastlight.Trainer(**trainer_kwargs(tmp_path, logger=logger, callbacks=[checkpoint], max_epochs=3,
                                                 enable_checkpointing=True, log_every_n_steps=2))
    trainer.fit(Model(n_train=32, batch_size=8))
    logger.run.stop()

    ops = read_offline_run(tmp_path)
    assert [s for s, _ in _series(ops, "training/val_loss")] == [3, 7, 11]
    assert [s for s, _ in _series(ops, "training/train_loss")] == [1, 3, 5, 7, 9, 11]
    assert _last_value(ops, "training/hyperparams/hidden") == 16
    uploads = {path: op for path, op_list in ops.items() for op in op_list if type(op).__name__ == "UploadFile"}
    best = os.path.splitext(os.path.basename(checkpoint.best_model_path))[0]
    assert f"training/model/checkpoints/{best}" in uploads
    assert uploads[f"training/model/checkpoints/{best}"].file_path == checkpoint.best_model_path
    assert _last_value(ops, "training/model/best_model_path") == checkpoint.best_model_path
    assert _last_value(ops, "training/model/best_model_score") == pytest.approx(checkpoint.best_model_score.item())
    # every checkpoint that was uploaded and later replaced by a better one was deleted from the run again
    deleted = {path for path, op_list in ops.items() for op in op_list if type(op).__name__ == "DeleteAttribute"}
    assert set(uploads) - deleted == {f"training/model/checkpoints/{best}"}


def test_neptune_logger_checks_its_arguments():
    run = neptune.init_run(mode="debug", **QUIET_RUN)
    with pytest.raises(ValueError, match="neptune.Run"):
        NeptuneLogger(run="not a run")
    with pytest.raises(ValueError, match="cannot be given"):
        NeptuneLogger(run=run, name="x")
    logger = NeptuneLogger(run=run["finetune"], prefix="")  # a namespace handler of an existing run
    logger.log_metrics({"loss": 1.0}, step=0)
    assert run["finetune/loss"].fetch_last() == 1.0  # under the handler's namespace
    run.stop()


def test_neptune_model_summary_is_uploaded():
    logger = NeptuneLogger(mode="debug", **QUIET_RUN)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    logger.log_model_summary(model, max_depth=1)
    assert logger.run.exists("training/model/summary")
    logger.run.stop()
