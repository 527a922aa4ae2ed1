"""Checkpoint files: crash-safe writes and loads that do not run pickled code unless asked to.

Writing: the checkpoint goes to a temporary file in the destination folder, is flushed and fsynced, then renamed over
the destination with os.replace (atomic on POSIX and Windows), and the folder is fsynced so the rename itself survives
a power loss. A process killed at any moment leaves either the old file or the new one under the checkpoint name,
never a truncated one (at worst a stray ".<name>.tmp-*" file). A write that fails (a full disk, an I/O error) leaves
the previous file as it was and raises CheckpointSaveError naming the file and the cause.

Loading: a file whose bytes were damaged after it was written is refused: torch's zip records carry a CRC-32 that
torch.load does not check, so `load_checkpoint` checks them first (one extra read of the file, about half the cost of
the load itself) and names the file and the damaged record.

Loading: `torch.load(weights_only=True)` with an allowlist of the types Lightning-style checkpoints legitimately hold
(hyperparameters of plain types, containers, AttributeDict, Namespace, pathlib paths, datetimes, slices, ranges,
enums already imported by the program, numpy scalars). Anything else is refused with an error naming the file and the offending
global, and explaining the two ways forward (allowlist the type, or pass weights_only=False for a trusted file).
"""
import argparse
import contextlib
import datetime
import enum
import os
import pathlib
import pickle
import sys
import uuid
import warnings
from typing import IO, Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import torch

from fastlight.utilities.attribute_dict import AttributeDict

_PATH = Union[str, os.PathLike]

__all__ = [
    "CheckpointError",
    "CheckpointSaveError",
    "TorchCheckpointIO",
    "UnsafeCheckpointError",
    "add_safe_globals",
    "atomic_save",
    "atomic_symlink",
    "load_checkpoint",
    "remove_checkpoint",
    "safe_globals_for_checkpoints",
]

TMP_MARKER = ".tmp-"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or not a checkpoint."""


class CheckpointSaveError(CheckpointError):
    """Writing a checkpoint failed; whatever was at the destination before is still there, unchanged.
    `filename` is the destination, `errno` the OS error number when the cause was an OSError (e.g. errno.ENOSPC)."""

    def __init__(self, message: str, filename: str, errno: Optional[int] = None) -> None:
        super().__init__(message)
        self.filename = filename
        self.errno = errno


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a python object outside the allowlist; loading it would run that object's pickled code."""


# --------------------------------------------------------------------------------------------------------------------
# allowlist
# --------------------------------------------------------------------------------------------------------------------
_user_safe_globals: List[Union[Callable, Tuple[Callable, str]]] = []


def add_safe_globals(objs: Iterable[Union[Callable, Tuple[Callable, str]]]) -> None:
    """Allow more classes/functions in checkpoints loaded by fastlight (e.g. a custom hparams class you trust)."""
    _user_safe_globals.extend(objs)


def _builtin_safe_globals() -> List[Union[Callable, Tuple[Callable, str]]]:
    allowed: List[Union[Callable, Tuple[Callable, str]]] = [
        argparse.Namespace,
        pathlib.PurePath,
        pathlib.PurePosixPath,
        pathlib.PureWindowsPath,
        pathlib.Path,
        pathlib.PosixPath,
        pathlib.WindowsPath,
        frozenset,
        slice,
        range,
        datetime.datetime,
        datetime.date,
        datetime.time,
        datetime.timedelta,
        datetime.timezone,
        AttributeDict,
        # Lightning's AttributeDict pickles as "new empty object, then SETITEMS", which torch's safe unpickler allows
        # only on a plain dict: it is rebuilt as a dict (the loader wraps hparams in AttributeDict again), and Lightning
        # need not be imported.
        (dict, "lightning_fabric.utilities.data.AttributeDict"),
        (dict, "lightning.fabric.utilities.data.AttributeDict"),
        (dict, "pytorch_lightning.utilities.parsing.AttributeDict"),
        (dict, "lightning.pytorch.utilities.parsing.AttributeDict"),
    ]
    np = sys.modules.get("numpy")
    if np is not None:  # numpy scalars in hparams (np.float64(0.1) and friends); only when numpy is already loaded
        core = getattr(np, "_core", None) or getattr(np, "core", None)
        scalar = getattr(getattr(core, "multiarray", None), "scalar", None)
        if scalar is not None:
            allowed.append(scalar)
            allowed.append((scalar, "numpy.core.multiarray.scalar"))
            allowed.append((scalar, "numpy._core.multiarray.scalar"))
        allowed.append(np.dtype)
        dtypes = getattr(np, "dtypes", None)
        if dtypes is not None:
            allowed.extend(
                getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType") and isinstance(getattr(dtypes, n), type)
            )
    return allowed


