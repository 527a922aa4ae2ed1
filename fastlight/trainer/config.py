"""Trainer flags, validated and normalized once into a typed config (errors name the flag)."""
import datetime
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Union

import torch

from fastlight.trainer.precision import normalize_precision
from fastlight.utilities.exceptions import MisconfigurationException
from fastlight.utilities.rank_zero import rank_zero_info, rank_zero_warn
from fastlight.utilities.warnings import PossibleUserWarning

_ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")

class ConfigError(MisconfigurationException, ValueError):
    """A Trainer flag has a value fastlight (and Lightning) does not accept."""


class ConfigTypeError(ConfigError, TypeError):
    """A Trainer flag has a value of the wrong type (Lightning raises TypeError there)."""


@dataclass
class TrainerConfig:
    device: torch.device
    accelerator: str
    num_devices: int
    strategy: str
    precision: str
    max_epochs: Optional[int]  # None until a fit resolves it (resolve_loop_limits), as Lightning's fit loop does
    min_epochs: Optional[int]
    max_steps: int
    min_steps: Optional[int]
    max_time: Optional[float]
    accumulate_grad_batches: int
    gradient_clip_val: Optional[float]
    gradient_clip_algorithm: Optional[str]
    val_check_interval: Union[int, float]
    val_check_time_interval: Optional[float]  # seconds: time-based val_check_interval ("DD:HH:MM:SS", ...)
    check_val_every_n_epoch: Optional[int]
    limit_train_batches: Union[int, float]
    limit_val_batches: Union[int, float]
    limit_test_batches: Union[int, float]
    limit_predict_batches: Union[int, float]
    overfit_batches: Union[int, float]
    num_sanity_val_steps: Union[int, float]
    log_every_n_steps: int
    fast_dev_run: Union[int, bool]
    enable_checkpointing: bool
    enable_progress_bar: bool
    enable_model_summary: bool
    default_root_dir: str
    deterministic: Any
    benchmark: Optional[bool]
    detect_anomaly: bool
    inference_mode: bool
    barebones: bool
    reload_dataloaders_every_n_epochs: int
    use_distributed_sampler: bool
    fused: bool
    flat_grads: bool = False
    batched_input: bool = True  # fastlight.trainer.input_path
    cuda_graphs: Any = False  # False | True | "auto": fastlight.trainer.graph_step
    channels_last: bool = False
    extras: dict = field(default_factory=dict)


def _limit(name: str, value: Any) -> Union[int, float]:
    if value is None:  # not given: every batch (and no message below)
        return 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"`Trainer({name}={value!r})` must be an int >= 0 or a float in [0.0, 1.0].")
    if 0 <= value <= 1:
        return value
    if value > 1 and value % 1.0 == 0:
        return int(value)
    raise ConfigError(f"`Trainer({name}={value!r})`: you have passed invalid value {value} for {name}, it has to be"
                      " in [0.0, 1.0] or an int >= 0.")


_ONE_BATCH = {"limit_train_batches": "1 batch per epoch will be used.",
              "val_check_interval": "validation will run after every batch."}
_ALL_BATCHES = {"limit_train_batches": "100% of the batches per epoch will be used",
                "val_check_interval": "validation will run at the end of the training epoch"}


def _say_limit(name: str, value: Any) -> None:
    """Lightning's info line for a limit given explicitly as 1 or 1.0 (an int and a float mean different things)."""
    if isinstance(value, bool):
        return
    if isinstance(value, int) and value == 1:
        rank_zero_info(f"`Trainer({name}=1)` was configured so {_ONE_BATCH.get(name, '1 batch will be used.')}")
    elif isinstance(value, float) and value == 1.0:
        rank_zero_info(
            f"`Trainer({name}=1.0)` was configured so {_ALL_BATCHES.get(name, '100% of the batches will be used')}."
        )


