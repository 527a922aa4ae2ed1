"""Loggers write the same files as Lightning's for the same calls."""
import csv
import os
import warnings
from argparse import Namespace

import pytest
import torch
import yaml

from fastlight.core.saving import load_hparams_from_yaml, save_hparams_to_yaml
from fastlight.loggers import CSVLogger, DummyLogger, Logger, TensorBoardLogger, rank_zero_experiment
from fastlight.utilities.rank_zero import rank_zero_only

pl_loggers = pytest.importorskip("pytorch_lightning.loggers")


def _read(path):
    with open(path) as fp:
        return fp.read()


def _csv_calls(logger):
    logger.log_hyperparams({"lr": 0.1, "layers": [64, 64], "name": "mlp", "nested": {"a": 1}})
    logger.log_metrics({"train_loss": torch.tensor(0.5), "epoch": 0}, step=0)
    logger.log_metrics({"train_loss": torch.tensor(0.25), "epoch": 0}, step=1)
    logger.save()
    # a new key after the first save: Lightning rewrites the header
    logger.log_metrics({"val_loss": torch.tensor(0.75, dtype=torch.float64), "epoch": 0}, step=1)
    logger.log_metrics({"train_loss": 0.125, "acc": torch.tensor(3), "epoch": 1}, step=2)
    logger.log_hyperparams(Namespace(batch_size=32))
    logger.finalize("success")


def test_csv_logger_files_match_lightning(tmp_path):
    ours = CSVLogger(tmp_path / "ours", name="exp")
    theirs = pl_loggers.CSVLogger(tmp_path / "theirs", name="exp")
    _csv_calls(ours)
    _csv_calls(theirs)
    assert os.path.relpath(ours.log_dir, tmp_path / "ours") == os.path.relpath(theirs.log_dir, tmp_path / "theirs")
    assert os.path.relpath(ours.log_dir, tmp_path / "ours") == os.path.join("exp", "version_0")
    for fname in ("metrics.csv", "hparams.yaml"):
        assert _read(os.path.join(ours.log_dir, fname)) == _read(os.path.join(theirs.log_dir, fname)), fname
    with open(os.path.join(ours.log_dir, "metrics.csv")) as fp:
        rows = list(csv.DictReader(fp))
    assert [r["step"] for r in rows] == ["0", "1", "1", "2"]
    assert rows[0]["val_loss"] == "" and rows[2]["val_loss"] == "0.75"


def test_csv_logger_flushes_every_n_steps_like_lightning(tmp_path):
    for cls, root in ((CSVLogger, tmp_path / "ours"), (pl_loggers.CSVLogger, tmp_path / "theirs")):
        logger = cls(root, flush_logs_every_n_steps=2)
        logger.log_metrics({"a": 1.0}, step=0)
        assert not os.path.exists(os.path.join(logger.log_dir, "metrics.csv"))
        logger.log_metrics({"a": 2.0}, step=1)  # (1 + 1) % 2 == 0: written
        assert os.path.exists(os.path.join(logger.log_dir, "metrics.csv"))
    assert _read(tmp_path / "ours/lightning_logs/version_0/metrics.csv") == _read(
        tmp_path / "theirs/lightning_logs/version_0/metrics.csv"
    )


def test_csv_logger_versions_auto_increment_and_custom_names(tmp_path):
    for i in range(3):
        logger = CSVLogger(tmp_path)
        logger.log_metrics({"x": 1.0}, step=0)
        logger.save()
        assert logger.version == i
    os.makedirs(tmp_path / "lightning_logs" / "version_junk")
    assert CSVLogger(tmp_path).version == 3
    assert CSVLogger(tmp_path, version="run_a").log_dir == os.path.join(tmp_path, "lightning_logs", "run_a")
    assert CSVLogger(tmp_path, name=None, version=5).log_dir == os.path.join(tmp_path, "", "version_5")
    assert CSVLogger(tmp_path, prefix="p").LOGGER_JOIN_CHAR == "-"


def test_csv_logger_prefix_and_tensor_values(tmp_path):
    logger = CSVLogger(tmp_path, prefix="fit")
    logger.log_metrics({"a": torch.tensor(1.5), "b": torch.tensor(2.5), "c": torch.tensor(7)}, step=4)
    logger.save()
    with open(os.path.join(logger.log_dir, "metrics.csv")) as fp:
        rows = list(csv.DictReader(fp))
    assert rows == [{"fit-a": "1.5", "fit-b": "2.5", "fit-c": "7", "step": "4"}]


