"""CometLogger in Comet's offline mode: the archive `OfflineExperiment.end()` writes is read back with Comet's own
reader (`comet offline --csv`, comet_ml.scripts.comet_offline) and, for steps and epochs, its messages.json.

pytorch_lightning 2.6's CometLogger(online=False) records nothing: it also passes `disabled=True` to Comet
(Lightning issue #21617, fix proposed in PR #21619). The side-by-side test drops that flag for Lightning's logger,
as the fix does, and compares the two archives."""
import csv
import glob
import json
import os
import zipfile
from argparse import Namespace

import pytest

import fastlight
from fastlight.loggers import CometLogger

from ._parity_helpers import build, quiet_warnings, trainer_kwargs
from .test_loggers_optional import no_network  # noqa: F401  (fixture)

os.environ["COMET_ERROR_TRACKING_ENABLE"] = "false"  # read when comet_ml is imported: no error reports sent
comet_ml = pytest.importorskip("comet_ml")
pl = pytest.importorskip("pytorch_lightning")
from comet_ml.scripts import comet_offline  # noqa: E402


@pytest.fixture(autouse=True)
def _comet_offline(monkeypatch, no_network):
    # nothing that would look up or contact a host: host details, error reports, announcements, git, system metrics
    for key in ("AUTO_LOG_ENV_HOST", "AUTO_LOG_ENV_DETAILS", "AUTO_LOG_ENV_CPU", "AUTO_LOG_ENV_GPU",
                "AUTO_LOG_ENV_NETWORK", "AUTO_LOG_ENV_DISK", "AUTO_LOG_GIT_METADATA", "AUTO_LOG_GIT_PATCH",
                "ERROR_TRACKING_ENABLE", "AUTO_LOG_CO2", "AUTO_LOG_CODE", "AUTO_LOG_CLI_ARGUMENTS"):
        monkeypatch.setenv(f"COMET_{key}", "false")
    monkeypatch.setenv("COMET_DISABLE_ANNOUNCEMENT", "true")
    monkeypatch.setenv("COMET_DISABLE_AUTO_LOGGING", "1")
    quiet_warnings()


def read_archive(directory, tmp_path):
    """End-of-run archive in `directory`, through Comet's reader: {section: [(name, value), ...]} plus the metric
    messages (name, value, step, epoch) in the order they were logged."""
    (archive,) = glob.glob(os.path.join(directory, "*.zip"))
    out = tmp_path / f"{os.path.basename(archive)}.csv"
    comet_offline.main(["--csv", "--level", "detail", "--output", str(out), archive])
    sections = {}
    with open(out, newline="") as fp:
        for row in csv.DictReader(fp):
            sections.setdefault(row["section"], []).append((row["name"], row["value"]))
    with zipfile.ZipFile(archive) as zf:
        experiment = json.loads(zf.read("experiment.json"))
        messages = [json.loads(line) for line in zf.read("messages.json").decode().splitlines()]
    metrics = [(m["metricName"], m["metricValue"], m["step"], m["epoch"])
               for m in (msg["payload"]["metric"] for msg in messages if msg["type"] == "metric_msg")
               if not m["metricName"].startswith("sys.") and m["metricName"] != "process duration"]
    return sections, metrics, experiment


def _params(sections):
    return {name: value for name, value in sections.get("param", []) if not name.startswith("curr_")}


def test_comet_logger_offline_round_trip(tmp_path):
    logger = CometLogger(online=False, offline_directory=str(tmp_path / "comet"), project="proj", name="run-a")
    assert logger.save_dir == str(tmp_path / "comet") and logger.name == "proj"
    key = logger.version
    assert key == logger.experiment.get_key() and len(key) == 32
    logger.log_hyperparams({"lr": 0.1, "opt": {"name": "adam", "momentum": 0.9}})
    logger.log_hyperparams(Namespace(batch_size=32))
    logger.log_metrics({"loss": 0.5, "acc": 0.25, "epoch": 0}, step=0)
    logger.log_metrics({"loss": 0.125, "epoch": 1}, step=3)
    logger.finalize("success")
    logger.experiment.end()  # finalize keeps the experiment open, as Lightning's; end() writes the archive

    sections, metrics, experiment = read_archive(tmp_path / "comet", tmp_path)
    assert experiment["project_name"] == "proj" and experiment["offline_id"] == key
    assert _params(sections) == {"lr": "0.1", "opt|name": "adam", "opt|momentum": "0.9", "batch_size": "32"}
    assert sorted(metrics) == [("acc", 0.25, 0, 0), ("loss", 0.125, 3, 1), ("loss", 0.5, 0, 0)]
    others = dict(zip([v for n, v in sections["data"] if n == "key"], [v for n, v in sections["data"] if n == "value"]))
    assert others["Created from"] == "pytorch-lightning" and others["Name"] == "run-a"


def test_comet_old_argument_names_still_work(tmp_path, caplog):
    logger = CometLogger(offline=True, save_dir=str(tmp_path / "c"), project_name="proj", experiment_name="n")
    assert logger.save_dir == str(tmp_path / "c") and logger.name == "proj"
    assert type(logger.experiment).__name__ == "OfflineExperiment"  # offline=True means online=False
    assert "deprecated" in caplog.text
    logger.experiment.end()


@pytest.fixture
def lightning_offline_fixed(monkeypatch):
    """Lightning's CometLogger with its offline bug removed: drop `disabled=True` from the experiment config."""
    real = comet_ml.ExperimentConfig

    def config(**kwargs):
        kwargs.pop("disabled", None)
        return real(**kwargs)

    monkeypatch.setattr(comet_ml, "ExperimentConfig", config)


def _fit(framework, root, logger):
    Model = build(framework)
    trainer = framework.Trainer(**trainer_kwargs(root, logger=logger, max_epochs=2, log_every_n_steps=2))
    trainer.fit(Model(n_train=32, batch_size=8))
    logger.experiment.end()


def test_comet_fit_archive_matches_lightnings(tmp_path, lightning_offline_fixed):
    ours = CometLogger(online=False, offline_directory=str(tmp_path / "ours"), project="proj")
    _fit(fastlight, tmp_path / "a", ours)
    theirs = pl.loggers.CometLogger(online=False, offline_directory=str(tmp_path / "theirs"), project="proj")
    _fit(pl, tmp_path / "b", theirs)

    sections_a, metrics_a, _ = read_archive(tmp_path / "ours", tmp_path)
    sections_b, metrics_b, _ = read_archive(tmp_path / "theirs", tmp_path)
    assert _params(sections_a) == _params(sections_b) and _params(sections_a)["hidden"] == "16"
    assert [(n, s, e) for n, _, s, e in metrics_a] == [(n, s, e) for n, _, s, e in metrics_b]
    assert [m[1] for m in metrics_a] == pytest.approx([m[1] for m in metrics_b], rel=1e-5, abs=1e-6)
    assert {n for n, *_ in metrics_a} == {"train_loss", "val_loss"}
    assert sorted({s for _, _, s, _ in metrics_a}) == [1, 3, 5, 7]