def _log_device_info(acc: str) -> None:
    """Lightning's lines about the GPUs/TPUs there are and the ones used, and its hint when a GPU sits idle."""
    from fastlight.accelerators import MPSAccelerator, cuda as cuda_accelerator

    cuda = cuda_accelerator.is_cuda_available()
    mps = MPSAccelerator.is_available()
    kind = " (cuda)" if cuda else (" (mps)" if mps else "")
    rank_zero_info(f"GPU available: {cuda or mps}{kind}, used: {acc in ('cuda', 'mps')}")
    rank_zero_info("TPU available: False, using: 0 TPU cores")
    if (cuda and acc != "cuda") or (mps and acc != "mps"):
        rank_zero_warn("GPU available but not used. You can set it by doing `Trainer(accelerator='gpu')`.",
                       category=PossibleUserWarning)


def _parse_max_time(max_time: Any) -> Optional[float]:
    if max_time is None:
        return None
    if isinstance(max_time, datetime.timedelta):
        return max_time.total_seconds()
    if isinstance(max_time, dict):
        return datetime.timedelta(**max_time).total_seconds()
    if isinstance(max_time, str):
        parts = max_time.split(":")
        if len(parts) != 4:
            raise ConfigError(f"`Trainer(max_time={max_time!r})` must look like 'DD:HH:MM:SS'.")
        d, h, m, s = (int(p) for p in parts)
        return datetime.timedelta(days=d, hours=h, minutes=m, seconds=s).total_seconds()
    raise ConfigError(f"`Trainer(max_time={max_time!r})` must be a str 'DD:HH:MM:SS', a dict or a timedelta.")


def _parse_val_check_time(value: Any) -> float:
    """A time-based `val_check_interval` in seconds: "DD:HH:MM:SS", a datetime.timedelta or a dict of its kwargs."""
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        try:
            return datetime.timedelta(**value).total_seconds()
        except TypeError as err:
            raise ConfigError(f"`Trainer(val_check_interval={value!r})`: {err}") from None
    parts = value.split(":")
    if len(parts) != 4:
        raise ConfigError(f"Invalid time format for `val_check_interval`: {value!r}. Expected 'DD:HH:MM:SS'.")
    try:
        d, h, m, sec = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"Non-integer component in `val_check_interval` string: {value!r}. Use 'DD:HH:MM:SS'.")\
            from None
    return datetime.timedelta(days=d, hours=h, minutes=m, seconds=sec).total_seconds()


def _pick_device(accelerator: Any, devices: Any) -> tuple:
    from fastlight.accelerators import Accelerator

    if isinstance(accelerator, Accelerator):  # Trainer(accelerator=CPUAccelerator()): the device kind it names
        accelerator = accelerator.name()
    if not isinstance(accelerator, str):
        raise ConfigError(f"`Trainer(accelerator={accelerator!r})` must be a string, one of {_ACCELERATORS}.")
    acc = accelerator.lower()
    if acc not in _ACCELERATORS:
        raise ConfigError(f"`Trainer(accelerator={accelerator!r})` is not a known accelerator; use one of {_ACCELERATORS}.")
    from fastlight.accelerators import MPSAccelerator, cuda as cuda_accelerator

    # the probes Lightning asks (and its tests patch): fastlight.accelerators.cuda.num_cuda_devices, MPSAccelerator
    cuda_count = cuda_accelerator.num_cuda_devices()
    mps_available = MPSAccelerator.is_available()
    if acc == "auto":
        acc = "cuda" if cuda_count > 0 else "cpu"
    elif acc == "gpu":
        acc = "cuda" if cuda_count > 0 or not mps_available else "mps"
    if acc == "tpu":
        raise ConfigError("`Trainer(accelerator='tpu')` is not supported by fastlight.")
    if acc == "mps" and not mps_available:
        raise ConfigError("`Trainer(accelerator='mps')` was requested but MPS is not available on this machine.")
    if acc == "cuda" and cuda_count == 0:
        raise ConfigError(
            f"`Trainer(accelerator={accelerator!r})` asks for a GPU but no CUDA device is available on this machine."
        )
    available = cuda_count if acc == "cuda" else (1 if acc == "mps" else (torch.get_num_threads() and 10**6))
    index = 0
    if devices in ("auto", None):
        n = 1
    elif isinstance(devices, bool):
        raise ConfigError(f"`Trainer(devices={devices!r})` must be 'auto', an int, a list of indices or a string.")
    elif isinstance(devices, int):
        n = available if devices == -1 else devices
        if n <= 0:
            raise ConfigError(f"`Trainer(devices={devices!r})` must be a positive int, -1 (all) or 'auto'.")
    elif isinstance(devices, str):
        s = devices.strip()
        if s == "-1":
            n = available
        elif "," in s:
            idx = [int(x) for x in s.split(",") if x.strip()]
            n, index = len(idx), idx[0]
        else:
            try:
                n = int(s)
            except ValueError:
                raise ConfigError(f"`Trainer(devices={devices!r})` is not a device count or list.") from None
    elif isinstance(devices, (list, tuple)):
        if not devices:
            raise ConfigError("`Trainer(devices=[])` selects no device.")
        n, index = len(devices), int(devices[0])
    else:
        raise ConfigError(f"`Trainer(devices={devices!r})` must be 'auto', an int, a list of indices or a string.")
    if acc == "mps" and n > 1:
        raise ConfigError(f"`Trainer(devices={devices!r})` asks for {n} MPS devices but only 1 exists.")
    device = torch.device(acc, index) if acc == "cuda" else torch.device(acc)
    return device, acc, n


