"""ModelCheckpoint: driven by the same scripted fit as Lightning's ModelCheckpoint, same files and same state."""
import math
import os
from datetime import timedelta

import pytest
import torch

from fastlight.callbacks import ModelCheckpoint
from fastlight.utilities.checkpoint_io import load_checkpoint

from .fake_trainer import FakeTrainer

pl_callbacks = pytest.importorskip("pytorch_lightning.callbacks")


def _module():
    m = torch.nn.Linear(2, 2)
    m.automatic_optimization = True
    return m


def run_fit(cb, trainer, val_losses, batches=4, train_loss=None, validate=True):
    """The hook order of a Lightning fit with validation at each epoch end (global_step moves before batch end)."""
    module = _module()
    cb.setup(trainer, module, "fit")
    cb.on_train_start(trainer, module)
    for epoch, val_loss in enumerate(val_losses):
        trainer.current_epoch = epoch
        for b in range(batches):
            trainer.set_last_batch(b == batches - 1)
            trainer.step()
            if train_loss is not None:
                trainer.callback_metrics["train_loss"] = torch.tensor(train_loss(trainer.global_step))
            cb.on_train_batch_end(trainer, module, None, None, b)
        if validate and trainer.num_val_batches:
            trainer.callback_metrics["val_loss"] = torch.tensor(val_loss)
            trainer.ran_validation()
            cb.on_validation_end(trainer, module)
        cb.on_train_epoch_end(trainer, module)
    cb.on_train_end(trainer, module)


def _snapshot(cb, trainer, folder):
    def base(p):
        return os.path.basename(p) if p else p

    def num(v):
        return None if v is None else float(v)

    return {
        "files": sorted(os.listdir(folder)) if os.path.isdir(folder) else [],
        "saved": trainer.saved,
        "best_model_path": base(cb.best_model_path),
        "best_model_score": num(cb.best_model_score),
        "kth_best_model_path": base(cb.kth_best_model_path),
        "kth_value": num(cb.kth_value),
        "best_k_models": {base(k): num(v) for k, v in cb.best_k_models.items()},
        "last_model_path": base(cb.last_model_path),
        "current_score": num(cb.current_score),
        "links": {n: os.readlink(os.path.join(folder, n)) for n in os.listdir(folder) if os.path.islink(os.path.join(folder, n))}
        if os.path.isdir(folder)
        else {},
    }


def compare_with_lightning(tmp_path, kwargs, val_losses, trainer_kwargs=None, **run_kwargs):
    results = []
    for name, cls in (("fl", ModelCheckpoint), ("pl", pl_callbacks.ModelCheckpoint)):
        folder = tmp_path / name
        cb = cls(dirpath=folder, **kwargs)
        trainer = FakeTrainer(tmp_path, callbacks=[cb], **(trainer_kwargs or {}))
        run_fit(cb, trainer, val_losses, **run_kwargs)
        results.append((cb, trainer, _snapshot(cb, trainer, folder)))
    (fl_cb, _, ours), (pl_cb, _, theirs) = results
    assert ours == theirs
    assert fl_cb.state_key == pl_cb.state_key
    return fl_cb, ours


VAL = [0.5, 0.3, 0.4, 0.2, 0.6, 0.1]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(monitor="val_loss", save_top_k=2),
        dict(monitor="val_loss", save_top_k=2, mode="max"),
        dict(monitor="val_loss", save_top_k=-1),
        dict(monitor="val_loss", save_top_k=0, save_last=True),
        dict(monitor="val_loss", save_top_k=1, save_last=True),
        dict(monitor="val_loss", save_top_k=3, save_last="link", filename="{epoch}-{val_loss:.2f}"),
        dict(monitor="val_loss", save_top_k=2, filename="best", enable_version_counter=True),
        dict(monitor="val_loss", save_top_k=2, filename="{epoch:03d}-{val_loss:.3f}", auto_insert_metric_name=False),
        dict(save_top_k=1),
        dict(save_top_k=-1, every_n_epochs=2),
        dict(save_top_k=1, save_last=True, save_weights_only=True),
        dict(monitor="val_loss", save_top_k=2, save_on_train_epoch_end=True),
    ],
    ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()),
)
def test_epoch_checkpoints_match_lightning(tmp_path, kwargs):
    compare_with_lightning(tmp_path, kwargs, VAL)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(every_n_train_steps=3, save_top_k=-1),
        dict(every_n_train_steps=2, save_top_k=1, save_last=True),
        dict(every_n_train_steps=3, monitor="train_loss", save_top_k=2, filename="{step}-{train_loss:.3f}"),
        dict(every_n_train_steps=3, monitor="val_loss", save_top_k=2),  # deferred until validation has the metric
    ],
    ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()),
)
def test_step_checkpoints_match_lightning(tmp_path, kwargs):
    compare_with_lightning(tmp_path, kwargs, VAL[:4], train_loss=lambda s: abs(math.sin(s)))