def test_csv_logger_rejects_non_scalar_tensor(tmp_path):
    logger = CSVLogger(tmp_path)
    with pytest.raises(ValueError, match="'v' must be a scalar"):
        logger.log_metrics({"v": torch.ones(3)}, step=0)


def test_csv_logger_bad_flush_argument():
    with pytest.raises(ValueError, match="flush_logs_every_n_steps"):
        CSVLogger("x", flush_logs_every_n_steps=0)


def test_experiment_is_dummy_off_rank_zero(tmp_path, monkeypatch):
    logger = CSVLogger(tmp_path)
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    exp = logger.experiment
    assert type(exp).__name__ == "DummyExperiment"
    exp.anything(1, 2)
    exp[0].more()
    exp["k"] = 1
    logger.log_metrics({"a": 1.0}, step=0)  # rank_zero_only: nothing happens
    logger.finalize("success")
    assert not os.path.exists(tmp_path / "lightning_logs")


def test_custom_logger_subclass_contract():
    class MyLogger(Logger):
        def __init__(self):
            self.rows = []

        @property
        def name(self):
            return "mine"

        @property
        def version(self):
            return 0

        @property
        @rank_zero_experiment
        def experiment(self):
            return self

        def log_metrics(self, metrics, step=None):
            self.rows.append((step, dict(metrics)))

        def log_hyperparams(self, params, *args, **kwargs):
            pass

    logger = MyLogger()
    logger.log_metrics({"a": 1}, 3)
    logger.finalize("success")
    assert logger.rows == [(3, {"a": 1})] and logger.log_dir is None and logger.save_dir is None
    assert logger.group_separator == "/"
    with pytest.raises(TypeError):
        Logger()
    DummyLogger().whatever(1)


@pytest.mark.parametrize("use_omegaconf", [True, False])
def test_hparams_yaml_with_and_without_omegaconf_as_lightning(tmp_path, use_omegaconf):
    """Where omegaconf is installed, Lightning writes hparams.yaml with OmegaConf (keys in the order given, configs
    resolved, the user's config left unresolved) and reads it back as a DictConfig; `use_omegaconf=False` (or no
    omegaconf) is the plain sorted dump and a dict. A value omegaconf cannot hold falls back to the plain dump."""
    omegaconf = pytest.importorskip("omegaconf")
    from pytorch_lightning.core.saving import load_hparams_from_yaml as pl_load
    from pytorch_lightning.core.saving import save_hparams_to_yaml as pl_save

    config = omegaconf.OmegaConf.create({"width": 8, "depth": "${width}"})
    # (without omegaconf a DictConfig would be dumped as a python object neither framework can load back)
    cases = [{"lr": 0.1, "batch_size": 32, "model": config if use_omegaconf else {"width": 8}, "layers": [4, 2]},
             {"zeta": 1, "alpha": "cpu", "ids": {3, 1}}]  # a set: omegaconf cannot hold it, the fallback
    for i, hparams in enumerate(cases):
        ours, theirs = tmp_path / f"ours{i}.yaml", tmp_path / f"theirs{i}.yaml"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            save_hparams_to_yaml(ours, hparams, use_omegaconf=use_omegaconf)
            pl_save(theirs, hparams, use_omegaconf=use_omegaconf)
        assert _read(ours) == _read(theirs), (i, _read(ours), _read(theirs))
        loaded, expected = load_hparams_from_yaml(ours, use_omegaconf), pl_load(theirs, use_omegaconf)
        assert type(loaded) is type(expected) and loaded == expected
    assert omegaconf.OmegaConf.to_container(config)["depth"] == "${width}"  # still unresolved


def test_hparams_yaml_round_trip_and_lightning_compat(tmp_path):
    from pytorch_lightning.core.saving import load_hparams_from_yaml as pl_load
    from pytorch_lightning.core.saving import save_hparams_to_yaml as pl_save

    import enum

    class Color(enum.Enum):
        RED = 1

    hp = {"lr": 1e-3, "layers": [1, 2], "name": "x", "flag": True, "color": Color.RED, "t": (1, 2), "none": None}
    save_hparams_to_yaml(tmp_path / "a.yaml", hp)
    pl_save(tmp_path / "b.yaml", hp)
    assert _read(tmp_path / "a.yaml") == _read(tmp_path / "b.yaml")
    assert load_hparams_from_yaml(tmp_path / "b.yaml") == pl_load(tmp_path / "a.yaml")
    assert load_hparams_from_yaml(tmp_path / "a.yaml")["color"] == "RED"
    save_hparams_to_yaml(tmp_path / "c.yaml", Namespace(a=1))
    assert load_hparams_from_yaml(tmp_path / "c.yaml") == {"a": 1}
    with pytest.warns(RuntimeWarning, match="Missing"):
        assert load_hparams_from_yaml(tmp_path / "missing.yaml") == {}
    with pytest.raises(RuntimeError, match="Missing folder"):
        save_hparams_to_yaml(tmp_path / "no" / "such.yaml", {"a": 1})