# Trainer(barebones=True) turns these off; passing one turned on is an error: (flag, is it on?, what it costs)
_BAREBONES_OFF = (
    ("enable_checkpointing", lambda v: bool(v), "Checkpointing"),
    ("logger", lambda v: v is not None and v is not False, "Logging"),
    ("enable_progress_bar", lambda v: bool(v), "The progress bar"),
    ("log_every_n_steps", lambda v: v is not None and v != 0, "Logging"),
    ("enable_model_summary", lambda v: bool(v), "The model summary"),
    ("num_sanity_val_steps", lambda v: v is not None and v != 0, "Sanity checking"),
    ("fast_dev_run", lambda v: v is not False and v != 0, "A development run"),
    ("detect_anomaly", lambda v: bool(v), "Anomaly detection"),
    ("profiler", lambda v: v is not None, "Profiling"),
)


def _check_barebones(kw: Dict[str, Any]) -> None:
    """Refuse a feature barebones mode disables, then say what is off."""
    for flag, is_on, what in _BAREBONES_OFF:
        value = kw.get(flag)
        if is_on(value):
            raise ConfigError(
                f"`Trainer(barebones=True, {flag}={value!r})` was passed."
                f" {what} is off in barebones mode, which measures the Trainer's raw speed."
            )
    rank_zero_info(
        "You are running in `Trainer(barebones=True)` mode: checkpointing, the progress bar, the model summary,"
        " logging (`logger`, `log_every_n_steps`, `LightningModule.log`), sanity checking, `fast_dev_run`,"
        " anomaly detection and profiling are off, to show the Trainer's own overhead."
    )


def env_var_defaults(cls: type) -> Dict[str, Any]:
    """The `PL_<CLASS>_<ARGUMENT>` environment variables (e.g. PL_TRAINER_MAX_STEPS=7) as keyword defaults for
    `cls`'s arguments: Python literals ("False", "7", "[0, 1]") become values, any other text stays a string."""
    import ast
    import inspect
    import os

    found = {}
    for name in inspect.signature(cls).parameters:
        raw = os.environ.get(f"PL_{cls.__name__.upper()}_{name.upper()}")
        if not raw:
            continue
        try:
            found[name] = ast.literal_eval(raw)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            found[name] = raw  # e.g. PL_TRAINER_ACCELERATOR=gpu
    return found


def with_env_var_defaults(init: Any) -> Any:
    """Decorate `__init__`: arguments the caller leaves out take their PL_<CLASS>_<ARGUMENT> environment value."""
    import functools

    @functools.wraps(init)
    def wrapped(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **{**env_var_defaults(type(self)), **kwargs})

    return wrapped


