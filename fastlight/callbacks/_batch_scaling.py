"""The batch-size search behind `BatchSizeFinder` and `Tuner.scale_batch_size` (Lightning 2.6's rules).

In a fit, each trial runs the fit loop for `steps_per_trial` steps with the batch size written to the attribute
`batch_arg_name` (module, hparams or datamodule) and the train dataloader rebuilt. "power" doubles until a trial
runs out of memory, then halves once; "binsearch" doubles, then bisects between the last success and the first
failure and takes `margin` off the result. The model, optimizer and loop are restored from a temporary checkpoint
afterwards; the attribute keeps the size found. In validate / test / predict each trial runs that stage's loop
over `steps_per_trial` batches (`_scale_in_evaluation`).
"""
import os
import uuid
from copy import deepcopy
from typing import Any, Dict, Optional, Tuple

from fastlight.utilities.memory import garbage_collection_cuda, is_oom_error
from fastlight.utilities.parsing import lightning_getattr, lightning_setattr
from fastlight.utilities.rank_zero import module_logger, rank_zero_info, rank_zero_warn

log = module_logger(__name__)


_EVAL_PREFIX = {"validate": "val", "test": "test", "predict": "predict"}


def _stage(trainer: Any) -> str:
    fn = trainer.state.fn
    return str(getattr(fn, "value", fn))


def _stage_loop(trainer: Any) -> Any:
    return {"fit": trainer.fit_loop, "validate": trainer.validate_loop, "test": trainer.test_loop,
            "predict": trainer.predict_loop}[_stage(trainer)]


def _loaders(trainer: Any) -> list:
    """The running stage's dataloaders (the fit's train loaders; an evaluation stage's, requested again)."""
    stage = _stage(trainer)
    if stage == "fit":
        trainer.fit_loop.setup_data()
        return trainer.fit_loop._train_loaders()
    loaders = trainer._request_dataloader(_EVAL_PREFIX[stage])
    if isinstance(loaders, dict):
        return list(loaders.values())
    return list(loaders) if isinstance(loaders, (list, tuple)) else [loaders]


def _dataset_length(trainer: Any) -> Optional[int]:
    """The dataset's length (the longest of several loaders); None when no loader's dataset has one."""
    lengths = []
    for dl in _loaders(trainer):
        try:
            lengths.append(len(dl.dataset))
        except (AttributeError, TypeError, NotImplementedError):
            pass
    return max(lengths) if lengths else None


def _reset_dataloaders(trainer: Any) -> None:
    if _stage(trainer) != "fit":  # evaluation loops request their loaders at each run
        return
    trainer.fit_loop.reset_data()
    trainer.fit_loop.setup_data()
    # the validation loaders at the new size too (trainer.val_dataloaders shows them, as in Lightning)
    trainer.validate_loop.reset_data()
    trainer.val_dataloaders = None
    trainer.validate_loop.setup_data()


def _adjust_batch_size(trainer: Any, name: str, factor: float = 1.0, value: Optional[int] = None,
                       desc: Optional[str] = None, max_val: int = 8192) -> Tuple[int, bool]:
    """Write the next batch size (`value`, or the current one times `factor`, capped at max_val); unchanged when
    the current size already covers the dataset. Returns (size, changed)."""
    model = trainer.lightning_module
    batch_size = lightning_getattr(model, name)
    length = _dataset_length(trainer)
    if length is not None and batch_size >= length:
        rank_zero_info(f"The batch size {batch_size} is greater or equal than the length of your dataset: {length}.")
        return batch_size, False
    new_size = value if value is not None else int(batch_size * factor)
    if new_size > max_val:
        if desc:
            rank_zero_info(f"Batch size {new_size} exceeds max_val limit {max_val}, capping at {max_val}")
        new_size = max_val
    if desc:
        rank_zero_info(f"Batch size {batch_size} {desc}, trying batch size {new_size}")
    lightning_setattr(model, name, new_size)
    return new_size, new_size != batch_size


