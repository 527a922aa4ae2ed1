"""Trainer(profiler=...): Lightning's profiler interface and reports, the actions timed, and nothing added to the
loop without a recording profiler."""
import logging

import pytest
import torch

import fastlight as fl
from _parity_helpers import build, quiet_warnings, trainer_kwargs
from fastlight.profilers import AdvancedProfiler, PassThroughProfiler, Profiler, PyTorchProfiler, SimpleProfiler
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
    # the records stay for the profiler's life, as Lightning's: a later stage's report holds the earlier ones too
    assert "run_training_batch" in test_report


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
        fl.Trainer(accelerator="cpu", profiler="xla")
    with pytest.raises(ValueError, match="sort_by_key"):
        PyTorchProfiler(sort_by_key="wall_time")
    with pytest.raises(KeyError, match="sort_by"):
        PyTorchProfiler(table_kwargs={"sort_by": "count"})
    with pytest.raises(ValueError, match="Schedule should be a callable"):
        PyTorchProfiler(schedule=3)
    with pytest.raises(ValueError, match="never started"):
        SimpleProfiler().stop("x")

    class Custom(Profiler):
        def start(self, action_name):
            pass

        def stop(self, action_name):
            pass

    assert isinstance(fl.Trainer(accelerator="cpu", profiler=Custom()).profiler, Custom)


def test_pytorch_profiler_records_actions_modules_and_ops_and_exports_a_chrome_trace(tmp_path):
    import json

    prof = PyTorchProfiler(dirpath=str(tmp_path / "torch"), filename="perf", row_limit=-1,
                           table_kwargs={"max_name_column_width": 120})
    trainer = _fit(fl, tmp_path, prof)
    assert isinstance(fl.Trainer(accelerator="cpu", profiler="pytorch").profiler, PyTorchProfiler)
    report = (tmp_path / "torch" / "fit-perf.txt").read_text()
    assert "FIT Profiler Report" in report and "Profile stats for: records" in report
    assert "[pl][profile][Strategy]SingleDeviceStrategy.training_step" in report
    assert "[pl][module]torch.nn.modules.linear.Linear: net.0" in report  # record_module_names
    assert "aten::addmm" in report  # the ops themselves
    trace = json.loads((tmp_path / "torch" / "fit-perf.pt.trace.json").read_text())
    assert any(e.get("name", "").startswith("[pl][profile]run_training_batch") for e in trace["traceEvents"])
    assert not trainer.lightning_module.net[0]._forward_hooks  # module hooks removed after the stage


def test_pytorch_profiler_with_a_schedule_records_only_its_window(tmp_path):
    import torch.profiler as tp

    prof = PyTorchProfiler(dirpath=str(tmp_path / "w"), filename="w", export_to_chrome=False,
                           schedule=tp.schedule(wait=1, warmup=1, active=1, repeat=1), record_module_names=False,
                           row_limit=-1, table_kwargs={"max_name_column_width": 120})
    _fit(fl, tmp_path, prof)
    assert "FIT Profiler Report" in (tmp_path / "w" / "fit-w.txt").read_text()
    # one active step (wait 1, warm-up 1) out of the 6 training and 3 validation steps
    names = [e.name for e in prof.function_events]
    assert names.count("[pl][profile][Strategy]SingleDeviceStrategy.training_step") == 1
    unscheduled = PyTorchProfiler(export_to_chrome=False, record_module_names=False)
    _fit(fl, tmp_path / "all", unscheduled)
    names = [e.name for e in unscheduled.function_events]
    assert names.count("[pl][profile][Strategy]SingleDeviceStrategy.training_step") == 6