def build_config(**kw: Any) -> TrainerConfig:
    if kw["barebones"]:
        _check_barebones(kw)
    device, acc, n_devices = _pick_device(kw["accelerator"], kw["devices"])
    # strategy names, device counts against the hardware and the launch environment are checked once, by
    # fastlight.strategies.resolve_strategy (Trainer.__init__), which knows e.g. that under torchrun each process
    # may see a single GPU
    strategy = kw["strategy"]
    strategy_name = strategy.lower() if isinstance(strategy, str) else type(strategy).__name__

    precision = normalize_precision(kw["precision"])
    if precision == "16-mixed" and acc == "cpu":
        rank_zero_warn(
            "You passed `Trainer(accelerator='cpu', precision='16-mixed')` but AMP with fp16 is not supported on"
            " CPU. Using `precision='bf16-mixed'` instead."
        )
        precision = "bf16-mixed"

    fast_dev_run = kw["fast_dev_run"]
    if isinstance(fast_dev_run, bool):
        fast_dev_run = int(fast_dev_run)
    if not isinstance(fast_dev_run, int) or fast_dev_run < 0:
        raise ConfigError(f"`Trainer(fast_dev_run={kw['fast_dev_run']!r})` is not a valid configuration. It should be"
                          " >= 0 (or a bool).")

    accumulate = kw["accumulate_grad_batches"]
    if isinstance(accumulate, bool) or not isinstance(accumulate, int) or accumulate < 1:
        raise ConfigError(f"`Trainer(accumulate_grad_batches={accumulate!r})` must be an int >= 1.")

    clip_val = kw["gradient_clip_val"]
    if clip_val is not None and (isinstance(clip_val, bool) or not isinstance(clip_val, (int, float))):
        raise ConfigTypeError(f"`Trainer(gradient_clip_val={clip_val!r})`: `gradient_clip_val` should be an int or a"
                              f" float. Got {clip_val!r}.")
    clip_algo = kw["gradient_clip_algorithm"]
    if clip_algo is not None:
        clip_algo = str(clip_algo).lower()
        if clip_algo not in ("norm", "value"):
            raise ConfigError(
                f"`Trainer(gradient_clip_algorithm={kw['gradient_clip_algorithm']!r})`: `gradient_clip_algorithm`"
                f" {kw['gradient_clip_algorithm']} is invalid. Allowed algorithms: 'norm', 'value'."
            )

    vci = kw["val_check_interval"]
    if vci is None:
        vci = 1.0
    # time-based: validate once this many seconds of wall-clock time passed since the last validation
    val_check_seconds = _parse_val_check_time(vci) if isinstance(vci, (str, dict, datetime.timedelta)) else None
    if val_check_seconds is not None:
        vci = 1.0
    if isinstance(vci, bool) or not isinstance(vci, (int, float)):
        raise ConfigError(f"`Trainer(val_check_interval={vci!r})` must be an int, a float in (0.0, 1.0] or a time"
                          " ('DD:HH:MM:SS', a datetime.timedelta or a dict of timedelta's arguments).")
    if isinstance(vci, float) and not (0.0 <= vci <= 1.0):
        raise ConfigError(f"`Trainer(val_check_interval={vci!r})`: you have passed invalid value {vci} for"
                          " val_check_interval, it has to be in [0.0, 1.0] or an int.")
    if isinstance(vci, int) and vci < 1:
        raise ConfigError(f"`Trainer(val_check_interval={vci!r})` must be an int >= 1 (or a float).")
    cve = kw["check_val_every_n_epoch"]
    if cve is not None and (isinstance(cve, bool) or not isinstance(cve, int)):
        raise ConfigError(f"`Trainer(check_val_every_n_epoch={cve!r})`: `check_val_every_n_epoch` should be an"
                          f" integer, found {cve!r}.")
    if cve is not None and cve < 1:
        raise ConfigError(f"`Trainer(check_val_every_n_epoch={cve!r})` must be None or an int >= 1.")
    if cve is None and isinstance(kw["val_check_interval"], float):
        raise ConfigError(
            "`val_check_interval` should be an integer or a time-based duration (str 'DD:HH:MM:SS',"
            " datetime.timedelta, or dict kwargs for timedelta) when `check_val_every_n_epoch=None`."
        )

    limits = {k: _limit(k, kw[k]) for k in ("limit_train_batches", "limit_val_batches", "limit_test_batches",
                                             "limit_predict_batches", "overfit_batches")}
    nsvs = kw["num_sanity_val_steps"]
    if nsvs is None:
        nsvs = 2
    if isinstance(nsvs, bool) or not isinstance(nsvs, int) or nsvs < -1:
        raise ConfigError(f"`Trainer(num_sanity_val_steps={nsvs!r})` must be an int >= -1.")
    nsvs = float("inf") if nsvs == -1 else nsvs
    log_every = kw["log_every_n_steps"]
    if log_every is None:
        log_every = 50
    if isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 0:
        raise ConfigError(f"`Trainer(log_every_n_steps={log_every!r})` must be an int >= 0.")

    max_steps = kw["max_steps"]
    if max_steps is None:
        max_steps = -1
    if not isinstance(max_steps, int) or max_steps < -1:
        raise ConfigError(f"`Trainer(max_steps={max_steps!r})`: `max_steps` must be a non-negative integer or -1 (no limit).")
    max_time = _parse_max_time(kw["max_time"])
    max_epochs = kw["max_epochs"]  # None (unset) is resolved when a fit starts: `resolve_loop_limits`
    if max_epochs is not None and (isinstance(max_epochs, bool) or not isinstance(max_epochs, int)
                                   or max_epochs < -1):
        raise ConfigError(f"`Trainer(max_epochs={max_epochs!r})`: `max_epochs` must be a non-negative integer or -1 (no limit).")
    reload_n = kw["reload_dataloaders_every_n_epochs"]
    if not isinstance(reload_n, int) or reload_n < 0:
        raise ConfigError(f"`Trainer(reload_dataloaders_every_n_epochs={reload_n!r})`: it should be an int >= 0.")

    enable_checkpointing = kw["enable_checkpointing"]
    enable_progress_bar = kw["enable_progress_bar"]
    enable_model_summary = kw["enable_model_summary"]
    barebones = bool(kw["barebones"])
    if barebones:
        log_every, nsvs = 0, 0
    enable_checkpointing = True if enable_checkpointing is None else enable_checkpointing
    enable_progress_bar = (not barebones) if enable_progress_bar is None else enable_progress_bar
    enable_model_summary = (not barebones) if enable_model_summary is None else enable_model_summary
    if barebones:
        enable_checkpointing = False

    if fast_dev_run:
        n = fast_dev_run
        limits["limit_train_batches"] = limits["limit_val_batches"] = n
        limits["limit_test_batches"] = limits["limit_predict_batches"] = n
        max_steps, max_epochs, nsvs, vci, cve = n, 1, 0, 1.0, 1
        val_check_seconds = None  # no time-based validation in fast_dev_run
        max_time = None
        rank_zero_info(f"Running in `fast_dev_run` mode: will run the requested loop using {n} batch(es)."
                       " Logging and checkpointing is suppressed.")
    if limits["overfit_batches"] > 0:
        limits["limit_train_batches"] = limits["overfit_batches"]
        limits["limit_val_batches"] = limits["overfit_batches"]

    # Lightning's info lines: limits given explicitly as 1 / 1.0, then the devices
    _say_limit("overfit_batches", kw["overfit_batches"])
    if not fast_dev_run:
        names = ("limit_test_batches", "limit_predict_batches", "val_check_interval")
        if not limits["overfit_batches"] > 0:
            names = ("limit_train_batches", "limit_val_batches") + names
        for name in names:
            _say_limit(name, kw[name])
    _log_device_info(acc)

    import os

    root = kw["default_root_dir"]
    root = os.getcwd() if root is None else os.fspath(root)
    if "://" not in root:  # a local folder: "~/runs" is the user's home's runs (Lightning expands it too)
        root = os.path.normpath(os.path.expanduser(root))
    return TrainerConfig(
        device=device, accelerator=acc, num_devices=n_devices, strategy=strategy_name, precision=precision,
        max_epochs=max_epochs, min_epochs=kw["min_epochs"], max_steps=max_steps, min_steps=kw["min_steps"],
        max_time=max_time, accumulate_grad_batches=accumulate, gradient_clip_val=clip_val,
        gradient_clip_algorithm=clip_algo, val_check_interval=vci, check_val_every_n_epoch=cve,
        val_check_time_interval=val_check_seconds,
        num_sanity_val_steps=nsvs, log_every_n_steps=log_every,
        # as Lightning reports it: True for one batch, else the int given (the batch count either way)
        fast_dev_run=True if fast_dev_run == 1 else (kw["fast_dev_run"] if fast_dev_run == 0 else fast_dev_run),
        enable_checkpointing=bool(enable_checkpointing), enable_progress_bar=bool(enable_progress_bar),
        enable_model_summary=bool(enable_model_summary), default_root_dir=root, deterministic=kw["deterministic"],
        benchmark=kw["benchmark"], detect_anomaly=bool(kw["detect_anomaly"]),
        inference_mode=bool(kw["inference_mode"]), barebones=barebones,
        reload_dataloaders_every_n_epochs=reload_n, use_distributed_sampler=bool(kw["use_distributed_sampler"]),
        fused=bool(kw["fused"]), flat_grads=_flat_grads(kw.get("flat_grads", "auto"), bool(kw["fused"]), device),
        batched_input=_bool_flag("batched_input", kw.get("batched_input", True)),
        cuda_graphs=_cuda_graphs(kw.get("cuda_graphs", False)),
        channels_last=_bool_flag("channels_last", kw.get("channels_last", False)),
        **limits,
    )


