"""fastlight's own warnings point at the user's line (the first frame outside the fastlight package), echo the user's
source line rather than fastlight's, and are shown once per user line, as Python shows warnings by default."""
import os
import subprocess
import sys
import textwrap
import warnings

import pytest

from fastlight import _warn
from fastlight.utilities.rank_zero import rank_zero_warn
from fastlight.utilities.seed import seed_everything

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_user_script(tmp_path, code):
    script = tmp_path / "train_user.py"
    script.write_text(textwrap.dedent(code))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env.update(PYTHONPATH=REPO, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=str(tmp_path),
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return script, r.stderr


def test_a_warning_from_deep_in_the_fit_loop_points_at_the_users_fit_call_once(tmp_path):
    # training_step returning None warns on every step, from inside the fit loop (several fastlight frames deep).
    script, stderr = _run_user_script(tmp_path, """
        import torch
        from torch.utils.data import DataLoader, TensorDataset
        import fastlight as pl

        class Model(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.layer = torch.nn.Linear(4, 1)

            def training_step(self, batch, batch_idx):
                return None

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

        loader = DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=2)
        trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False)
        trainer.fit(Model(), loader)  # the line the warning must name
    """)
    fit_line = next(i for i, line in enumerate(script.read_text().splitlines(), 1) if "must name" in line)
    located = [line for line in stderr.splitlines() if "`training_step` returned `None`" in line]
    assert located, stderr
    assert located[0].startswith(f"{script}:{fit_line}: UserWarning"), stderr
    assert len(located) == 1, stderr  # 8 steps, one user line: shown once
    assert "trainer.fit(Model(), loader)" in stderr  # Python echoes the user's source line
    assert f"{os.sep}fastlight{os.sep}" not in stderr


def test_rank_zero_warn_called_from_user_code_points_at_that_line():
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        rank_zero_warn("from the user's own code")  # noqa
        line = sys._getframe().f_lineno - 1
    assert [(x.filename, x.lineno) for x in w] == [(__file__, line)]


def test_a_fastlight_helper_that_warns_names_the_callers_line():
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        seed_everything(2**40, verbose=False)
        line = sys._getframe().f_lineno - 1
    assert len(w) == 1 and "not in bounds" in str(w[0].message)
    assert (w[0].filename, w[0].lineno) == (__file__, line)


def test_user_frame_skips_every_fastlight_frame():
    frame = _warn.user_frame()
    assert frame.f_code.co_filename == __file__
    assert not _warn._is_internal(__file__)
    assert _warn._is_internal(_warn.__file__)
    assert _warn._is_internal("<frozen importlib._bootstrap>")


def test_warning_category_and_pytest_warns_still_work():
    with pytest.warns(RuntimeWarning, match="spiky"):
        rank_zero_warn("spiky", RuntimeWarning)
    with pytest.deprecated_call():
        from fastlight.utilities.rank_zero import rank_zero_deprecation

        rank_zero_deprecation("old")
