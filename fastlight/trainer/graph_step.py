"""Whole-step CUDA graph capture: `Trainer(cuda_graphs=True | "auto")`.

The automatic-optimization step (training_step forward, backward, the fused engine's clip-stats pass, the fused
optimizer step, the on-device loss-scale update) is captured once as one CUDA graph and replayed per batch after the
batch is copied into static input buffers. Everything outside the step stays Python as before: the batch hooks,
LR schedulers, logging, validation, checkpointing.

    batches 0..WARMUP-1     eager steps on a side stream (lazy init, allocator warm-up, as torch asks)
    batch WARMUP            verification and capture, from one saved state S (params, optimizer state, scaler
                            state, CUDA RNG): (1) an eager step from S, its loss and params kept; (2) S put back,
                            the step captured (nothing runs during capture); (3) S put back, the graph replayed on
                            the same batch; (4) loss and params compared within fp32 tolerance. Agreement: the
                            replay's result is this batch's step. A capture error or a mismatch: S put back, the
                            batch stepped eagerly, and every later batch too; the cause is said once (info).
    later batches           copy the batch into the static inputs, write a changed LR into the graph's device LR
                            tensors, replay, then hand each `self.log` call of training_step to the loop with the
                            graph's static output (so step values, epoch means, progress bar, loggers and
                            callback_metrics see what an eager step logs), and return clones of the outputs.
                            A batch whose shapes differ (the last partial batch) runs eagerly; a different batch
                            elsewhere, or an optimizer hyperparameter other than the LR that changed (a scheduler
                            cycling momentum), ends capture for the run (said once).

Refused up front (one info line, eager): a CPU device, manual optimization, an overridden optimizer_step, several
optimizers or an optimizer the fused engine does not step (fused=False, other classes), hooks that run inside the
step (on_before_zero_grad, optimizer_zero_grad, on_before_backward, backward, on_after_backward,
on_before_optimizer_step, configure_gradient_clipping), gradient accumulation, distributed runs, flat gradient
buffers, a recording profiler, anomaly detection. Python values read inside training_step (batch_idx,
self.global_step, ...) are frozen at capture: a step that branches on them must not be captured.

The CUDA specifics sit in `_CudaBackend`; the orchestration above is the same with any backend, which lets the CPU
tests drive it with a backend that re-runs the step function in place of a replay.
"""
import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from fastlight.utilities.rank_zero import rank_zero_info

WARMUP = 3
_STEP_HOOKS = ("on_before_zero_grad", "optimizer_zero_grad", "on_before_backward", "backward", "on_after_backward",
               "on_before_optimizer_step")
_RTOL, _ATOL = 1e-4, 1e-6  # fp32 tolerance for the capture-time comparison


class CaptureRefused(Exception):
    """The step cannot be captured (the message says why)."""


# --------------------------------------------------------------------------------------------------- refusal
def refusal(trainer: Any, loop: Any, module: Any, need_cuda: bool = True) -> Optional[str]:
    """Why this run's step cannot be captured, or None. (need_cuda=False: every condition but the device, for the
    CPU tests' stand-in backend.)"""
    from fastlight.core.module import LightningModule
    from fastlight.engine.scaler import _step_takes_amp_kwargs

    cfg = trainer._cfg
    device = trainer.strategy.root_device
    if need_cuda and device.type != "cuda":
        return f"the step runs on a {device.type} device; CUDA graphs need a CUDA device"
    if need_cuda and not torch.cuda.is_available():
        return "CUDA is not available"
    if not module.automatic_optimization:
        return "manual optimization (the step is the user's own code)"
    if type(module).optimizer_step is not LightningModule.optimizer_step or "optimizer_step" in vars(module):
        return "`optimizer_step` is overridden"
    if len(trainer.optimizers) != 1:
        return f"{len(trainer.optimizers)} optimizers (one is captured)"
    opt = trainer.optimizers[0]
    engine = trainer._precision._engine
    if engine is None or not _step_takes_amp_kwargs(opt) or not engine.manages(opt):
        return (f"the optimizer {type(opt).__name__} is not one of the fused engine's (fused=True with Adam, AdamW"
                " or SGD)")
    if not loop._direct_step:
        return "the optimizer step cannot run directly (step pre-hooks or a custom precision plugin)"
    if cfg.accumulate_grad_batches != 1:
        return "gradient accumulation is not captured"
    if trainer.strategy.is_distributed:
        return "distributed runs are not captured"
    if getattr(loop, "_strategy_backward", None) is not None:
        return f"the strategy {type(trainer.strategy).__name__} takes over the backward"
    if engine.flat_list:
        return "flat gradient buffers (flat_grads=True) are not captured"
    if trainer.profiler.profiling:
        return "a profiler records the step"
    if cfg.detect_anomaly or torch.is_anomaly_enabled():
        return "anomaly detection is on"
    active = trainer._active_hooks
    for hook in _STEP_HOOKS:
        if hook in active:
            return f"the `{hook}` hook runs inside the step (Python in a graph runs only at capture)"
    if type(module).configure_gradient_clipping is not LightningModule.configure_gradient_clipping:
        return "`configure_gradient_clipping` is overridden (Python in a graph runs only at capture)"
    return None