def resolve_loop_limits(cfg: TrainerConfig, has_timer: bool, warn: bool = True) -> None:
    """Lightning's defaults for the epoch limits, applied when a fit starts: max_epochs unset -> 1000 (with a
    warning) unless max_steps or a time limit ends the fit (then -1, no limit); min_epochs unset -> 1 when min_steps
    is set (so an early `should_stop` is re-checked), else 0."""
    if cfg.max_epochs is None:
        if cfg.max_steps == -1 and not has_timer:
            if warn:
                rank_zero_warn(
                    "`max_epochs` was not set. Setting it to 1000 epochs. To train without an epoch limit,"
                    " set `max_epochs=-1`.",
                    category=PossibleUserWarning,
                )
            cfg.max_epochs = 1000
        else:
            cfg.max_epochs = -1
    if cfg.min_epochs is None:
        cfg.min_epochs = 1 if cfg.min_steps is not None else 0


def _flat_grads(flat_grads: Any, fused: bool, device: torch.device) -> bool:
    """"auto": off, on the CPU and on CUDA alike (BENCHMARKS.md, "Flat gradient buffers: the decision"). A grad
    that exists is accumulated into by autograd (one extra add kernel per param and backward) where a None grad
    is taken over, plus the memset at zero_grad; the fused kernels already take all tensors in one launch, so
    the flat buffer saves nothing to pay for that (measured 4-10% slower end to end on an H200, slower on CPU).
    True builds them (persistent, contiguous grads; e.g. for tools that want one tensor)."""
    if isinstance(flat_grads, str) and flat_grads.lower() == "auto":
        return False
    if not isinstance(flat_grads, bool):
        raise ConfigError(f"`Trainer(flat_grads={flat_grads!r})` must be 'auto', True or False.")
    if flat_grads and not fused:
        raise ConfigError("`Trainer(flat_grads=True)` needs `fused=True`: flat gradient buffers are part of the"
                          " fused engine.")
    return flat_grads


