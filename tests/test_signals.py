"""Graceful stops and save faults: SIGTERM (finish the batch, save `last`, teardown, exit 0; SLURM requeue), SIGINT /
KeyboardInterrupt (Lightning's behaviour, the OnExceptionCheckpoint resuming exactly), a full disk or a write error
during a checkpoint (the previous file intact, an error naming the file and the cause, top-k never empty), a damaged
file refused on load. The 2-rank DDP signal tests are in test_exact_resume.py (they share its DDP reference run).
"""
import errno
import io
import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest
import torch

import fastlight
from fastlight.utilities import checkpoint_io
from fastlight.utilities.checkpoint_io import CheckpointError, CheckpointSaveError, atomic_save, load_checkpoint

import _resume_helpers as H
from _resume_helpers import TIMEOUT, forkserver, reference, run_child, wait_for_step


@pytest.fixture(scope="module")
def ctx():
    return forkserver()


@pytest.fixture(scope="module")
def expected(ctx, tmp_path_factory):
    return reference(ctx, "unfused", tmp_path_factory.mktemp("ref"))


def records(root):
    return [json.loads(p.read_text()) for p in Path(root).glob("record-*.json")]


def stderr_of(root, pid):
    return (Path(root) / f"stderr-{pid}.txt").read_text()


def signal_mid_fit(ctx, root, signum, at_step=7, env=None, extra=None):
    os.makedirs(root, exist_ok=True)
    counter = ctx.Value("i", 0)
    p = run_child(ctx, "unfused", str(root), False, counter=counter, delay=0.02, env=env, extra=extra)
    wait_for_step(p, counter, at_step, time.monotonic() + TIMEOUT)
    os.kill(p.pid, signum)
    p.join(TIMEOUT)
    assert p.exitcode is not None, "the run did not stop"
    return p


def test_sigterm_finishes_the_batch_saves_last_and_exits_0_then_resumes_bit_identical(tmp_path, ctx, expected):
    root = tmp_path / "run"
    p = signal_mid_fit(ctx, root, signal.SIGTERM)
    assert p.exitcode == 0, stderr_of(root, p.pid)[-3000:]
    (rec,) = records(root)
    # Lightning's observable side: on_exception with SIGTERMException, status interrupted
    assert rec["on_exception"] == "SIGTERMException" and rec["status"] == "interrupted"
    last = load_checkpoint(root / "steps" / "last.ckpt")
    assert last["global_step"] == rec["step_at_exception"] < 18  # saved after the last finished batch
    assert "Traceback" not in stderr_of(root, p.pid)
    p = run_child(ctx, "unfused", str(root), True)
    p.join(TIMEOUT)
    assert p.exitcode == 0
    assert H.same_weights(torch.load(root / "final.pt"), expected)


def test_sigint_stops_like_lightning_and_the_on_exception_checkpoint_resumes_bit_identical(tmp_path, ctx, expected):
    root = tmp_path / "run"
    p = signal_mid_fit(ctx, root, signal.SIGINT, extra="on_exception_checkpoint")
    assert p.exitcode == 1  # Lightning's exit status after a KeyboardInterrupt
    (rec,) = records(root)
    assert rec["on_exception"] == "KeyboardInterrupt" and rec["status"] == "interrupted"
    err = stderr_of(root, p.pid)
    assert err.count("Detected KeyboardInterrupt, attempting graceful shutdown") == 1
    assert "Traceback" not in err
    exc = root / "exc" / "on_exception.ckpt"
    assert load_checkpoint(exc)["global_step"] == rec["step_at_exception"]
    resumed = tmp_path / "resumed"
    os.makedirs(resumed)
    p = run_child(ctx, "unfused", str(resumed), True, ckpt_path=str(exc))
    p.join(TIMEOUT)
    assert p.exitcode == 0
    assert H.same_weights(torch.load(resumed / "final.pt"), expected)


def test_slurm_requeue_signal_saves_last_and_requeues_with_scontrol(tmp_path, ctx):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "scontrol_calls.txt"
    fake = bindir / "scontrol"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "1",
           "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_JOB_NAME": "train"}
    root = tmp_path / "run"
    p = signal_mid_fit(ctx, root, signal.SIGUSR1, at_step=4, env=env)  # SLURMEnvironment's requeue signal
    assert p.exitcode == 0, stderr_of(root, p.pid)[-3000:]
    assert calls.read_text().split() == ["requeue", "4242"]
    assert (root / "steps" / "last.ckpt").exists()


