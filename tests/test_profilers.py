"""Trainer(profiler=...): Lightning's profiler interface and reports, the actions timed, and nothing added to the
loop without a recording profiler."""
import logging

import pytest
import torch

import fastlight as fl
from _parity_helpers import build, quiet_warnings, trainer_kwargs
from fastlight.profilers import AdvancedProfiler, PassThroughProfiler, Profiler, SimpleProfiler
from fastlight.trainer.config import ConfigError

quiet_warnings()


class _Recording(SimpleProfiler):
    """SimpleProfiler that keeps what it recorded after the stage's report (describe() clears it)."""

    def describe(self):
        self.kept = {k: len(v) for k, v in self.recorded_durations.items()}
        self.report = self.summary()
        super().describe()


def _fit(pl, tmp_path, profiler, cls=None, **kw):
    torch.manual_seed(0)
    model = (cls or build(pl))(n_train=24, n_val=8, batch_size=8)
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, max_epochs=2, profiler=profiler, **kw))
    trainer.fit(model)
    return trainer


def test_simple_profiler_times_the_same_actions_as_lightning(tmp_path):
    pl_ref = pytest.importorskip("pytorch_lightning")
    from pytorch_lightning.profilers import SimpleProfiler as LightningSimple

    class LightningRecording(LightningSimple):
        def describe(self):
            self.kept = {k: len(v) for k, v in self.recorded_durations.items()}
            super().describe()

    ref, got = LightningRecording(), _Recording()
    _fit(pl_ref, tmp_path / "pl", ref)
    _fit(fl, tmp_path / "fl", got)
    # the loop's main actions, with the same number of calls (3 batches x 2 epochs, validation 1 batch x 2 + sanity)
    for action in ("run_training_epoch", "run_training_batch", "[Strategy]SingleDeviceStrategy.training_step",
                   "[Strategy]SingleDeviceStrategy.validation_step"):
        assert got.kept[action] == ref.kept[action], action
    assert got.kept["run_training_batch"] == 6
    # every action fastlight names is one Lightning names (fastlight times fewer: no-op hooks are not called)
    assert set(got.kept) <= set(ref.kept), set(got.kept) - set(ref.kept)
    assert got.report.startswith("FIT Profiler Report") and "Mean duration (s)" in got.report


def test_report_is_logged_or_written_to_a_file_per_stage(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="fastlight.profilers"):
        trainer = _fit(fl, tmp_path / "log", "simple")
    assert isinstance(trainer.profiler, SimpleProfiler)
    assert "FIT Profiler Report" in caplog.text and "run_training_batch" in caplog.text

    prof = SimpleProfiler(dirpath=str(tmp_path / "prof"), filename="perf")
    trainer = _fit(fl, tmp_path / "file", prof)
    trainer.test(trainer.lightning_module)
    fit_report = (tmp_path / "prof" / "fit-perf.txt").read_text()
    test_report = (tmp_path / "prof" / "test-perf.txt").read_text()
    assert "FIT Profiler Report" in fit_report and "run_training_batch" in fit_report
    assert "TEST Profiler Report" in test_report and "test_step" in test_report
    assert "run_training_batch" not in test_report  # each stage reports its own actions


def test_user_code_can_profile_its_own_actions_with_or_without_a_profiler(tmp_path):
    class UserActions(build(fl)):
        def training_step(self, batch, batch_idx):
            with self.trainer.profiler.profile("my_forward"):
                return super().training_step(batch, batch_idx)

    trainer = _fit(fl, tmp_path / "none", None, cls=UserActions)
    assert isinstance(trainer.profiler, PassThroughProfiler)
    prof = _Recording()
    _fit(fl, tmp_path / "simple", prof, cls=UserActions)
    assert prof.kept["my_forward"] == 6


def test_advanced_profiler_reports_cprofile_stats_per_action_with_nested_actions(tmp_path):
    prof = AdvancedProfiler(dirpath=str(tmp_path / "adv"), filename="adv")
    _fit(fl, tmp_path, prof)
    report = (tmp_path / "adv" / "fit-adv.txt").read_text()
    assert "Profile stats for: run_training_batch" in report
    assert "Profile stats for: [Strategy]SingleDeviceStrategy.training_step" in report
    assert "function calls" in report  # pstats output


def test_without_a_recording_profiler_the_loop_dispatches_unwrapped(tmp_path):
    trainer = _fit(fl, tmp_path, None)
    assert "_call_module" not in vars(trainer)  # the class's dispatcher, no timing wrapper
    assert trainer.fit_loop._training_step_fn == trainer.lightning_module.training_step


def test_profiler_argument_errors_name_the_choices():
    with pytest.raises(ConfigError, match="'simple', 'advanced'"):
        fl.Trainer(accelerator="cpu", profiler="fast")
    with pytest.raises(ConfigError, match="not supported by fastlight"):
        fl.Trainer(accelerator="cpu", profiler="pytorch")
    with pytest.raises(ValueError, match="never started"):
        SimpleProfiler().stop("x")

    class Custom(Profiler):
        def start(self, action_name):
            pass

        def stop(self, action_name):
            pass

    assert isinstance(fl.Trainer(accelerator="cpu", profiler=Custom()).profiler, Custom)