# tests only: a factory (trainer -> backend) standing in for CUDA, so the orchestration runs on the CPU
_test_backend: Optional[Callable[[Any], Any]] = None


def setup(trainer: Any, loop: Any, module: Any) -> Optional["GraphStep"]:
    """The run's GraphStep, or None (flag off, or refused: said once, at info level)."""
    mode = trainer._cfg.cuda_graphs
    if not mode:
        return None
    reason = refusal(trainer, loop, module, need_cuda=_test_backend is None)
    if reason is not None:
        rank_zero_info(f"cuda_graphs={mode!r}: not capturing the training step: {reason}. Running eagerly.")
        return None
    backend = _CudaBackend(trainer.strategy.root_device) if _test_backend is None else _test_backend(trainer)
    return GraphStep(trainer, loop, backend)


# --------------------------------------------------------------------------------------------------- pieces
def _leaves(batch: Any, out: List[Any]) -> List[Any]:
    if isinstance(batch, (list, tuple)):
        for b in batch:
            _leaves(b, out)
    elif isinstance(batch, dict):
        for k in batch:
            _leaves(batch[k], out)
    else:
        out.append(batch)
    return out


def _structure(batch: Any) -> Any:
    """The batch's signature: containers, tensor (shape, dtype, device), other leaves by value."""
    if isinstance(batch, (list, tuple)):
        return (type(batch), tuple(_structure(b) for b in batch))
    if isinstance(batch, dict):
        return (dict, tuple((k, _structure(v)) for k, v in batch.items()))
    if isinstance(batch, Tensor):
        return (Tensor, tuple(batch.shape), batch.dtype, batch.device, batch.stride())
    return (type(batch), batch)


def _rebuild(batch: Any, leaves: List[Any], pos: List[int]) -> Any:
    if isinstance(batch, (list, tuple)):
        items = [_rebuild(b, leaves, pos) for b in batch]
        return type(batch)(*items) if hasattr(batch, "_fields") else type(batch)(items)
    if isinstance(batch, dict):
        return type(batch)((k, _rebuild(v, leaves, pos)) for k, v in batch.items())
    leaf = leaves[pos[0]]
    pos[0] += 1
    return leaf


class _DeviceLr:
    """Stands in for the fused optimizer's per-group LR cache: the LR as a tensor on the params' device that the
    kernels read there (so a graph reads the value of the moment); refilled when the group's LR changes."""

    def __init__(self, lr: float, device: torch.device) -> None:
        self.value = float(lr)
        self.tensor = torch.full((), self.value, dtype=torch.float64, device=device)

    def get(self, lr: Any) -> Tensor:
        if isinstance(lr, Tensor):
            return lr
        if lr != self.value:
            self.value = float(lr)
            self.tensor.fill_(self.value)  # a device write, in stream order: no sync
        return self.tensor