def test_keyboard_interrupt_in_training_step_matches_lightning(tmp_path):
    pl = pytest.importorskip("pytorch_lightning")
    outcome = {}
    for framework in (fastlight, pl):
        seen = []

        class Stop(framework.Callback):
            def on_exception(self, trainer, pl_module, exception):
                seen.append(("callback", type(exception).__name__))

        class Net(framework.LightningModule):
            def __init__(self):
                super().__init__()
                self.layer = torch.nn.Linear(2, 1)

            def training_step(self, batch, batch_idx):
                if batch_idx == 2:
                    raise KeyboardInterrupt
                return self.layer(batch[0]).sum()

            def on_exception(self, exception):
                seen.append(("module", type(exception).__name__))

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

        trainer = framework.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                                    default_root_dir=str(tmp_path / framework.__name__),
                                    callbacks=[Stop(), framework.callbacks.OnExceptionCheckpoint(tmp_path / "exc" /
                                                                                               framework.__name__)])
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 2)), batch_size=2)
        with pytest.raises(SystemExit) as info:
            trainer.fit(Net(), loader)
        ckpt = load_checkpoint(tmp_path / "exc" / framework.__name__ / "on_exception.ckpt")
        outcome[framework.__name__] = (info.value.code, str(trainer.state.status).split(".")[-1].lower(),
                                       trainer.interrupted, [s for s in seen if s[0] == "callback"], ckpt["global_step"])
        if framework is fastlight:  # a module that defines on_exception gets it too (Lightning 2.6 has no such hook)
            assert ("module", "KeyboardInterrupt") in seen
    assert outcome["fastlight"] == outcome["pytorch_lightning"]


# ------------------------------------------------------------------------------------------------ save faults
class _FullDisk(io.RawIOBase):
    """A file that takes `room` bytes, then fails like a full disk."""

    def __init__(self, fd, room):
        self._f, self._room = os.fdopen(fd, "wb"), room

    def writable(self):
        return True

    def write(self, b):
        if len(b) > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(b)
        return self._f.write(b)

    def fileno(self):
        return self._f.fileno()

    def flush(self):
        self._f.flush()

    def close(self):
        self._f.close()
        super().close()


def full_disk(monkeypatch, room=64):
    monkeypatch.setattr(checkpoint_io, "_open_for_write", lambda fd: _FullDisk(fd, room))


def test_enospc_during_a_save_keeps_the_previous_file_and_names_file_and_cause(tmp_path, monkeypatch):
    path = tmp_path / "model.ckpt"
    atomic_save({"state_dict": {"w": torch.ones(3)}}, path)
    full_disk(monkeypatch)
    with pytest.raises(CheckpointSaveError) as info:
        atomic_save({"state_dict": {"w": torch.zeros(1000)}}, path)
    message = str(info.value)
    assert str(path) in message and "ENOSPC" in message and "No space left on device" in message
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert torch.equal(load_checkpoint(path)["state_dict"]["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["model.ckpt"]  # no temporary file left behind


@pytest.mark.parametrize("monitor", [None, "step"])
def test_top_k_rotation_never_leaves_zero_good_checkpoints_when_the_disk_fills(tmp_path, monkeypatch, monitor):
    class FillDisk(fastlight.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 3:
                full_disk(monkeypatch)

    trainer, model, train, _ = H.build("unfused", str(tmp_path))
    model.interval = "step"
    keep = 1 if monitor is None else 2  # monitor "step", mode "max": every new step enters the top-k
    ck = fastlight.callbacks.ModelCheckpoint(dirpath=tmp_path / "topk", every_n_train_steps=1, save_top_k=keep,
                                             monitor=monitor, mode="max")
    trainer = fastlight.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                                callbacks=[FillDisk(), ck], fused=False)
    with pytest.raises(CheckpointSaveError, match="ENOSPC"):
        trainer.fit(model, train)
    files = sorted(os.listdir(tmp_path / "topk"))
    assert len(files) == keep and not any(f.startswith(".") for f in files)  # no temporary file either
    assert sorted(load_checkpoint(tmp_path / "topk" / f)["global_step"] for f in files) == [1, 2][-keep:]
    # the bookkeeping names files that exist
    assert os.path.exists(ck.best_model_path) and all(os.path.exists(p) for p in ck.best_k_models)


def test_damaged_checkpoint_is_refused_with_an_error_naming_the_file(tmp_path):
    path = tmp_path / "model.ckpt"
    atomic_save({"state_dict": {"w": torch.randn(2000)}, "epoch": 1}, path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the tensor data: torch.load alone would not notice
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="CRC") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
