"""self.log semantics against Lightning: callback_metrics, logged_metrics, progress_bar_metrics, logger rows
(steps, `epoch` key, `_step`/`_epoch` suffixes, batch-size-weighted means, reduce_fx, dataloader suffixes)."""
import pytest
import torch

pl_ref = pytest.importorskip("pytorch_lightning")

import fastlight as fl  # noqa: E402
from _parity_helpers import build, make_logger, quiet_warnings, snapshot_callback, trainer_kwargs  # noqa: E402

quiet_warnings()


def _as_floats(d):
    return {k: float(v) for k, v in sorted(d.items())}


def _run(pl, tmp_path, model_kw, trainer_kw, method="fit", cls=None):
    torch.manual_seed(3)
    model = (cls or build(pl))(**model_kw)
    logger = make_logger(pl)
    snaps = []
    kw = trainer_kwargs(tmp_path, **trainer_kw)
    kw.update(logger=logger, callbacks=[snapshot_callback(pl, snaps)])
    trainer = pl.Trainer(**kw)
    out = getattr(trainer, method)(model)
    return dict(
        callback=_as_floats(trainer.callback_metrics),
        logged=_as_floats(trainer.logged_metrics),
        pbar=_as_floats(trainer.progress_bar_metrics),
        rows=logger.rows,
        hparams=logger.hparams,
        snaps=snaps,
        out=out,
        model=model,
    )


CASES = {
    "defaults_and_reductions": (dict(log_extra=True, n_train=36, n_val=20), dict(max_epochs=2, log_every_n_steps=2)),
    "uneven_last_batch_weighted_mean": (dict(log_extra=True, n_train=21, n_val=13, batch_size=4),
                                        dict(max_epochs=1, log_every_n_steps=1)),
    "two_val_loaders_dataloader_idx": (dict(log_extra=True, n_val_loaders=2, n_train=16),
                                       dict(max_epochs=2, log_every_n_steps=1)),
    "accumulation_log_steps": (dict(log_extra=True, n_train=40), dict(max_epochs=1, accumulate_grad_batches=2,
                                                                      log_every_n_steps=1)),
    "logging_in_hooks": (dict(log_extra=True, log_hooks=True, n_val_loaders=2, n_train=24, scheduler="step"),
                         dict(max_epochs=2, log_every_n_steps=1)),
    "val_inside_epoch": (dict(log_extra=True, n_train=32), dict(max_epochs=1, val_check_interval=0.5,
                                                                 log_every_n_steps=1)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_metrics_and_logger_rows_match_lightning(case, tmp_path):
    model_kw, trainer_kw = CASES[case]
    ref = _run(pl_ref, tmp_path / "pl", model_kw, trainer_kw)
    got = _run(fl, tmp_path / "fl", model_kw, trainer_kw)
    assert got["callback"] == ref["callback"]
    assert got["logged"] == ref["logged"]
    assert got["pbar"] == ref["pbar"]
    assert got["rows"] == ref["rows"]
    assert got["hparams"] == ref["hparams"]
    assert got["snaps"] == ref["snaps"]


@pytest.mark.parametrize("method", ["validate", "test"])
def test_evaluation_results_match_lightning(method, tmp_path):
    ref = _run(pl_ref, tmp_path / "pl", dict(log_extra=True, n_val_loaders=2), dict(), method=method)
    got = _run(fl, tmp_path / "fl", dict(log_extra=True, n_val_loaders=2), dict(), method=method)
    assert got["out"] == ref["out"]
    assert got["callback"] == ref["callback"]
    assert got["logged"] == ref["logged"]
    assert got["rows"] == ref["rows"]