class _LogRecorder:
    """Replaces `trainer._log` while the step is captured (or re-run for verification): each `self.log` call is
    kept with its value cloned inside the graph (a static output) and replayed after every replay."""

    def __init__(self, trainer: Any, record: bool) -> None:
        self.trainer = trainer
        self.record = record
        self.calls: List[Tuple[tuple, dict]] = []

    def __call__(self, module: Any, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        if not self.record:
            return
        if isinstance(value, Tensor):
            value = value.detach().clone()  # inside the graph: refreshed by every replay
        elif not isinstance(value, (int, float)):
            raise CaptureRefused(f"`self.log({name!r}, ...)` of a {type(value).__name__} in training_step (its"
                                 " update runs on the host)")
        self.calls.append(((name, value) + args, kwargs))

    def __enter__(self) -> "_LogRecorder":
        self.trainer.__dict__["_log"] = self
        return self

    def __exit__(self, *exc: Any) -> None:
        self.trainer.__dict__.pop("_log", None)


def _cause(err: BaseException) -> str:
    """The error's first line and the innermost frame of user code (e.g. the line that synchronized). When ending
    a broken capture raised again, the original error (its context) is the one that names the line."""
    chain = []
    e: Optional[BaseException] = err
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    for e in reversed(chain):  # the original error first
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0]
        for fr in reversed(traceback.extract_tb(e.__traceback__)):
            f = fr.filename.replace("\\", "/")
            if "/torch/" not in f and "/fastlight/" not in f:
                return f"{type(e).__name__}: {msg} (at {fr.filename}:{fr.lineno}: {fr.line})"
    msg = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return f"{type(err).__name__}: {msg}"


# --------------------------------------------------------------------------------------------------- backends
class _CudaBackend:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stream = torch.cuda.Stream(device=device)

    def side(self) -> Any:
        """Context for eager warm-up steps on a side stream (torch's rule before capture)."""
        backend = self

        class _Side:
            def __enter__(self) -> None:
                backend.stream.wait_stream(torch.cuda.current_stream(backend.device))
                self._ctx = torch.cuda.stream(backend.stream)
                self._ctx.__enter__()

            def __exit__(self, *exc: Any) -> None:
                self._ctx.__exit__(*exc)
                torch.cuda.current_stream(backend.device).wait_stream(backend.stream)

        return _Side()

    def capture(self, fn: Callable[[], Any]) -> Tuple[Any, Any]:
        torch.cuda.synchronize(self.device)  # capture time only: all prior work done before the capture starts
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self.stream):
            out = fn()
        return graph, out

    def replay(self, graph: Any, fn: Callable[[], Any], out: Any) -> None:
        graph.replay()

    def rng_state(self) -> Tensor:
        return torch.cuda.get_rng_state(self.device)

    def set_rng_state(self, state: Tensor) -> None:
        torch.cuda.set_rng_state(state, self.device)

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)  # capture time only: the verification reads results on the host