def _already_imported_enums(names: Iterable[str]) -> List[Tuple[type, str]]:
    """Enum classes named in a checkpoint whose module the program has already imported.

    Nothing is imported on the file's say-so: a module not yet in sys.modules stays unknown, so reading a file cannot
    trigger an import's side effects. An Enum is rebuilt by calling EnumClass(value), which only looks a member up.
    """
    found = []
    for name in names:
        obj: Any = None
        # qualname may be nested (Outer.Inner); walk module prefixes from the longest
        parts = name.split(".")
        for i in range(len(parts) - 1, 0, -1):
            module = sys.modules.get(".".join(parts[:i]))
            if module is None:
                continue
            obj = module
            for attr in parts[i:]:
                obj = getattr(obj, attr, None)
            break
        if isinstance(obj, type) and issubclass(obj, enum.Enum):
            found.append((obj, name))
    return found


def _global_name(entry: Union[Callable, Tuple[Callable, str]]) -> str:
    if isinstance(entry, tuple):
        return entry[1]
    return f"{entry.__module__}.{entry.__qualname__}"


def safe_globals_for_checkpoints() -> List[Union[Callable, Tuple[Callable, str]]]:
    """Everything fastlight allows when loading with weights_only=True, besides torch's own allowlist."""
    return _builtin_safe_globals() + list(_user_safe_globals)


# --------------------------------------------------------------------------------------------------------------------
# save
# --------------------------------------------------------------------------------------------------------------------
def _fsync_dir(folder: str) -> None:
    if os.name == "nt":  # directories cannot be opened for fsync on Windows; rename durability is the FS's job
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tmp_path_for(path: str) -> str:
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}{TMP_MARKER}{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def _replace_when_done(tmp: str, path: str) -> Iterator[None]:
    """Wrap the writing of `tmp` (created next to `path` by the caller, who owns it): when the block succeeds, rename
    `tmp` over `path` (atomic) and fsync the folder so the rename survives a power loss; when anything fails,
    remove `tmp` and leave `path` as it was."""
    try:
        yield
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(os.path.dirname(path))


def _open_for_write(fd: int) -> IO[bytes]:
    return os.fdopen(fd, "wb")  # tests put a failing writer here


def _os_error_in(err: BaseException) -> Optional[OSError]:
    """The OSError behind `err` (torch's writer wraps the file's errors in a RuntimeError)."""
    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, OSError):
            return err
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
        seen += 1
    return None


