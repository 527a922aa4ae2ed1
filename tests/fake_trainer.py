"""A stand-in Trainer with Lightning's public attributes, for callback unit tests that need no training loop.

It also carries the few Lightning internals that Lightning's own callbacks read (fit_loop..., strategy,
_logger_connector), so the same script can drive a pytorch_lightning callback and a fastlight one side by side.
"""
import os
from types import SimpleNamespace

import torch

from fastlight.utilities.checkpoint_io import atomic_save, remove_checkpoint


class FakeStrategy:
    root_device = torch.device("cpu")

    def broadcast(self, obj, src=0):
        return obj

    def reduce_boolean_decision(self, decision, all=True):
        return bool(decision)

    def barrier(self, name=None):
        pass

    def remove_checkpoint(self, filepath):
        remove_checkpoint(filepath)


class FakeTrainer:
    def __init__(self, root, callbacks=(), loggers=(), num_training_batches=4, num_val_batches=2, max_epochs=10, **overrides):
        self.default_root_dir = str(root)
        self.callbacks = list(callbacks)
        self.loggers = list(loggers)
        self.logger = self.loggers[0] if self.loggers else None
        self.callback_metrics = {}
        self.logged_metrics = {}
        self._progress_bar_metrics = {}
        self.progress_bar_reads = 0
        self.current_epoch = 0
        self.global_step = 0
        self.should_stop = False
        self.is_global_zero = True
        self.global_rank = 0
        self.world_size = 1
        self.max_epochs = max_epochs
        self.max_steps = -1
        self.min_epochs = None
        self.min_steps = None
        self.num_training_batches = num_training_batches
        self.num_val_batches = [num_val_batches] if num_val_batches else []
        self.num_sanity_val_steps = 2
        self.num_sanity_val_batches = [min(2, num_val_batches)] if num_val_batches else []
        self.sanity_checking = False
        self.training = True
        self.state = SimpleNamespace(fn="fit", stage="train")
        self.fast_dev_run = False
        self.check_val_every_n_epoch = 1
        self.val_check_interval = 1.0
        self.enable_validation = bool(num_val_batches)
        self.log_every_n_steps = 1
        self.accumulate_grad_batches = 1
        self.precision = "32-true"
        self.ckpt_path = None
        self.lightning_module = torch.nn.Linear(2, 2)
        self.optimizers = []
        self.lr_scheduler_configs = []
        self.strategy = FakeStrategy()
        self.saved = []  # (path, weights_only)
        self._batches_that_stepped = 0
        self.is_last_batch = False
        self.validation_has_run = False
        # Lightning internals read by Lightning's callbacks
        self.fit_loop = SimpleNamespace(
            epoch_loop=SimpleNamespace(
                batch_progress=SimpleNamespace(is_last_batch=False),
                val_loop=SimpleNamespace(_has_run=False),
                _batches_that_stepped=0,
            )
        )
        self._logger_connector = SimpleNamespace(should_update_logs=True)
        for k, v in overrides.items():
            setattr(self, k, v)

    @property
    def progress_bar_metrics(self):
        self.progress_bar_reads += 1
        return self._progress_bar_metrics

    @property
    def checkpoint_callback(self):
        return next((c for c in self.callbacks if type(c).__name__ == "ModelCheckpoint"), None)

    def save_checkpoint(self, filepath, weights_only=False):
        ckpt = {"epoch": self.current_epoch, "global_step": self.global_step, "weights_only": weights_only}
        if not weights_only:
            ckpt["callbacks"] = {cb.state_key: cb.state_dict() for cb in self.callbacks}
        if self.is_global_zero:
            atomic_save(ckpt, filepath)
        self.saved.append((os.path.basename(filepath), weights_only))

    # helpers for scripted runs
    def set_last_batch(self, flag):
        self.is_last_batch = flag
        self.fit_loop.epoch_loop.batch_progress.is_last_batch = flag

    def step(self):
        self.global_step += 1
        self._batches_that_stepped += 1
        self.fit_loop.epoch_loop._batches_that_stepped += 1

    def ran_validation(self):
        self.validation_has_run = True
        self.fit_loop.epoch_loop.val_loop._has_run = True