def _bool_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"`Trainer({name}={value!r})` must be True or False.")
    return value


def _cuda_graphs(value: Any) -> Any:
    """False | True | "auto" (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    raise ConfigError(f"`Trainer(cuda_graphs={value!r})` must be False, True or 'auto'.")


def parse_num_batches(stage: str, length: float, limit: Union[int, float]) -> float:
    """Lightning's rule: an int limit caps the count, a float takes that fraction (at least one batch)."""
    if length == 0:  # nothing to limit: an empty loader, or `[]` from a dataloader hook (no batches, no error)
        return 0
    num = length
    if isinstance(limit, int):
        num = min(length, limit)
    elif isinstance(limit, float) and length != float("inf"):
        num = int(length * limit)
    elif limit != 1.0:
        raise ConfigError(
            f"When using an `IterableDataset` for `{stage}_dataloader`, `Trainer(limit_{stage}_batches)` must be"
            f" `1.0` or an int. An int specifies `num_{stage}_batches` to use."
        )
    if num == 0 and limit > 0.0 and isinstance(limit, float) and length != float("inf"):
        raise ConfigError(
            f"You requested to check {limit} of the `{stage}_dataloader` but {limit} * {length} < 1."
            f" Please increase the `limit_{stage}_batches` argument. Try at least"
            f" `limit_{stage}_batches={1.0 / length}`"
        )
    return num

