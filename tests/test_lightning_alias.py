"""Unmodified Lightning scripts on fastlight: `python -m fastlight run script.py ARGS` and `fastlight.alias()`.

Each test writes a small script in one of the import styles Lightning projects use, runs it in a fresh interpreter
(the hook must be installed before anything imports Lightning), and the script itself asserts that the classes it
got are fastlight's and prints a marker the test checks. The DDP test also checks the rank-zero globals per rank.
"""
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_LAUNCH_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "GROUP_RANK",
                "TORCHELASTIC_RUN_ID", "PL_GLOBAL_SEED", "FASTLIGHT_LAUNCHER_PID")

# a tiny model + fit, written against whatever `pl` names the import style under test binds
_FIT = """
import torch
from torch.utils.data import DataLoader, TensorDataset

class Model(LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

model = Model()
trainer = Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False)
trainer.fit(model, DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=4))
import fastlight
assert type(trainer) is fastlight.Trainer, type(trainer)
assert isinstance(model, fastlight.LightningModule)
assert type(model).__mro__[1] is fastlight.LightningModule
assert trainer.global_step == 2, trainer.global_step
print("FIT-OK", trainer.global_step)
"""

STYLES = {
    "import_pytorch_lightning_as_pl": """
import pytorch_lightning as pl
LightningModule, Trainer = pl.LightningModule, pl.Trainer
""",
    "from_pytorch_lightning_import": """
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities.types import STEP_OUTPUT
import fastlight.callbacks
assert ModelCheckpoint is fastlight.callbacks.ModelCheckpoint
""",
    "import_lightning_as_L": """
import lightning as L
LightningModule, Trainer = L.LightningModule, L.Trainer
import fastlight
assert L.pytorch is fastlight and L.Callback is fastlight.Callback and L.seed_everything is fastlight.seed_everything
""",
    "from_lightning_pytorch_import": """
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.utilities.rank_zero import rank_zero_only
import fastlight.callbacks, fastlight.utilities.rank_zero
assert EarlyStopping is fastlight.callbacks.EarlyStopping
assert rank_zero_only is fastlight.utilities.rank_zero.rank_zero_only
""",
    "import_lightning_pytorch_as_pl": """
import lightning.pytorch as pl
LightningModule, Trainer = pl.LightningModule, pl.Trainer
import pytorch_lightning
assert pytorch_lightning is pl  # both names are the one fastlight module
""",
}


def clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCH_VARS and not k.startswith("SLURM_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    return env


def run(cmd, cwd, timeout=120):
    proc = subprocess.run(cmd, env=clean_env(), capture_output=True, text=True, timeout=timeout, cwd=str(cwd))
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


@pytest.mark.slow  # fresh interpreters that import Lightning
@pytest.mark.parametrize("style", sorted(STYLES))
def test_fastlight_run_serves_each_lightning_import_style(tmp_path, style):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(STYLES[style]) + _FIT + "import sys\nprint('ARGV', sys.argv[1:], __name__)\n")
    proc = run([sys.executable, "-m", "fastlight", "run", str(script), "--lr", "0.1", "x"], tmp_path)
    assert "FIT-OK 2" in proc.stdout
    assert "ARGV ['--lr', '0.1', 'x'] __main__" in proc.stdout


@pytest.mark.slow  # fresh interpreters that import Lightning
def test_lightning_fabric_stays_the_installed_package(tmp_path):
    pytest.importorskip("lightning_fabric")
    script = tmp_path / "fabric_names.py"
    script.write_text(textwrap.dedent("""
        import lightning as L
        import lightning.fabric
        import lightning_fabric
        from lightning.fabric.utilities.seed import seed_everything
        assert lightning.fabric is lightning_fabric, lightning.fabric
        assert L.Fabric is lightning_fabric.Fabric
        assert L.Trainer.__module__.startswith("fastlight.")
        print("FABRIC-OK")
    """))
    assert "FABRIC-OK" in run([sys.executable, "-m", "fastlight", "run", str(script)], tmp_path).stdout


def test_fastlight_run_module_form_and_a_missing_name_names_fastlight(tmp_path):
    pkg = tmp_path / "proj"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "main.py").write_text(textwrap.dedent("""
        import sys
        import pytorch_lightning as pl
        import fastlight
        assert pl is fastlight
        try:
            import pytorch_lightning.no_such_module
        except ModuleNotFoundError as e:
            assert "fastlight" in str(e) and "fastlight.no_such_module" in str(e), e
        print("MODULE-OK", __name__, sys.argv[1:])
    """))
    proc = run([sys.executable, "-m", "fastlight", "run", "-m", "proj.main", "--flag"], tmp_path)
    assert "MODULE-OK __main__ ['--flag']" in proc.stdout


@pytest.mark.slow  # fresh interpreters that import Lightning
def test_alias_in_process_for_notebooks_and_refusal_after_lightning_import(tmp_path):
    script = tmp_path / "nb.py"
    script.write_text(textwrap.dedent("""
        import fastlight
        fastlight.alias()
        fastlight.alias()  # idempotent
        import lightning as L
        from pytorch_lightning.utilities.model_summary import ModelSummary
        import fastlight.utilities.model_summary as ms
        assert L.LightningModule is fastlight.LightningModule and ModelSummary is ms.ModelSummary
        print("ALIAS-OK")
    """))
    assert "ALIAS-OK" in run([sys.executable, str(script)], tmp_path).stdout

    late = tmp_path / "late.py"
    late.write_text(textwrap.dedent("""
        import pytorch_lightning  # the real one, imported before the hook
        import fastlight
        try:
            fastlight.alias()
        except RuntimeError as e:
            assert "before Lightning is imported" in str(e) and "pytorch_lightning" in str(e), e
            print("REFUSED")
    """))
    assert "REFUSED" in run([sys.executable, str(late)], tmp_path).stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_fastlight_run_ddp_ranks_rerun_through_the_hook_and_set_rank_zero_globals(tmp_path):
    """strategy='ddp' on 2 CPU processes (gloo) under `python -m fastlight run`: the second rank is started through
    fastlight too, and in each process fastlight's, Lightning's (aliased) and lightning_utilities' rank_zero_only.rank
    are the process's global rank."""
    pytest.importorskip("lightning_utilities")
    script = tmp_path / "ddp_train.py"
    script.write_text(textwrap.dedent("""
        import os, sys
        import torch
        from torch.utils.data import DataLoader, TensorDataset
        import lightning.pytorch as pl
        from lightning.pytorch.utilities.rank_zero import rank_zero_only as pl_rank_zero_only
        from lightning_utilities.core.rank_zero import rank_zero_only as lu_rank_zero_only

        class Model(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.layer = torch.nn.Linear(4, 1)

            def training_step(self, batch, batch_idx):
                return self.layer(batch[0]).pow(2).mean()

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

            def on_train_start(self):
                ranks = (self.global_rank, pl_rank_zero_only.rank, lu_rank_zero_only.rank)
                out = os.path.join(sys.argv[1], f"rank{self.global_rank}.txt")
                with open(out, "w") as f:
                    f.write(f"{ranks} {type(self.trainer).__module__}")

        trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
        trainer.fit(Model(), DataLoader(TensorDataset(torch.randn(16, 4)), batch_size=4))
    """))
    env_port = str(_free_port())
    env = clean_env()
    env["MASTER_PORT"] = env_port
    proc = subprocess.run([sys.executable, "-m", "fastlight", "run", str(script), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=180, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        text = (tmp_path / f"rank{rank}.txt").read_text()
        assert text == f"({rank}, {rank}, {rank}) fastlight.trainer.trainer", text
