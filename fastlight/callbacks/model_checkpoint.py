"""ModelCheckpoint: save the model periodically, keep the top-k by a monitored metric and/or the last one.

Semantics follow Lightning 2.6 (file names, when saves happen, what state is kept); every file goes through
`trainer.save_checkpoint`, which writes atomically, and in top-k rotation the file leaving the top-k is deleted only
after the new one is in place.
"""
import os
import re
import shutil
import time
from copy import deepcopy
from datetime import timedelta
from pathlib import Path
from typing import Any, Dict, Optional, Set, Union
from weakref import proxy

import torch
from torch import Tensor

from fastlight.utilities.checkpoint_io import atomic_symlink
from fastlight.utilities._fs import is_local_path
from fastlight.utilities.exceptions import _MisconfigurationValueError
from fastlight.utilities.rank_zero import module_logger, rank_zero_info, rank_zero_warn

from . import _trainer_access as access
from .checkpoint import Checkpoint

log = module_logger(__name__)
_PATH = Union[str, os.PathLike]


class ModelCheckpoint(Checkpoint):
    """Save checkpoints during fit.

    Args:
        dirpath: folder for the files; default <logger.save_dir>/<name>/<version>/checkpoints of the first logger, or
            <default_root_dir>/checkpoints without a logger.
        filename: template such as "{epoch}-{val_loss:.2f}"; default "{epoch}-{step}".
        monitor: metric in trainer.callback_metrics to rank checkpoints by; None keeps the latest.
        verbose: log each decision.
        save_last: also keep "last.ckpt" (True), or make it a symlink to the latest saved file ("link").
        save_top_k: k best files to keep; -1 all, 0 none. Without monitor only -1, 0, 1 make sense.
        save_on_exception: save when fit raises.
        save_weights_only: only the model weights (and loops), no optimizer/scheduler/callback state.
        mode: "min" or "max" for the monitored metric.
        auto_insert_metric_name: "{epoch}" becomes "epoch=3" (True) or "3" (False).
        every_n_train_steps / every_n_epochs / train_time_interval: the (mutually exclusive) save trigger;
            default every epoch.
        save_on_train_epoch_end: save at the end of the training epoch (True) or after validation (False);
            None decides as Lightning does.
        enable_version_counter: add "-v1", "-v2"... instead of overwriting a file with the same name.
    """

    CHECKPOINT_JOIN_CHAR = "-"
    CHECKPOINT_EQUALS_CHAR = "="
    CHECKPOINT_NAME_LAST = "last"
    FILE_EXTENSION = ".ckpt"
    STARTING_VERSION = 1

    def __init__(
        self,
        dirpath: Optional[_PATH] = None,
        filename: Optional[str] = None,
        monitor: Optional[str] = None,
        verbose: bool = False,
        save_last: Optional[Union[bool, str]] = None,
        save_top_k: int = 1,
        save_on_exception: bool = False,
        save_weights_only: bool = False,
        mode: str = "min",
        auto_insert_metric_name: bool = True,
        every_n_train_steps: Optional[int] = None,
        train_time_interval: Optional[timedelta] = None,
        every_n_epochs: Optional[int] = None,
        save_on_train_epoch_end: Optional[bool] = None,
        enable_version_counter: bool = True,
    ) -> None:
        if save_last not in (None, True, False, "link"):
            raise ValueError(f"ModelCheckpoint(save_last={save_last!r}) must be None, True, False or 'link'")
        self.monitor = monitor
        self.verbose = verbose
        self.save_last = save_last
        self.save_top_k = save_top_k
        self.save_on_exception = save_on_exception
        self.save_weights_only = save_weights_only
        self.auto_insert_metric_name = auto_insert_metric_name
        self._save_on_train_epoch_end = save_on_train_epoch_end
        self._enable_version_counter = enable_version_counter
        self._last_global_step_saved = 0  # nothing to save before the first step
        self._last_time_checked: Optional[float] = None
        self.current_score: Optional[Tensor] = None
        self.best_k_models: Dict[str, Tensor] = {}
        self.kth_best_model_path = ""
        self.best_model_score: Optional[Tensor] = None
        self.best_model_path = ""
        self.last_model_path = ""
        self._last_checkpoint_saved = ""
        # a step/time-triggered save waiting for a validation-only monitored metric
        self._defer_save_until_validation = False

        if mode not in ("min", "max"):
            raise _MisconfigurationValueError(f"ModelCheckpoint: `mode` can be min, max but got {mode}")
        self.mode = mode
        self.kth_value: Tensor = torch.tensor(float("inf") if mode == "min" else float("-inf"))

        if dirpath is not None:
            dirpath = os.fspath(dirpath)
            if dirpath and is_local_path(dirpath):  # "" stays "": names without a folder
                dirpath = os.path.realpath(os.path.expanduser(dirpath))
        self.dirpath: Optional[str] = dirpath
        self.filename = filename

        if every_n_train_steps is None and every_n_epochs is None and train_time_interval is None:
            every_n_epochs, every_n_train_steps = 1, 0
        else:
            every_n_epochs = every_n_epochs or 0
            every_n_train_steps = every_n_train_steps or 0
        self._train_time_interval = train_time_interval
        self._every_n_epochs = every_n_epochs
        self._every_n_train_steps = every_n_train_steps
        self._validate()

    def _validate(self) -> None:
        if not isinstance(self.save_top_k, int) or self.save_top_k < -1:
            raise _MisconfigurationValueError(f"Invalid value for save_top_k={self.save_top_k}. Must be >= -1")
        if self._every_n_train_steps < 0:
            raise _MisconfigurationValueError(
                f"Invalid value for every_n_train_steps={self._every_n_train_steps}. Must be >= 0"
            )
        if self._every_n_epochs < 0:
            raise _MisconfigurationValueError(f"Invalid value for every_n_epochs={self._every_n_epochs}. Must be >= 0")
        triggers = (self._every_n_train_steps >= 1) + (self._every_n_epochs >= 1) + (self._train_time_interval is not None)
        if triggers > 1:
            raise _MisconfigurationValueError(
                f"Combination of parameters every_n_train_steps={self._every_n_train_steps}, "
                f"every_n_epochs={self._every_n_epochs} and train_time_interval={self._train_time_interval} "
                "should be mutually exclusive."
            )
        if self.monitor is None and self.save_top_k not in (-1, 0, 1):
            raise _MisconfigurationValueError(
                f"ModelCheckpoint(save_top_k={self.save_top_k}, monitor=None) is not a valid"
                " configuration. No quantity for top_k to track."
            )

    @property
    def state_key(self) -> str:
        return self._generate_state_key(
            monitor=self.monitor,
            mode=self.mode,
            every_n_train_steps=self._every_n_train_steps,
            every_n_epochs=self._every_n_epochs,
            train_time_interval=self._train_time_interval,
        )

    @property
    def every_n_epochs(self) -> Optional[int]:
        return self._every_n_epochs

    # -- hooks ------------------------------------------------------------------------------------------------------
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        dirpath = access.broadcast(trainer, self._resolve_ckpt_dir(trainer))
        self.dirpath = dirpath
        if trainer.is_global_zero and stage == "fit" and self.save_top_k != 0:
            if os.path.isdir(dirpath) and os.listdir(dirpath):
                rank_zero_warn(f"Checkpoint directory {dirpath} exists and is not empty.")
        if self.save_last == "link" and not is_local_path(dirpath):
            raise ValueError(  # a symlink needs a local file system
                f"`ModelCheckpoint(save_last='link')` is only supported for local file paths, got `dirpath={dirpath}`."
            )

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._last_time_checked = time.monotonic()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._every_n_train_steps < 1 and self._train_time_interval is None:
            return  # epoch-based saving: nothing to decide per step
        skip_due_to_state = self._should_skip_saving_checkpoint(trainer)
        skip_batch = self._every_n_train_steps < 1 or trainer.global_step % self._every_n_train_steps != 0
        skip_time = True
        now = time.monotonic()
        if self._train_time_interval is not None:
            prev = self._last_time_checked
            skip_time = prev is None or (now - prev) < self._train_time_interval.total_seconds()
            # ranks' clocks differ: rank 0 decides so that all ranks save (and synchronize) together
            skip_time = access.broadcast(trainer, skip_time)
        if skip_batch and skip_time:
            return
        if not skip_time:
            self._last_time_checked = now
        candidates = self._monitor_candidates(trainer)
        if self.monitor is not None and self.monitor not in candidates:
            # the monitored metric comes from validation: save once validation has produced it
            self._defer_save_until_validation = True
            return
        if (
            self.monitor is not None
            and not self._should_save_on_train_epoch_end(trainer)
            and access.is_last_batch(trainer)
            and self._validation_follows(trainer)
        ):
            self._defer_save_until_validation = True  # the metric would be stale: use the one validation brings
            return
        if skip_due_to_state:
            return
        self._save_topk_checkpoint(trainer, candidates)
        self._save_last_checkpoint(trainer, candidates)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not self._should_skip_saving_checkpoint(trainer) and self._should_save_on_train_epoch_end(trainer):
            candidates = self._monitor_candidates(trainer)
            if self._every_n_epochs >= 1 and (trainer.current_epoch + 1) % self._every_n_epochs == 0:
                self._save_topk_checkpoint(trainer, candidates)
            if self._last_global_step_saved == trainer.global_step or (
                self.save_last == "link" and self._last_checkpoint_saved
            ):
                self._save_last_checkpoint(trainer, candidates)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if self._should_skip_saving_checkpoint(trainer) or self._should_save_on_train_epoch_end(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        if self._defer_save_until_validation:
            self._save_topk_checkpoint(trainer, candidates)
            self._save_last_checkpoint(trainer, candidates)
            self._defer_save_until_validation = False
            return
        if self._every_n_epochs >= 1 and (trainer.current_epoch + 1) % self._every_n_epochs == 0:
            self._save_topk_checkpoint(trainer, candidates)
        if self._last_global_step_saved == trainer.global_step or (
            self.save_last == "link" and self._last_checkpoint_saved
        ):
            self._save_last_checkpoint(trainer, candidates)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        if not (
            self.save_on_exception
            and not trainer.fast_dev_run
            and not trainer.sanity_checking
            and self._last_global_step_saved != trainer.global_step
        ):
            return
        candidates = self._monitor_candidates(trainer)
        filepath = self.format_checkpoint_name(metrics=candidates)
        self._save_checkpoint(trainer, filepath)
        self._save_last_checkpoint(trainer, candidates)
        rank_zero_info(
            f"An {type(exception).__name__} was raised with message: {exception}, saved checkpoint to {filepath}"
        )

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.save_last and not self._last_checkpoint_saved:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    # -- state ------------------------------------------------------------------------------------------------------
    def state_dict(self) -> Dict[str, Any]:
        return {
            "monitor": self.monitor,
            "best_model_score": self.best_model_score,
            "best_model_path": self.best_model_path,
            "current_score": self.current_score,
            "dirpath": self.dirpath,
            "best_k_models": self.best_k_models,
            "kth_best_model_path": self.kth_best_model_path,
            "kth_value": self.kth_value,
            "last_model_path": self.last_model_path,
        }

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        dirpath_from_ckpt = state_dict.get("dirpath", self.dirpath)
        if self.dirpath == dirpath_from_ckpt:
            self.best_model_score = state_dict["best_model_score"]
            self.kth_best_model_path = state_dict.get("kth_best_model_path", self.kth_best_model_path)
            self.kth_value = state_dict.get("kth_value", self.kth_value)
            self.best_k_models = state_dict.get("best_k_models", self.best_k_models)
            self.last_model_path = state_dict.get("last_model_path", self.last_model_path)
        else:
            rank_zero_warn(
                f"The dirpath has changed from {dirpath_from_ckpt!r} to {self.dirpath!r},"
                " therefore `best_model_score`, `kth_best_model_path`, `kth_value`, `last_model_path` and"
                " `best_k_models` won't be reloaded. Only `best_model_path` will be reloaded."
            )
        self.best_model_path = state_dict["best_model_path"]

    # -- decisions --------------------------------------------------------------------------------------------------
    def _should_skip_saving_checkpoint(self, trainer: Any) -> bool:
        return (
            bool(trainer.fast_dev_run)
            or not access.is_fitting(trainer)
            or trainer.sanity_checking
            or self._last_global_step_saved == trainer.global_step  # this step is already saved
        )

    def _should_save_on_train_epoch_end(self, trainer: Any) -> bool:
        if self._save_on_train_epoch_end is not None:
            return self._save_on_train_epoch_end
        if getattr(trainer, "_val_check_time_interval", None) is not None:
            return False
        # validation every k>1 epochs: we can't tell which epoch ends have fresh metrics
        if getattr(trainer, "check_val_every_n_epoch", 1) != 1:
            return False
        if access.total_val_batches(trainer) == 0:
            return True  # no validation: save at train epoch end
        # validation several times per epoch: save after each validation instead
        return getattr(trainer, "val_check_interval", 1.0) == 1.0

    def _validation_follows(self, trainer: Any) -> bool:
        if not getattr(trainer, "enable_validation", False) or not access.total_val_batches(trainer):
            return False
        every = getattr(trainer, "check_val_every_n_epoch", 1)
        return every is None or (trainer.current_epoch + 1) % every == 0

    def check_monitor_top_k(self, trainer: Any, current: Optional[Tensor] = None) -> bool:
        if current is None:
            return False
        if self.save_top_k == -1:
            return True
        if len(self.best_k_models) < self.save_top_k:
            return True
        op = torch.lt if self.mode == "min" else torch.gt
        better = bool(op(current, self.best_k_models[self.kth_best_model_path]))  # host sync: a decision
        return access.reduce_boolean_decision(trainer, better)

    # -- names ------------------------------------------------------------------------------------------------------
    def _format_checkpoint_name(
        self, filename: Optional[str], metrics: Dict[str, Any], prefix: Optional[str] = None, auto_insert_metric_name: bool = True
    ) -> str:
        if not filename:
            filename = "{epoch}" + self.CHECKPOINT_JOIN_CHAR + "{step}"
        groups = re.findall(r"(\{.*?)[:\}]", filename)
        # longest first, so "{epoch_test" is replaced before "{epoch"
        for group in sorted(groups, key=len, reverse=True):
            name = group[1:]
            if auto_insert_metric_name:
                filename = filename.replace(group, name + self.CHECKPOINT_EQUALS_CHAR + "{" + name)
            # index the metrics dict so that names with dots work in str.format
            filename = filename.replace(group, f"{{0[{name}]")
            if name not in metrics:
                metrics[name] = torch.tensor(0)
        filename = filename.format(metrics)
        if prefix is not None:
            filename = self.CHECKPOINT_JOIN_CHAR.join([prefix, filename])
        return filename

    def format_checkpoint_name(
        self, metrics: Dict[str, Any], filename: Optional[str] = None, ver: Optional[int] = None, prefix: Optional[str] = None
    ) -> str:
        """The path for these metrics: `ModelCheckpoint(filename="{epoch}")` and epoch=0 give "<dirpath>/epoch=0.ckpt"."""
        filename = self._format_checkpoint_name(
            filename or self.filename, metrics, prefix=prefix, auto_insert_metric_name=self.auto_insert_metric_name
        )
        if ver is not None:
            filename = self.CHECKPOINT_JOIN_CHAR.join((filename, f"v{ver}"))
        name = f"{filename}{self.FILE_EXTENSION}"
        return os.path.join(self.dirpath, name) if self.dirpath else name

    def _resolve_ckpt_dir(self, trainer: Any) -> str:
        if self.dirpath is not None:
            return self.dirpath
        loggers = getattr(trainer, "loggers", None) or []
        if loggers:
            first = loggers[0]
            save_dir = first.save_dir if first.save_dir is not None else trainer.default_root_dir
            version = first.version if isinstance(first.version, str) else f"version_{first.version}"
            return os.path.join(save_dir, str(first.name), version, "checkpoints")
        return os.path.join(trainer.default_root_dir, "checkpoints")

    def _find_last_checkpoints(self, trainer: Any) -> Set[str]:
        """Every last*.ckpt in the checkpoint folder (for `ckpt_path="last"`)."""
        folder = self._resolve_ckpt_dir(trainer)
        pattern = rf"^{self.CHECKPOINT_NAME_LAST}(-(\d+))?"
        if not os.path.isdir(folder):
            return set()
        found = set()
        for entry in os.listdir(folder):
            p = Path(entry)
            if p.suffix == self.FILE_EXTENSION and re.match(pattern, p.stem):
                found.add(os.path.normpath(os.path.join(folder, entry)))
        return found

    def _get_metric_interpolated_filepath_name(
        self, candidates: Dict[str, Any], trainer: Any, del_filepath: Optional[str] = None
    ) -> str:
        filepath = self.format_checkpoint_name(candidates)
        if self._enable_version_counter:
            version = self.STARTING_VERSION
            while self.file_exists(filepath, trainer) and filepath != del_filepath:
                filepath = self.format_checkpoint_name(candidates, ver=version)
                version += 1
        return filepath

    def _monitor_candidates(self, trainer: Any) -> Dict[str, Tensor]:
        candidates = deepcopy(trainer.callback_metrics)
        # self.log("epoch", 3) stores a float: names need ints; anything else under these keys is replaced
        epoch = candidates.get("epoch")
        candidates["epoch"] = epoch.int() if isinstance(epoch, Tensor) else torch.tensor(trainer.current_epoch)
        step = candidates.get("step")
        candidates["step"] = step.int() if isinstance(step, Tensor) else torch.tensor(trainer.global_step)
        return candidates

    def file_exists(self, filepath: _PATH, trainer: Any) -> bool:
        """Rank 0 looks at the file system and every rank gets its answer, so their states cannot diverge."""
        local = os.path.exists(filepath) if trainer.is_global_zero else False
        return access.reduce_boolean_decision(trainer, local, all=False)

    # -- saving -----------------------------------------------------------------------------------------------------
    def _save_topk_checkpoint(self, trainer: Any, candidates: Dict[str, Tensor]) -> None:
        if self.save_top_k == 0:
            return
        if self.monitor is not None:
            if self.monitor not in candidates:
                msg = (
                    f"`ModelCheckpoint(monitor={self.monitor!r})` could not find the monitored key in the returned"
                    f" metrics: {list(candidates)}."
                    f" HINT: Did you call `log({self.monitor!r}, value)` in the `LightningModule`?"
                )
                if access.val_loop_has_run(trainer):
                    raise KeyError(msg)
                rank_zero_warn(msg)
            self._save_monitor_checkpoint(trainer, candidates)
        else:
            self._save_none_monitor_checkpoint(trainer, candidates)

    def _save_checkpoint(self, trainer: Any, filepath: str) -> None:
        trainer.save_checkpoint(filepath, self.save_weights_only)
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in getattr(trainer, "loggers", None) or []:
                logger.after_save_checkpoint(proxy(self))

    @staticmethod
    def _link_checkpoint(trainer: Any, filepath: str, linkpath: str) -> None:
        if trainer.is_global_zero and os.path.abspath(filepath) != os.path.abspath(linkpath):
            if os.path.isdir(linkpath) and not os.path.islink(linkpath):
                shutil.rmtree(linkpath)
            try:
                atomic_symlink(filepath, linkpath)  # replaced atomically: `last` always resolves
            except OSError:
                # no symlinks (Windows without the right): a copy instead
                shutil.copy(filepath, linkpath)
        access.barrier(trainer)

    def _save_last_checkpoint(self, trainer: Any, candidates: Dict[str, Tensor]) -> None:
        if not self.save_last:
            return
        filepath = self.format_checkpoint_name(candidates, self.CHECKPOINT_NAME_LAST)
        if self._enable_version_counter:
            version = self.STARTING_VERSION
            while self.file_exists(filepath, trainer) and filepath != self.last_model_path:
                filepath = self.format_checkpoint_name(candidates, self.CHECKPOINT_NAME_LAST, ver=version)
                version += 1
        # set before saving: the path is part of the saved state
        previous, self.last_model_path = self.last_model_path, filepath
        try:
            if self.save_last == "link" and self._last_checkpoint_saved and self.save_top_k != 0:
                self._link_checkpoint(trainer, self._last_checkpoint_saved, filepath)
            else:
                self._save_checkpoint(trainer, filepath)
        except BaseException:
            self.last_model_path = previous
            raise
        if previous and self._should_remove_checkpoint(trainer, previous, filepath):
            access.remove_checkpoint(trainer, previous)

    def _save_monitor_checkpoint(self, trainer: Any, candidates: Dict[str, Tensor]) -> None:
        current = candidates.get(self.monitor)
        if current is not None and not isinstance(current, Tensor):
            current = torch.tensor(float(current))  # a metric given as a python number
        if self.check_monitor_top_k(trainer, current):
            self._update_best_and_save(current, trainer, candidates)
        elif self.verbose:
            epoch, step = int(candidates["epoch"]), int(candidates["step"])
            rank_zero_info(f"Epoch {epoch:d}, global step {step:d}: {self.monitor!r} was not in top {self.save_top_k}")

    def _save_none_monitor_checkpoint(self, trainer: Any, candidates: Dict[str, Tensor]) -> None:
        filepath = self._get_metric_interpolated_filepath_name(candidates, trainer, self.best_model_path)
        previous, self.best_model_path = self.best_model_path, filepath
        try:
            self._save_checkpoint(trainer, filepath)
        except BaseException:
            self.best_model_path = previous  # a failed write: the previous file is still the one to keep
            raise
        # the new file is in place before the old one goes
        if self.save_top_k == 1 and previous and self._should_remove_checkpoint(trainer, previous, filepath):
            access.remove_checkpoint(trainer, previous)

    _ROTATION_STATE = ("best_k_models", "kth_best_model_path", "kth_value", "best_model_path", "best_model_score",
                       "current_score", "last_model_path")

    def _update_best_and_save(self, current: Tensor, trainer: Any, candidates: Dict[str, Tensor]) -> None:
        # a failed write (full disk) must not leave the top-k pointing at a file that is not there: the bookkeeping
        # goes back to what it was, and the file that would have left the top-k stays (removed only after a save)
        before = {name: getattr(self, name, None) for name in self._ROTATION_STATE}
        before["best_k_models"] = dict(self.best_k_models)
        try:
            self._rotate_top_k(current, trainer, candidates)
        except BaseException:
            for name, value in before.items():
                setattr(self, name, value)
            raise

    def _rotate_top_k(self, current: Tensor, trainer: Any, candidates: Dict[str, Tensor]) -> None:
        k = len(self.best_k_models) + 1 if self.save_top_k == -1 else self.save_top_k
        del_filepath = None
        if len(self.best_k_models) == k and k > 0:
            del_filepath = self.kth_best_model_path
            self.best_k_models.pop(del_filepath)
        if isinstance(current, Tensor) and torch.isnan(current):  # host sync, only when a checkpoint is saved
            # a NaN score never ranks: store it as the worst value
            current = torch.tensor(float("inf" if self.mode == "min" else "-inf"), device=current.device)
        filepath = self._get_metric_interpolated_filepath_name(candidates, trainer, del_filepath)
        self.current_score = current
        self.best_k_models[filepath] = current
        if len(self.best_k_models) == k:
            worst = max if self.mode == "min" else min
            self.kth_best_model_path = worst(self.best_k_models, key=self.best_k_models.get)
            self.kth_value = self.best_k_models[self.kth_best_model_path]
        best = min if self.mode == "min" else max
        self.best_model_path = best(self.best_k_models, key=self.best_k_models.get)
        self.best_model_score = self.best_k_models[self.best_model_path]
        if self.verbose:
            epoch, step = int(candidates["epoch"]), int(candidates["step"])
            rank_zero_info(
                f"Epoch {epoch:d}, global step {step:d}: {self.monitor!r} reached {float(current):0.5f}"
                f" (best {float(self.best_model_score):0.5f}), saving model to {filepath!r} as top {k}"
            )
        self._save_checkpoint(trainer, filepath)
        # only now, with the new file in place, does the one that left the top-k go
        if del_filepath and self._should_remove_checkpoint(trainer, del_filepath, filepath):
            access.remove_checkpoint(trainer, del_filepath)

    def _should_remove_checkpoint(self, trainer: Any, previous: str, current: str) -> bool:
        """Not when the old path is the new one, lies outside dirpath, or is the file this run resumed from."""
        if previous == current:
            return False
        previous_path = Path(previous).absolute()
        ckpt_path = getattr(trainer, "ckpt_path", None)
        if ckpt_path is not None and previous_path == Path(ckpt_path).absolute():
            return False
        return Path(self.dirpath).absolute() in previous_path.parents

    def to_yaml(self, filepath: Optional[_PATH] = None) -> None:
        """Write best_k_models (path -> score) to a YAML file (default <dirpath>/best_k_models.yaml)."""
        import yaml

        best_k = {k: float(v) for k, v in self.best_k_models.items()}
        if filepath is None:
            filepath = os.path.join(self.dirpath, "best_k_models.yaml")
        with open(filepath, "w") as fp:
            yaml.dump(best_k, fp)