def test_hparams_yaml_refuses_python_object_tags(tmp_path):
    (tmp_path / "evil.yaml").write_text("a: !!python/object/apply:os.system ['echo pwned > %s']\n" % (tmp_path / "p"))
    with pytest.raises(ValueError, match="evil.yaml"):
        load_hparams_from_yaml(tmp_path / "evil.yaml")
    assert not (tmp_path / "p").exists()


def _tb_calls(logger):
    logger.log_hyperparams({"lr": 0.1, "opt": {"name": "sgd", "momentum": 0.9}, "layers": [4, 2]})
    for step in range(3):
        logger.log_metrics({"train_loss": torch.tensor(1.0 / (step + 1)), "acc": 0.5 * step}, step=step)
    logger.log_metrics({"grouped": {"a": 1.0, "b": 2.0}}, step=3)
    logger.finalize("success")


def _scalars(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(log_dir)
    acc.Reload()
    tags = acc.Tags()
    return {t: [(e.step, round(e.value, 6)) for e in acc.Scalars(t)] for t in tags["scalars"]}, acc


def test_tensorboard_logger_event_files_match_lightning(tmp_path):
    ours = TensorBoardLogger(tmp_path / "ours", name="tb")
    theirs = pl_loggers.TensorBoardLogger(tmp_path / "theirs", name="tb")
    _tb_calls(ours)
    _tb_calls(theirs)
    assert os.path.relpath(ours.log_dir, tmp_path / "ours") == os.path.join("tb", "version_0")
    ours_scalars, acc = _scalars(ours.log_dir)
    theirs_scalars, _ = _scalars(theirs.log_dir)
    assert ours_scalars == theirs_scalars
    assert ours_scalars["train_loss"] == [(0, 1.0), (1, 0.5), (2, 0.333333)]
    assert ours_scalars["hp_metric"] == [(0, -1.0)]  # step None is recorded as 0 by SummaryWriter
    # the hparams plugin data is there (TensorBoard's HPARAMS tab)
    assert "_hparams_/experiment" in acc.Tags()["tensors"] or acc.PluginTagToContent("hparams")
    assert _read(os.path.join(ours.log_dir, "hparams.yaml")) == _read(os.path.join(theirs.log_dir, "hparams.yaml"))
    # add_scalars writes one sub-run folder per key, as under Lightning
    def layout(d):
        return sorted(n for n in os.listdir(d) if not n.startswith("events."))

    assert layout(ours.log_dir) == layout(theirs.log_dir) == ["grouped_a", "grouped_b", "hparams.yaml"]


def test_tensorboard_logger_versions_sub_dir_and_prefix(tmp_path):
    first = TensorBoardLogger(tmp_path)
    first.log_metrics({"a": 1.0}, step=0)
    first.finalize("success")
    second = TensorBoardLogger(tmp_path, sub_dir="fold1", prefix="p", default_hp_metric=False)
    assert second.version == 1
    assert second.log_dir == os.path.join(tmp_path, "lightning_logs", "version_1", "fold1")
    second.log_hyperparams({"lr": 1})
    second.log_metrics({"b": torch.tensor(2.0)}, step=5)
    second.finalize("success")
    scalars, _ = _scalars(second.log_dir)
    assert scalars == {"p-b": [(5, 2.0)]}  # no hp_metric placeholder
    with pytest.raises(ValueError, match="'p-bad'"):
        second.log_metrics({"bad": "text"}, step=0)


def test_tensorboard_log_graph(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    logger = TensorBoardLogger(tmp_path, log_graph=True)
    with pytest.warns(UserWarning, match="example_input_array"):
        logger.log_graph(model)
    logger.log_graph(model, torch.zeros(1, 3))
    logger.finalize("success")
    _, acc = _scalars(logger.log_dir)
    assert acc.Graph() is not None


def test_import_fastlight_loggers_does_not_import_tensorboard():
    import subprocess
    import sys

    code = "import sys, fastlight.loggers; assert 'tensorboard' not in sys.modules and 'torch.utils.tensorboard' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