def _trial_fits(trainer: Any, snapshot: Dict[str, Any]) -> bool:
    """A few steps of the running stage at the current batch size from the saved counters; False when they ran out
    of memory (the memory is freed), any other error propagates."""
    if _stage(trainer) == "fit":
        loop = trainer.fit_loop
        loop.load_snapshot(snapshot)
    else:
        loop = _stage_loop(trainer)
        loop.load_state_dict(deepcopy(snapshot))
    try:
        loop.run()
    except RuntimeError as exc:
        if not is_oom_error(exc):
            raise
        garbage_collection_cuda()
        return False
    return True


def _power_search(trainer: Any, size: int, name: str, max_trials: int, snapshot: Dict[str, Any],
                  max_val: int) -> int:
    succeeded_once = False
    for trial in range(max_trials):
        garbage_collection_cuda()
        if size >= max_val:
            rank_zero_info(f"Reached the maximum batch size limit of {max_val}. Stopping search.")
            break
        if not _trial_fits(trainer, snapshot):
            size, _ = _adjust_batch_size(trainer, name, factor=0.5, desc="failed")
            _reset_dataloaders(trainer)
            if succeeded_once:
                break
            continue
        if trial + 1 >= max_trials:
            break
        size, changed = _adjust_batch_size(trainer, name, factor=2.0, desc="succeeded")
        if not changed:
            break
        _reset_dataloaders(trainer)
        succeeded_once = True
    return size


def _binary_search(trainer: Any, size: int, name: str, max_trials: int, snapshot: Dict[str, Any], margin: float,
                   max_val: int) -> int:
    low, high, successes = 1, None, 0
    while True:
        garbage_collection_cuda()
        if size >= max_val:
            rank_zero_info(f"Reached the maximum batch size limit of {max_val}. Stopping search.")
            break
        if not _trial_fits(trainer, snapshot):
            high = size
            size, _ = _adjust_batch_size(trainer, name, value=(high + low) // 2, desc="failed")
            _reset_dataloaders(trainer)
            if high - low <= 1:
                break
            continue
        successes += 1
        if successes >= max_trials:
            break
        low = size
        if high:
            if high - low <= 1:
                break
            size, changed = _adjust_batch_size(trainer, name, value=(high + low) // 2, desc="succeeded",
                                               max_val=max_val)
        else:
            size, changed = _adjust_batch_size(trainer, name, factor=2.0, desc="succeeded", max_val=max_val)
        if not changed:
            break
        _reset_dataloaders(trainer)
    if margin > 0:
        reduced = max(1, int(size * (1 - margin)))
        if reduced != size:
            rank_zero_info(f"Applying margin of {margin:.1%}, reducing batch size from {size} to {reduced}")
            size = reduced
            lightning_setattr(trainer.lightning_module, name, size)
    return size


def scale_batch_size(trainer: Any, mode: str = "power", steps_per_trial: int = 3, init_val: int = 2,
                     max_trials: int = 25, batch_arg_name: str = "batch_size", margin: float = 0.05,
                     max_val: int = 8192) -> Optional[int]:
    """Search in the fit that is starting, put the run back as it was, return the batch size found."""
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"`margin` should be between 0 and 1. Found margin={margin}")
    if trainer.fast_dev_run:
        rank_zero_warn("Skipping batch size scaler since `fast_dev_run` is enabled.")
        return None
    if _stage(trainer) != "fit":
        return _scale_in_evaluation(trainer, mode, steps_per_trial, init_val, max_trials, batch_arg_name, margin,
                                    max_val)
    ckpt_path = os.path.join(trainer.default_root_dir, f".scale_batch_size_{uuid.uuid4()}.ckpt")
    trainer.save_checkpoint(ckpt_path)
    cfg = trainer._cfg
    fit_loop = trainer.fit_loop
    saved = {
        "callbacks": trainer.callbacks, "loggers": trainer.loggers, "max_steps": cfg.max_steps,
        "limit_train_batches": cfg.limit_train_batches, "limit_val_batches": cfg.limit_val_batches,
        "loop": fit_loop.snapshot(),
    }
    try:
        trainer.callbacks = []
        trainer.loggers = []
        cfg.limit_train_batches = 1.0
        cfg.limit_val_batches = steps_per_trial
        cfg.max_steps = steps_per_trial
        trainer._resolve_hooks()
        size = _search(trainer, mode, init_val, batch_arg_name, max_trials, saved["loop"], margin, max_val)
    finally:
        trainer.callbacks = saved["callbacks"]
        trainer.loggers = saved["loggers"]
        cfg.max_steps = saved["max_steps"]
        cfg.limit_train_batches = saved["limit_train_batches"]
        cfg.limit_val_batches = saved["limit_val_batches"]
        trainer._resolve_hooks()
        fit_loop.load_snapshot(saved["loop"])
        _reset_dataloaders(trainer)
        trainer._restore_tuning_checkpoint(ckpt_path)
        trainer.strategy.remove_checkpoint(ckpt_path)
        fit_loop.load_snapshot(saved["loop"])
    return size