# --------------------------------------------------------------------------------------------------- the step
class GraphStep:
    def __init__(self, trainer: Any, loop: Any, backend: Any) -> None:
        self.trainer = trainer
        self.loop = loop
        self.backend = backend
        self.warm = 0
        self.graph: Any = None
        self.failed = False
        self.static_inputs: List[Any] = []
        self.static_batch_args: Any = None
        self.signature: Any = None
        self.static_out: Any = None
        self.log_calls: List[Tuple[tuple, dict]] = []
        self.lr_caches: Dict[int, _DeviceLr] = {}
        self.hyper: List[dict] = []
        self.static_grads: List[Optional[Tensor]] = []
        self.grads_moved = False

    # ---- which batches -------------------------------------------------------------------------------
    def takes(self, batch: Any) -> bool:
        """True when this batch's step goes through here (warm-up, capture or replay); False: the loop's eager step
        (capture abandoned, SWA's no-backward epoch, or a batch of other shapes: the last partial batch)."""
        if self.failed or self.loop._skip_backward:
            return False
        if self.graph is None:
            return True
        if _structure(batch) == self.signature:
            return True
        if not self.loop.is_last_batch:
            self._give_up("batch shapes change (the graph holds the first captured batch's shapes)")
        self.grads_moved = True  # the eager step replaces `.grad`: point it back before the next replay
        return False

    def _give_up(self, cause: str) -> None:
        self.failed = True
        self.graph = None
        self.static_out = None
        rank_zero_info(f"cuda_graphs: falling back to eager steps for the rest of the run: {cause}.")

    # ---- the step ------------------------------------------------------------------------------------
    def run(self, batch_args: tuple, batch_idx: int) -> Dict[str, Any]:
        loop = self.loop
        if self.graph is None:
            if self.warm < WARMUP or loop.is_last_batch:  # (a last batch may be partial: not the one to capture)
                self.warm += 1
                with self.backend.side():
                    return loop._direct_automatic_step(batch_args, batch_idx)
            return self._capture(batch_args, batch_idx)
        return self._replay(batch_args)

    def _optimizer(self) -> Any:
        return self.trainer.optimizers[0]

    def _params(self) -> List[Tensor]:
        return [p for g in self._optimizer().param_groups for p in g["params"]]

    def _state_tensors(self) -> List[Tensor]:
        """Every tensor the step mutates besides the params: optimizer state, the loss scaler's state."""
        opt = self._optimizer()
        out = [v for p in self._params() for v in opt.state.get(p, {}).values() if isinstance(v, Tensor)]
        scaler = self.trainer._precision._engine.scaler
        out += [t for t in (scaler._scale, scaler._growth_tracker) if isinstance(t, Tensor)]
        return out

    def _save(self) -> tuple:
        with torch.no_grad():
            return ([p.detach().clone() for p in self._params()], [t.clone() for t in self._state_tensors()],
                    self.backend.rng_state(), self.trainer.loop_progress.fit.optim.state_dict())

    def _restore(self, saved: tuple) -> None:
        """In place: the graph holds these tensors' addresses."""
        params, states, rng, optim_progress = saved
        with torch.no_grad():
            for p, v in zip(self._params(), params):
                p.copy_(v)
            for t, v in zip(self._state_tensors(), states):
                t.copy_(v)
        self.backend.set_rng_state(rng)
        self.trainer.loop_progress.fit.optim.load_state_dict(optim_progress)  # global_step with it

    def _step_fn(self) -> Any:
        """The captured region: training_step, backward, the fused optimizer side."""
        loop, trainer = self.loop, self.trainer
        opt = self._optimizer()
        loss, extra = loop._training_step(self.static_batch_args)
        if loss is None:
            raise CaptureRefused("training_step returned None")
        trainer._precision.backward(trainer, loss, opt)
        if loop._engine_step is not None:
            loop._engine_step(trainer, trainer._precision, opt, loss)
        else:
            opt.step()
        return loss.detach(), {k: (v.detach() if isinstance(v, Tensor) else v) for k, v in extra.items()}

    def _capture(self, batch_args: tuple, batch_idx: int) -> Dict[str, Any]:
        loop, trainer = self.loop, self.trainer
        opt = self._optimizer()
        batch = batch_args[0]
        saved = self._save()
        try:
            # static inputs: this batch's tensors copied into buffers the graph reads
            leaves = _leaves(batch, [])
            self.static_inputs = [x.clone() if isinstance(x, Tensor) else x for x in leaves]
            static_batch = _rebuild(batch, self.static_inputs, [0])
            self.static_batch_args = (static_batch,) + tuple(batch_args[1:])
            self.signature = _structure(batch)
            device = self.backend.device if hasattr(self.backend, "device") else None
            for gi, group in enumerate(opt.param_groups):
                lr_device = group["params"][0].device if device is None else device
                self.lr_caches[gi] = opt._fl_lr[gi] = _DeviceLr(group["lr"], lr_device)
            self.hyper = [{k: v for k, v in g.items() if k not in ("params", "lr")} for g in opt.param_groups]
            # (1) the eager reference step from S (grads None, as after the loop's zero_grad)
            opt.zero_grad(set_to_none=True)
            with _LogRecorder(trainer, record=False):
                ref_loss, _ = self._step_fn()
            ref_loss = ref_loss.float().clone()
            ref_params = [p.detach().clone() for p in self._params()]
            # (2) capture from S (grads None: backward allocates them in the graph's pool; replays refill them)
            self._restore(saved)
            opt.zero_grad(set_to_none=True)
            recorder = _LogRecorder(trainer, record=True)
            with recorder:
                graph, out = self.backend.capture(self._step_fn)
            # (3) replay from S on the same batch
            self._restore(saved)
            self.backend.replay(graph, self._step_fn, out)
            self.backend.synchronize()
            loss, _ = out
            # (4) compare
            mismatch = None
            if not torch.allclose(loss.float(), ref_loss, rtol=_RTOL, atol=_ATOL, equal_nan=True):
                mismatch = f"the replayed loss {loss.item():.6g} differs from the eager {ref_loss.item():.6g}"
            else:
                for i, (p, r) in enumerate(zip(self._params(), ref_params)):
                    if not torch.allclose(p.detach().float(), r.float(), rtol=_RTOL, atol=_ATOL, equal_nan=True):
                        mismatch = f"parameter {i} after the replayed step differs from the eager step's"
                        break
            if mismatch is not None:
                raise CaptureRefused(f"verification failed: {mismatch}")
        except Exception as err:  # capture errors (a host sync, an unsupported op) and mismatches: eager from S
            self.graph = None
            self._restore(saved)
            opt.zero_grad(set_to_none=True)
            self._give_up(str(err) if isinstance(err, CaptureRefused) else f"capture failed: {_cause(err)}")
            return loop._direct_automatic_step(batch_args, batch_idx)
        self.graph, self.static_out, self.log_calls = graph, out, recorder.calls
        self.static_grads = [p.grad for p in self._params()]
        rank_zero_info(f"cuda_graphs: the training step is captured (batch {batch_idx} of epoch"
                       f" {trainer.current_epoch}) and verified against an eager step; replaying it per batch.")
        return self._finish()

    def _replay(self, batch_args: tuple) -> Dict[str, Any]:
        opt = self._optimizer()
        params = self._params()
        if self.grads_moved or (params and params[0].grad is not self.static_grads[0]):
            # an eager step or a zero_grad (validation's on_validation_model_zero_grad) replaced `.grad`: the
            # graph's buffers are the ones the replay writes, so they are what `.grad` shows afterwards
            for p, g in zip(params, self.static_grads):
                p.grad = g
            self.grads_moved = False
        for gi, group in enumerate(opt.param_groups):
            cache = self.lr_caches[gi]
            if group["lr"] != cache.value:
                cache.get(group["lr"])
        for gi, group in enumerate(opt.param_groups):
            for k, v in self.hyper[gi].items():
                now = group.get(k)
                if now is not v and (isinstance(v, Tensor) or isinstance(now, Tensor) or now != v):
                    self._give_up(f"the optimizer's {k!r} changed (only the learning rate is read on the device)")
                    self.grads_moved = True
                    return self.loop._direct_automatic_step(batch_args, self.loop.epoch_batch_idx)
        for static, new in zip(self.static_inputs, _leaves(batch_args[0], [])):
            if isinstance(static, Tensor):
                static.copy_(new, non_blocking=True)
        self.backend.replay(self.graph, self._step_fn, self.static_out)
        return self._finish()

    def _finish(self) -> Dict[str, Any]:
        """After a replay: the step's counters, the logged values, the outputs (clones: the next replay rewrites
        the static ones)."""
        loop, trainer = self.loop, self.trainer
        optimizer_progress = trainer.loop_progress.fit.optim.optimizer
        optimizer_progress.zero_grad.increment_by(1)
        optimizer_progress.step.increment_by(1)  # trainer.global_step moves on
        module = trainer._module
        d = module.__dict__
        prev = d["_current_fx_name"]
        d["_current_fx_name"] = "training_step"
        try:
            log = trainer._log
            for args, kwargs in self.log_calls:
                log(module, *args, **kwargs)
        finally:
            d["_current_fx_name"] = prev
        loss, extra = self.static_out
        out = {"loss": loss.clone()}
        for k, v in extra.items():
            out[k] = v.clone() if isinstance(v, Tensor) else v
        return out