def test_nan_score_is_ranked_worst_like_lightning(tmp_path):
    _, snap = compare_with_lightning(tmp_path, dict(monitor="val_loss", save_top_k=2), [0.5, float("nan"), 0.4, 0.3])
    assert all(math.isfinite(v) for v in snap["best_k_models"].values())


def test_version_counter_avoids_overwriting_existing_files(tmp_path):
    # a file from an earlier run with the same name
    (tmp_path / "fl").mkdir()
    (tmp_path / "pl").mkdir()
    for d in ("fl", "pl"):
        (tmp_path / d / "epoch=0-step=4.ckpt").write_bytes(b"old")
    with pytest.warns(UserWarning, match="exists and is not empty"):
        _, snap = compare_with_lightning(tmp_path, dict(save_top_k=-1), VAL[:2])
    assert "epoch=0-step=4-v1.ckpt" in snap["files"]
    assert (tmp_path / "fl" / "epoch=0-step=4.ckpt").read_bytes() == b"old"


def test_top_k_rotation_keeps_previous_best_until_new_file_is_in_place(tmp_path):
    """At the moment a top-k file is written, every file it replaces must still exist (deletion comes after)."""
    cb = ModelCheckpoint(dirpath=tmp_path / "ck", monitor="val_loss", save_top_k=1)
    trainer = FakeTrainer(tmp_path, callbacks=[cb])
    events = []
    real_save = trainer.save_checkpoint

    def save(filepath, weights_only=False):
        events.append(("before", sorted(os.listdir(tmp_path / "ck")) if (tmp_path / "ck").exists() else []))
        real_save(filepath, weights_only)

    trainer.save_checkpoint = save
    run_fit(cb, trainer, [0.5, 0.3, 0.4, 0.2])
    # each save of a new best happened while the previous best was still on disk
    assert events[1] == ("before", ["epoch=0-step=4.ckpt"])
    assert events[2] == ("before", ["epoch=1-step=8.ckpt"])
    assert sorted(os.listdir(tmp_path / "ck")) == ["epoch=3-step=16.ckpt"]


def test_state_dict_round_trip_and_lightning_format(tmp_path):
    fl_cb, _ = compare_with_lightning(tmp_path, dict(monitor="val_loss", save_top_k=2, save_last=True), VAL)
    state = fl_cb.state_dict()
    assert list(state) == [
        "monitor", "best_model_score", "best_model_path", "current_score", "dirpath",
        "best_k_models", "kth_best_model_path", "kth_value", "last_model_path",
    ]
    fresh = ModelCheckpoint(dirpath=tmp_path / "fl", monitor="val_loss", save_top_k=2, save_last=True)
    fresh.load_state_dict(state)
    assert fresh.best_model_path == fl_cb.best_model_path and fresh.best_k_models == fl_cb.best_k_models
    assert fresh.last_model_path == fl_cb.last_model_path and float(fresh.kth_value) == float(fl_cb.kth_value)
    # a checkpoint written through trainer.save_checkpoint holds the state under the Lightning state_key, loadable
    ckpt = load_checkpoint(fl_cb.last_model_path)
    assert fl_cb.state_key in ckpt["callbacks"]
    # a different dirpath restores only best_model_path, with Lightning's warning
    moved = ModelCheckpoint(dirpath=tmp_path / "elsewhere", monitor="val_loss", save_top_k=2)
    with pytest.warns(UserWarning, match="dirpath has changed"):
        moved.load_state_dict(state)
    assert moved.best_model_path == fl_cb.best_model_path and moved.best_k_models == {}


def test_state_from_lightning_callback_loads(tmp_path):
    pl_cb = pl_callbacks.ModelCheckpoint(dirpath=tmp_path / "x", monitor="val_loss", save_top_k=2)
    run_fit(pl_cb, FakeTrainer(tmp_path, callbacks=[pl_cb]), VAL)
    ours = ModelCheckpoint(dirpath=tmp_path / "x", monitor="val_loss", save_top_k=2)
    ours.load_state_dict(pl_cb.state_dict())
    assert ours.best_model_path == pl_cb.best_model_path and ours.kth_best_model_path == pl_cb.kth_best_model_path


