"""Checkpoint files: atomic writes that survive SIGKILL, safe loads that refuse pickled code, clear errors."""
import argparse
import datetime
import enum
import os
import pathlib
import random
import signal
import time

import pytest
import torch

from fastlight.utilities.checkpoint_io import (
    CheckpointError,
    TorchCheckpointIO,
    UnsafeCheckpointError,
    _user_safe_globals,
    add_safe_globals,
    atomic_save,
    atomic_symlink,
    load_checkpoint,
    remove_checkpoint,
)
from fastlight.utilities import AttributeDict


class Color(enum.Enum):
    RED = "red"


class Payload:
    """Unpickling this runs a shell command: the classic malicious checkpoint."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Custom:
    def __init__(self, x=1):
        self.x = x


def test_atomic_save_round_trip_and_no_temp_left(tmp_path):
    ckpt = {"state_dict": {"w": torch.arange(4.0)}, "epoch": 3}
    atomic_save(ckpt, tmp_path / "sub" / "a.ckpt")
    loaded = load_checkpoint(tmp_path / "sub" / "a.ckpt")
    assert torch.equal(loaded["state_dict"]["w"], ckpt["state_dict"]["w"]) and loaded["epoch"] == 3
    assert os.listdir(tmp_path / "sub") == ["a.ckpt"]
    # overwrite keeps one file, with the new content
    atomic_save({"epoch": 4}, tmp_path / "sub" / "a.ckpt")
    assert load_checkpoint(tmp_path / "sub" / "a.ckpt")["epoch"] == 4
    assert os.listdir(tmp_path / "sub") == ["a.ckpt"]
    # mode follows the umask like a plain open(), not mkstemp's 0600
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / "sub" / "a.ckpt").st_mode & 0o777 == 0o666 & ~umask


def test_atomic_save_failure_leaves_old_file_and_no_temp(tmp_path):
    path = tmp_path / "a.ckpt"
    atomic_save({"epoch": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle this")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        atomic_save({"epoch": 2, "bad": Unpicklable()}, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["a.ckpt"]


def test_atomic_save_refuses_directory(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        atomic_save({}, tmp_path)


def test_atomic_symlink_and_remove(tmp_path):
    atomic_save({"epoch": 1}, tmp_path / "epoch=1.ckpt")
    atomic_symlink(tmp_path / "epoch=1.ckpt", tmp_path / "last.ckpt")
    assert os.readlink(tmp_path / "last.ckpt") == "epoch=1.ckpt"  # relative: the folder can move
    atomic_save({"epoch": 2}, tmp_path / "epoch=2.ckpt")
    atomic_symlink(tmp_path / "epoch=2.ckpt", tmp_path / "last.ckpt")
    assert load_checkpoint(tmp_path / "last.ckpt")["epoch"] == 2
    remove_checkpoint(tmp_path / "last.ckpt")
    remove_checkpoint(tmp_path / "last.ckpt")  # already gone: fine
    assert sorted(os.listdir(tmp_path)) == ["epoch=1.ckpt", "epoch=2.ckpt"]
    # a link in another folder is relative too (Lightning's ModelCheckpoint link)
    atomic_symlink(tmp_path / "epoch=2.ckpt", tmp_path / "links" / "last.ckpt")
    assert os.readlink(tmp_path / "links" / "last.ckpt") == os.path.join("..", "epoch=2.ckpt")
    assert load_checkpoint(tmp_path / "links" / "last.ckpt")["epoch"] == 2


def test_atomic_symlink_failure_leaves_no_temp_link(tmp_path):
    (tmp_path / "taken" / "inside").mkdir(parents=True)  # a link cannot replace a non-empty directory
    atomic_save({"epoch": 1}, tmp_path / "epoch=1.ckpt")
    with pytest.raises(OSError):
        atomic_symlink(tmp_path / "epoch=1.ckpt", tmp_path / "taken")
    assert sorted(os.listdir(tmp_path)) == ["epoch=1.ckpt", "taken"]
    assert os.listdir(tmp_path / "taken") == ["inside"]


def test_malicious_payload_refused_by_default(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": Payload(marker)}}, path)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert str(path) in msg and "system" in msg and "weights_only=False" in msg and "add_safe_globals" in msg
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(path, weights_only=True)
    assert not marker.exists()
    # the payload is real: the explicit opt-in runs it
    load_checkpoint(path, weights_only=False)
    assert marker.exists()


def test_allowlisted_types_load_safely(tmp_path):
    import numpy as np

    hp = {
        "ns": argparse.Namespace(a=1, b="x"),
        "path": pathlib.Path("/data/x"),
        "pure": pathlib.PurePosixPath("a/b"),
        "ad": AttributeDict(lr=0.1),
        "color": Color.RED,
        "fs": frozenset([1, 2]),
        "when": datetime.datetime(2024, 1, 2, 3, 4, 5),
        "delta": datetime.timedelta(seconds=3),
        "np": np.float64(0.25),
        "npi": np.int64(3),
        "dtype": torch.bfloat16,
        "device": torch.device("cpu"),
        "slice": slice(1, 5),
        "range": range(3),
    }
    atomic_save({"hyper_parameters": hp}, tmp_path / "a.ckpt")
    loaded = load_checkpoint(tmp_path / "a.ckpt")["hyper_parameters"]
    assert loaded == hp
    assert isinstance(loaded["ad"], AttributeDict) and loaded["ad"].lr == 0.1
    assert loaded["color"] is Color.RED


def test_lightning_attribute_dict_loads_safely_as_dict(tmp_path):
    from lightning_fabric.utilities.data import AttributeDict as LAD

    torch.save({"hyper_parameters": LAD(a=1)}, tmp_path / "a.ckpt")
    loaded = load_checkpoint(tmp_path / "a.ckpt")["hyper_parameters"]
    assert loaded == {"a": 1} and type(loaded) is dict  # the module's loader wraps hparams in AttributeDict again


def test_unknown_class_refused_then_allowed_by_opt_in(tmp_path):
    path = tmp_path / "a.ckpt"
    torch.save({"hyper_parameters": {"c": Custom(5)}}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"test_checkpoint_io\.Custom"):
        load_checkpoint(path)
    before = list(_user_safe_globals)
    try:
        add_safe_globals([Custom])
        assert load_checkpoint(path)["hyper_parameters"]["c"].x == 5
    finally:
        _user_safe_globals[:] = before
    assert load_checkpoint(path, weights_only=False)["hyper_parameters"]["c"].x == 5


def test_missing_truncated_corrupt_empty_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        load_checkpoint(tmp_path / "nope.ckpt")
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        load_checkpoint(tmp_path)
    good = tmp_path / "good.ckpt"
    atomic_save({"state_dict": {"w": torch.randn(1000)}}, good)
    data = good.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 5):
        bad = tmp_path / f"cut{cut}.ckpt"
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=f"cut{cut}.ckpt.*truncated or corrupt"):
            load_checkpoint(bad)
    # every truncation point gives CheckpointError (never a raw zip/pickle error)
    for cut in range(1, len(data), max(1, len(data) // 97)):
        bad = tmp_path / "cut.ckpt"
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="cut.ckpt"):
            load_checkpoint(bad)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="junk.ckpt"):
        load_checkpoint(junk)
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.ckpt.*empty"):
        load_checkpoint(empty)
    notdict = tmp_path / "t.ckpt"
    torch.save(torch.zeros(2), notdict)
    with pytest.raises(CheckpointError, match="t.ckpt holds a Tensor"):
        load_checkpoint(notdict)


def test_torch_checkpoint_io_interface(tmp_path):
    io = TorchCheckpointIO()
    io.save_checkpoint({"epoch": 1}, tmp_path / "x.ckpt")
    assert io.load_checkpoint(tmp_path / "x.ckpt", map_location="cpu")["epoch"] == 1
    io.remove_checkpoint(tmp_path / "x.ckpt")
    assert not (tmp_path / "x.ckpt").exists()
    with pytest.raises(TypeError, match="storage_options"):
        io.save_checkpoint({}, tmp_path / "y.ckpt", storage_options={"a": 1})


def _slow_torch_save(real_save):
    """torch.save that writes in small chunks with pauses: widens the window in which a kill lands mid-write, so the
    test would catch a non-atomic writer almost every round (checked by hand with a plain torch.save)."""
    import io

    def save(obj, f, *args, **kwargs):
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        data = buf.getvalue()
        own = isinstance(f, (str, os.PathLike))
        fp = open(f, "wb") if own else f
        try:
            for i in range(0, len(data), 1 << 16):
                fp.write(data[i : i + (1 << 16)])
                time.sleep(0.0005)
        finally:
            if own:
                fp.close()

    return save


def _writer_loop(folder):
    """Child: rotate checkpoints as top-k does (write new, then delete the oldest), a last link, as fast as it can."""
    torch.save = _slow_torch_save(torch.save)  # only in the forked child
    step = 0
    payload = torch.randn(256, 1024)  # 1 MiB: kills land mid-write often
    while True:
        ckpt = {"global_step": step, "state_dict": {"w": payload + step}}
        atomic_save(ckpt, os.path.join(folder, f"step={step}.ckpt"))
        atomic_save(ckpt, os.path.join(folder, "last.ckpt"))
        atomic_symlink(os.path.join(folder, f"step={step}.ckpt"), os.path.join(folder, "latest.ckpt"))
        if step >= 2:
            remove_checkpoint(os.path.join(folder, f"step={step - 2}.ckpt"))
        step += 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sigkill_at_random_moments_never_leaves_a_bad_checkpoint(tmp_path):
    rng = random.Random(1234)
    for round_ in range(6):
        folder = tmp_path / f"r{round_}"
        folder.mkdir()
        pid = os.fork()
        if pid == 0:  # child
            try:
                torch.set_num_threads(1)
                _writer_loop(str(folder))
            finally:
                os._exit(1)
        # let it write a few checkpoints, then kill it without warning
        deadline = time.time() + 20
        while not any(n.startswith("step=") for n in os.listdir(folder)) and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        names = [n for n in os.listdir(folder) if n.endswith(".ckpt")]
        assert names, "the writer never produced a checkpoint"
        for name in names:
            path = folder / name
            if os.path.islink(path) and not path.exists():
                continue  # a link to a file rotated away after the link was made: not a checkpoint file
            ckpt = load_checkpoint(path)
            step = ckpt["global_step"]
            assert torch.equal(ckpt["state_dict"]["w"][0, :3], ckpt["state_dict"]["w"][0, :3])
            if name.startswith("step="):
                assert name == f"step={step}.ckpt"
        # at most the one interrupted write is left as a temp file, never under a checkpoint name
        temps = [n for n in os.listdir(folder) if ".tmp-" in n]
        assert len(temps) <= 1 and all(not t.endswith(".ckpt") for t in temps)