def atomic_save(checkpoint: Dict[str, Any], path: _PATH) -> None:
    """torch.save `checkpoint` to `path` so that `path` never holds a partial file, even if the process dies; a
    failed write raises CheckpointSaveError and leaves the previous file at `path` intact."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    if os.path.isdir(path):
        raise IsADirectoryError(f"Cannot save a checkpoint to {path}: it is a directory")
    tmp = _tmp_path_for(path)
    try:
        # O_EXCL: never write through a file or link someone else put there; 0o666 & ~umask like a plain open()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with _replace_when_done(tmp, path), _open_for_write(fd) as fp:
            torch.save(checkpoint, fp)
            fp.flush()
            os.fsync(fp.fileno())
    except Exception as err:
        os_error = _os_error_in(err)
        if os_error is not None and os_error.errno is not None:
            import errno as errno_names

            name = errno_names.errorcode.get(os_error.errno, str(os_error.errno))
            cause = f"{os_error.strerror or os.strerror(os_error.errno)} ({name})"
        else:
            cause = f"{type(err).__name__}: {err}"
        previous = "the previous checkpoint there is unchanged" if os.path.exists(path) else "no file was left there"
        raise CheckpointSaveError(f"Could not write checkpoint {path}: {cause}; {previous}.", path,
                                  os_error.errno if os_error is not None else None) from err


def atomic_symlink(target: _PATH, link_path: _PATH) -> None:
    """Point `link_path` at `target` with a relative link (as Lightning's ModelCheckpoint does: the folder can move),
    replacing an existing file or link atomically."""
    link_path = os.path.abspath(os.fspath(link_path))
    target = os.path.abspath(os.fspath(target))
    folder = os.path.dirname(link_path)
    os.makedirs(folder, exist_ok=True)
    rel_target = os.path.relpath(target, folder)
    tmp = _tmp_path_for(link_path)
    os.symlink(rel_target, tmp)
    with _replace_when_done(tmp, link_path):
        pass  # a link is complete once created


def remove_checkpoint(path: _PATH) -> None:
    """Delete a checkpoint file or link (a missing one is fine: another rank may have removed it)."""
    path = os.fspath(path)
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            import shutil

            shutil.rmtree(path)
        else:
            os.remove(path)
    except FileNotFoundError:
        pass


# --------------------------------------------------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------------------------------------------------
def _describe(source: Union[_PATH, IO[bytes]]) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else f"<{type(source).__name__}>"


def _unsafe_globals(source: Union[_PATH, IO[bytes]]) -> List[str]:
    try:
        if hasattr(source, "seek"):
            source.seek(0)  # type: ignore[union-attr]
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(source))  # reads, never executes
    except Exception:
        return []


_TRUE_VALUES = ("1", "y", "yes", "true")  # what torch.load accepts as "set" for its TORCH_FORCE_* variables


def _weights_only_from_env(weights_only: Optional[bool], name: str) -> Optional[bool]:
    """torch.load's environment overrides, applied the same way: TORCH_FORCE_WEIGHTS_ONLY_LOAD forces the safe load
    even over an explicit weights_only=False; TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD turns an unspecified weights_only into
    False (plain pickle), never an explicit True."""
    force = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "0").lower() in _TRUE_VALUES
    force_no = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "0").lower() in _TRUE_VALUES
    if force:
        return True
    if force_no and weights_only is None:
        warnings.warn(
            f"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set: loading {name} with weights_only=False (plain pickle, which"
            " runs code stored in the file). Only do this for checkpoints you trust.",
            UserWarning,
            stacklevel=3,
        )
        return False
    return weights_only


def load_checkpoint(
    path: Union[_PATH, IO[bytes]],
    map_location: Any = None,
    weights_only: Optional[bool] = None,
) -> Dict[str, Any]:
    """Load a checkpoint written by fastlight or Lightning.

    weights_only None/True: safe load (see the module docstring); an object outside the allowlist raises
    UnsafeCheckpointError. weights_only=False: plain pickle, which runs whatever code the file carries; only for files
    you trust. torch's TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 turns an unspecified weights_only into False, and
    TORCH_FORCE_WEIGHTS_ONLY_LOAD=1 forces the safe load, as they do for torch.load.
    """
    if isinstance(path, str) and path.startswith(("http://", "https://")):
        path = _download(path)
    name = _describe(path)
    if isinstance(path, (str, os.PathLike)):
        if not os.path.exists(path):
            raise FileNotFoundError(f"Checkpoint file not found: {name}")
        if os.path.isdir(path):
            raise IsADirectoryError(f"Checkpoint path {name} is a directory, not a checkpoint file")
        if os.path.getsize(path) == 0:
            raise CheckpointError(f"Checkpoint file {name} is empty (0 bytes): it was truncated or never written")
        _check_zip_records(os.fspath(path), name)
    weights_only = _weights_only_from_env(weights_only, name)
    if weights_only is False:
        return _torch_load(path, name, map_location, weights_only=False)

    allowed = safe_globals_for_checkpoints()
    try:
        with torch.serialization.safe_globals(allowed):
            return _torch_load(path, name, map_location, weights_only=True)
    except pickle.UnpicklingError as first_error:
        allowed_names = {_global_name(g) for g in allowed}
        unsafe = [g for g in _unsafe_globals(path) if g not in allowed_names]
        enums = _already_imported_enums(unsafe)
        blocked = [g for g in unsafe if g not in {n for _, n in enums}]
        if enums and not blocked:
            with torch.serialization.safe_globals(allowed + enums):
                return _torch_load(path, name, map_location, weights_only=True)
        if not blocked:
            # no disallowed global named: the pickle stream itself is damaged (or uses opcodes a safe load refuses)
            reason = str(first_error).strip().splitlines()[-1]
            raise CheckpointError(
                f"Checkpoint file {name} is truncated or corrupt and cannot be read safely: {reason}. If you wrote"
                " this file yourself and trust it, weights_only=False loads it with plain pickle."
            ) from first_error
        listed = ", ".join(blocked)
        raise UnsafeCheckpointError(
            f"Refusing to load {name} with weights_only=True: it contains python objects outside fastlight's allowlist"
            f" for checkpoints: {listed}. Loading them would run code stored in the file. If you trust the file and"
            " know these types, either allowlist them with"
            " `fastlight.utilities.checkpoint_io.add_safe_globals([YourClass])` (or"
            " torch.serialization.add_safe_globals), or load it with weights_only=False (e.g."
            " `Trainer.fit(..., weights_only=False)`, `Model.load_from_checkpoint(path, weights_only=False)`), which"
            " unpickles everything."
        ) from first_error


def _download(url: str) -> str:
    """The local copy of a checkpoint at an http(s) URL: downloaded once into torch.hub's cache folder
    (`$TORCH_HOME/hub/checkpoints/<file name>`, where Lightning's URL loading puts it too), then read as a file."""
    from urllib.parse import urlparse

    import torch.hub

    filename = os.path.basename(urlparse(url).path)
    if not filename:
        raise ValueError(f"Checkpoint URL {url!r} names no file (its path ends in '/').")
    folder = os.path.join(torch.hub.get_dir(), "checkpoints")
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, filename)
    if not os.path.exists(target):
        torch.hub.download_url_to_file(url, target, progress=False)
    return target


def _check_zip_records(path: str, name: str) -> None:
    """Verify the CRC-32 of every record of a zip-format torch file (legacy non-zip files are left to torch.load)."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
        raise CheckpointError(f"Checkpoint file {name} is damaged: {type(err).__name__}: {err}") from err
    if bad is not None:
        raise CheckpointError(
            f"Checkpoint file {name} is damaged: the record {bad!r} does not match its CRC-32 (its bytes changed"
            " after it was written). Use an earlier checkpoint."
        )


def _torch_load(path: Union[_PATH, IO[bytes]], name: str, map_location: Any, weights_only: bool) -> Dict[str, Any]:
    try:
        if hasattr(path, "seek"):
            path.seek(0)  # type: ignore[union-attr]
        checkpoint = torch.load(path, map_location=map_location, weights_only=weights_only)
    except pickle.UnpicklingError as err:
        if weights_only:
            raise  # load_checkpoint tells an unsafe object from a damaged file
        raise CheckpointError(f"Checkpoint file {name} is corrupt or not a torch checkpoint: {err}") from err
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError, AttributeError, TypeError) as err:
        if isinstance(err, (FileNotFoundError, PermissionError)):
            raise
        raise CheckpointError(
            f"Checkpoint file {name} is truncated or corrupt and cannot be read: {type(err).__name__}: {err}"
        ) from err
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"{name} holds a {type(checkpoint).__name__}, not a checkpoint dict")
    return checkpoint


class TorchCheckpointIO:
    """Lightning's CheckpointIO interface (save_checkpoint / load_checkpoint / remove_checkpoint) over the functions
    above; a Trainer or strategy can hold one and route every checkpoint file operation through it."""

    def save_checkpoint(self, checkpoint: Dict[str, Any], path: _PATH, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError(
                f"TorchCheckpointIO.save_checkpoint got storage_options={storage_options!r}, but it takes none;"
                " use a custom CheckpointIO to pass options to your storage."
            )
        atomic_save(checkpoint, path)

    def load_checkpoint(self, path: _PATH, map_location: Any = None, weights_only: Optional[bool] = None) -> Dict[str, Any]:
        return load_checkpoint(path, map_location=map_location, weights_only=weights_only)

    def remove_checkpoint(self, path: _PATH) -> None:
        remove_checkpoint(path)

    def teardown(self) -> None:
        pass