def _search(trainer: Any, mode: str, init_val: int, batch_arg_name: str, max_trials: int,
            snapshot: Dict[str, Any], margin: float, max_val: int) -> int:
    """The size found by `mode`'s search from `init_val` (the stage's loop state is reset to `snapshot` per trial)."""
    size, _ = _adjust_batch_size(trainer, batch_arg_name, value=init_val)
    if mode == "power":
        size = _power_search(trainer, size, batch_arg_name, max_trials, snapshot, max_val)
    elif mode == "binsearch":
        size = _binary_search(trainer, size, batch_arg_name, max_trials, snapshot, margin, max_val)
    else:
        raise ValueError(f"`mode` should be either of ('power', 'binsearch'), got {mode!r}")
    garbage_collection_cuda()
    log.info(f"Finished batch size finder, will continue with full run using batch size {size}")
    return size


def _scale_in_evaluation(trainer: Any, mode: str, steps_per_trial: int, init_val: int, max_trials: int,
                         batch_arg_name: str, margin: float, max_val: int) -> int:
    """The search inside validate / test / predict (from the stage's start hook): each trial runs the stage's loop
    (validate/test: over `steps_per_trial` batches; predict: all of it, as in Lightning) without callbacks or loggers; the loop's counters, the module's train/eval modes
    and the stage's limit are put back afterwards and the running stage goes on with the size found."""
    cfg = trainer._cfg
    stage = _stage(trainer)
    loop = _stage_loop(trainer)
    limit_name = f"limit_{_EVAL_PREFIX[stage]}_batches"
    saved = {
        "callbacks": trainer.callbacks, "loggers": trainer.loggers, "limit": getattr(cfg, limit_name),
        "verbose": getattr(loop, "verbose", None), "progress": deepcopy(loop.state_dict()),
        "modes": list(getattr(loop._mode, "modes", [])),
    }
    try:
        trainer.callbacks = []
        trainer.loggers = []
        if stage != "predict":  # Lightning's predict trials run the whole predict loop
            setattr(cfg, limit_name, steps_per_trial)
        if saved["verbose"] is not None:
            loop.verbose = False
        trainer._resolve_hooks()
        size = _search(trainer, mode, init_val, batch_arg_name, max_trials, saved["progress"], margin, max_val)
    finally:
        trainer.callbacks = saved["callbacks"]
        trainer.loggers = saved["loggers"]
        setattr(cfg, limit_name, saved["limit"])
        if saved["verbose"] is not None:
            loop.verbose = saved["verbose"]
        trainer._resolve_hooks()
        loop.load_state_dict(saved["progress"])
        loop._mode.modes = saved["modes"]  # the stage's own run restores the modes it found
        if stage == "validate" or stage == "test":
            loop.reset_data()
            loop.setup_data()  # the loaders of the size found, for the rest of the running stage
    return size
