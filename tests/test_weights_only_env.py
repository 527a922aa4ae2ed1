"""Checkpoint loading honours torch's environment overrides as torch.load and Lightning do: safe loading
(weights_only) stays the default, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 turns an unspecified weights_only into a plain
pickle load, an explicit weights_only=True stays safe, TORCH_FORCE_WEIGHTS_ONLY_LOAD=1 forces the safe load."""
import pytest
import torch

import fastlight
from fastlight.utilities.checkpoint_io import UnsafeCheckpointError, load_checkpoint


class Unlisted:
    """A harmless class outside the safe-load allowlist (as a user's config object in hparams would be)."""

    def __init__(self, x):
        self.x = x


def _fastlight_model_cls():
    class Net(fastlight.LightningModule):
        def __init__(self, cfg=None):
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(2, 2)

    return Net


def _lightning_model_cls():
    import pytorch_lightning as pl

    class Net(pl.LightningModule):
        def __init__(self, cfg=None):
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(2, 2)

    return Net


@pytest.fixture
def ckpt(tmp_path):
    path = tmp_path / "unlisted.ckpt"
    net = torch.nn.Linear(2, 2)
    torch.save({"state_dict": {f"layer.{k}": v for k, v in net.state_dict().items()}, "pytorch-lightning_version": "2.6.0",
                "hyper_parameters": {"cfg": Unlisted(3)}}, path)
    return path


@pytest.fixture(autouse=True)
def _no_torch_env(monkeypatch):
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
    monkeypatch.delenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", raising=False)


def test_safe_load_stays_the_default(ckpt):
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(ckpt)


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_force_no_weights_only_env_loads_with_pickle_when_unspecified(ckpt, monkeypatch, value):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", value)
    with pytest.warns(UserWarning, match="TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"):
        assert load_checkpoint(ckpt)["hyper_parameters"]["cfg"].x == 3
    with pytest.raises(UnsafeCheckpointError):  # an explicit weights_only=True is kept, as torch.load keeps it
        load_checkpoint(ckpt, weights_only=True)


def test_force_no_weights_only_env_value_zero_changes_nothing(ckpt, monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "0")
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(ckpt)


def test_force_weights_only_env_overrides_an_explicit_false(ckpt, monkeypatch):
    monkeypatch.setenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(ckpt, weights_only=False)


@pytest.mark.parametrize("env", [None, "1"])
def test_load_from_checkpoint_side_by_side_with_lightning(ckpt, monkeypatch, env):
    """Model.load_from_checkpoint without weights_only: refused by both by default, loaded by both under the env."""
    if env is not None:
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", env)
    outcomes = []
    for make in (_lightning_model_cls, _fastlight_model_cls):
        cls = make()
        try:
            with pytest.warns(UserWarning) if env else _nothing():
                model = cls.load_from_checkpoint(ckpt)
        except Exception as e:  # noqa: BLE001 (both raise pickle.UnpicklingError subclasses)
            import pickle

            assert isinstance(e, pickle.UnpicklingError), repr(e)
            outcomes.append("refused")
        else:
            assert model.hparams.cfg.x == 3
            outcomes.append("loaded")
    assert outcomes == (["refused", "refused"] if env is None else ["loaded", "loaded"])


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