@pytest.mark.parametrize(
    "template,metrics,auto,expected",
    [
        (None, dict(epoch=3, step=10), True, "epoch=3-step=10.ckpt"),
        ("{epoch:03d}", dict(epoch=5), True, "epoch=005.ckpt"),
        ("{epoch}-{val_loss:.2f}", dict(epoch=2, val_loss=0.123456), True, "epoch=2-val_loss=0.12.ckpt"),
        ("epoch={epoch}-validation_loss={val_loss:.2f}", dict(epoch=2, val_loss=0.123456), False, "epoch=2-validation_loss=0.12.ckpt"),
        ("{missing:d}", {}, True, "missing=0.ckpt"),
        ("{epoch}-{epoch_test}", dict(epoch=1, epoch_test=7), True, "epoch=1-epoch_test=7.ckpt"),
        ("{val/loss:.1f}", {"val/loss": 0.25}, True, "val/loss=0.2.ckpt"),
        ("{a.b}", {"a.b": 3}, True, "a.b=3.ckpt"),
    ],
)
def test_format_checkpoint_name_matches_lightning(tmp_path, template, metrics, auto, expected):
    ours = ModelCheckpoint(dirpath=tmp_path, filename=template, auto_insert_metric_name=auto)
    theirs = pl_callbacks.ModelCheckpoint(dirpath=tmp_path, filename=template, auto_insert_metric_name=auto)
    m = {k: torch.tensor(v) for k, v in metrics.items()}
    assert ours.format_checkpoint_name(dict(m)) == theirs.format_checkpoint_name(dict(m))
    assert os.path.relpath(ours.format_checkpoint_name(dict(m)), tmp_path) == expected
    assert ours.format_checkpoint_name(dict(m), ver=2).endswith("-v2.ckpt")


def test_dirpath_resolution_follows_first_logger(tmp_path):
    from fastlight.loggers import CSVLogger

    cb = ModelCheckpoint()
    logger = CSVLogger(tmp_path / "logs", name="exp", version=3)
    cb.setup(FakeTrainer(tmp_path, loggers=[logger]), _module(), "fit")
    assert cb.dirpath == os.path.join(tmp_path, "logs", "exp", "version_3", "checkpoints")
    cb = ModelCheckpoint()
    cb.setup(FakeTrainer(tmp_path), _module(), "fit")
    assert cb.dirpath == os.path.join(tmp_path, "checkpoints")


def test_find_last_checkpoints(tmp_path):
    cb = ModelCheckpoint(dirpath=tmp_path, save_last=True)
    for n in ("last.ckpt", "last-v1.ckpt", "epoch=0.ckpt", "lastly.txt"):
        (tmp_path / n).write_bytes(b"x")
    assert cb._find_last_checkpoints(FakeTrainer(tmp_path)) == {str(tmp_path / "last.ckpt"), str(tmp_path / "last-v1.ckpt")}


def test_no_saves_outside_fit_sanity_check_or_fast_dev_run(tmp_path):
    for overrides in (dict(sanity_checking=True), dict(fast_dev_run=True)):
        cb = ModelCheckpoint(dirpath=tmp_path / "x", save_last=True)
        trainer = FakeTrainer(tmp_path, callbacks=[cb], **overrides)
        run_fit(cb, trainer, [0.1])
        assert [s for s in trainer.saved if not s[0].startswith("last")] == []
    cb = ModelCheckpoint(dirpath=tmp_path / "y")
    trainer = FakeTrainer(tmp_path, callbacks=[cb])
    trainer.state.fn = "validate"
    run_fit(cb, trainer, [0.1])
    assert trainer.saved == []


def test_train_time_interval_saves_when_time_passed(tmp_path):
    cb = ModelCheckpoint(dirpath=tmp_path / "t", train_time_interval=timedelta(seconds=0), save_top_k=-1)
    trainer = FakeTrainer(tmp_path, callbacks=[cb])
    run_fit(cb, trainer, [0.1], batches=3)
    assert [s[0] for s in trainer.saved] == ["epoch=0-step=1.ckpt", "epoch=0-step=2.ckpt", "epoch=0-step=3.ckpt"]


def test_save_on_exception(tmp_path):
    cb = ModelCheckpoint(dirpath=tmp_path / "e", save_on_exception=True)
    trainer = FakeTrainer(tmp_path, callbacks=[cb], global_step=7)
    cb.on_exception(trainer, _module(), RuntimeError("boom"))
    assert trainer.saved == [("epoch=0-step=7.ckpt", False)]


def test_missing_monitor_after_validation_is_an_error(tmp_path):
    cb = ModelCheckpoint(dirpath=tmp_path / "m", monitor="nope")
    trainer = FakeTrainer(tmp_path, callbacks=[cb])
    trainer.ran_validation()
    trainer.global_step = 3
    cb.setup(trainer, _module(), "fit")
    with pytest.raises(KeyError, match="could not find the monitored key"):
        cb.on_train_epoch_end(trainer, _module())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(save_top_k=-2), "save_top_k"),
        (dict(mode="avg"), "mode"),
        (dict(every_n_train_steps=-1), "every_n_train_steps"),
        (dict(every_n_epochs=-1), "every_n_epochs"),
        (dict(every_n_epochs=1, every_n_train_steps=2), "mutually exclusive"),
        (dict(save_top_k=3), "No quantity for top_k"),
        (dict(save_last="yes"), "save_last"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelCheckpoint(**kwargs)


def test_to_yaml(tmp_path):
    cb, _ = compare_with_lightning(tmp_path, dict(monitor="val_loss", save_top_k=2), VAL)
    cb.to_yaml()
    import yaml

    data = yaml.safe_load((tmp_path / "fl" / "best_k_models.yaml").read_text())
    assert sorted(os.path.basename(k) for k in data) == sorted(os.path.basename(k) for k in cb.best_k_models)


@pytest.mark.parametrize("trainer_kwargs", [dict(val_check_interval=0.5), dict(check_val_every_n_epoch=2), dict(num_val_batches=0)])
@pytest.mark.parametrize("kwargs", [dict(monitor="val_loss", save_top_k=2, save_last=True), dict(save_top_k=-1, save_last="link")])
def test_save_after_validation_or_at_epoch_end_like_lightning(tmp_path, trainer_kwargs, kwargs):
    if trainer_kwargs.get("num_val_batches") == 0 and "monitor" in kwargs:
        kwargs = dict(kwargs, monitor="train_loss")
    compare_with_lightning(tmp_path, kwargs, VAL[:4], trainer_kwargs=trainer_kwargs, train_loss=lambda s: 1.0 / s)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sigkill_during_top_k_rotation_leaves_loadable_files_and_keeps_k(tmp_path):
    """A child rotates top-2 checkpoints (plus a last link) every step, writes slowed down so kills land mid-write;
    after SIGKILL every *.ckpt loads, and once two checkpoints existed there are always at least two."""
    import random
    import signal
    import time

    from .test_checkpoint_io import _slow_torch_save

    rng = random.Random(3)
    for round_ in range(4):
        folder = tmp_path / f"r{round_}"
        pid = os.fork()
        if pid == 0:
            try:
                torch.save = _slow_torch_save(torch.save)
                cb = ModelCheckpoint(dirpath=folder, monitor="loss", save_top_k=2, every_n_train_steps=1,
                                     save_last="link", filename="{step}")
                trainer = FakeTrainer(tmp_path, callbacks=[cb], num_val_batches=0)
                trainer.lightning_module = _module()
                cb.setup(trainer, trainer.lightning_module, "fit")
                cb.on_train_start(trainer, trainer.lightning_module)
                gen = random.Random(round_)
                while True:
                    trainer.step()
                    # mostly improving, so that nearly every step rotates the top-k
                    trainer.callback_metrics["loss"] = torch.tensor(1.0 / trainer.global_step + 0.01 * gen.random())
                    cb.on_train_batch_end(trainer, trainer.lightning_module, None, None, 0)
            finally:
                os._exit(1)
        deadline = time.time() + 20
        while time.time() < deadline and not (folder.exists() and any(n.startswith("step=") for n in os.listdir(folder))):
            time.sleep(0.005)
        time.sleep(rng.uniform(0.05, 0.3))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        steps = sorted(n for n in os.listdir(folder) if n.startswith("step=") and n.endswith(".ckpt"))
        for name in steps:
            assert load_checkpoint(folder / name)["global_step"] == int(name[len("step="):-len(".ckpt")])
        link = folder / "last.ckpt"
        if os.path.lexists(link) and link.exists():
            load_checkpoint(link)
        if max(int(n[5:-5]) for n in steps) >= 2:
            assert len(steps) >= 2, steps  # the file leaving the top-k goes only after the new one is in place


def test_python_number_metrics_are_accepted(tmp_path):
    cb = ModelCheckpoint(dirpath=tmp_path / "n", monitor="score", save_top_k=1, filename="{score:.1f}")
    trainer = FakeTrainer(tmp_path, callbacks=[cb], num_val_batches=0)
    cb.setup(trainer, _module(), "fit")
    for epoch, score in enumerate([0.5, 0.25]):
        trainer.current_epoch = epoch
        trainer.step()
        trainer.callback_metrics["score"] = score
        cb.on_train_epoch_end(trainer, _module())
    assert os.listdir(tmp_path / "n") == ["score=0.2.ckpt"] and float(cb.best_model_score) == 0.25
