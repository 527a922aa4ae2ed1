"""`python -m fastlight.benchmarks`: the shipped suite's command line, its tables, and `--model` on a user's own
LightningModule (a file path and a package module, the CIFAR-10 example), under fastlight, pytorch_lightning and
a raw loop. Tiny models and few steps: these check behaviour, never speed."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import fastlight
from fastlight.benchmarks import cli, loading, user_model
from fastlight.benchmarks.harness import format_table

from .test_layering import imported_modules, package_files, package_of_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = '''
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import {framework} as pl


class TinyLit(pl.LightningModule):
    def __init__(self, hidden: int = 8, batch_size: int = 4):
        super().__init__()
        self.batch_size = batch_size
        self.net = nn.Sequential(nn.Linear(6, hidden), nn.ReLU(), nn.Linear(hidden, 3))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        data = TensorDataset(torch.randn(24, 6, generator=g), torch.randint(0, 3, (24,), generator=g))
        return DataLoader(data, batch_size=self.batch_size)


class NoData(TinyLit):
    train_dataloader = pl.LightningModule.train_dataloader


class NotAModule:
    pass
'''


def _write(tmp_path, name="user_model.py", framework="fastlight"):
    path = tmp_path / name
    path.write_text(TINY.format(framework=framework))
    return path


def _lines_fit(text, width=100):
    too_long = [line for line in text.splitlines() if len(line) > width]
    assert not too_long, too_long


# ---- the built-in suite -----------------------------------------------------------------------------------------


def test_suite_runs_one_benchmark_quick_and_writes_json(tmp_path, capsys):
    out = tmp_path / "suite.json"
    assert cli.main(["--quick", "--only", "grad_stats", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    _lines_fit(text)
    assert "== grad_stats" in text and "% bw:" in text  # the percentage is explained under the table
    data = json.loads(out.read_text())
    assert data["meta"]["quick"] is True and data["failed"] == []
    cands = {r["candidate"] for r in data["rows"]}
    assert "torch _foreach_norm" in cands and any(c.startswith("fastlight") for c in cands)
    assert all(r["bench"] == "grad_stats" and r["median_ms"] > 0 for r in data["rows"])


def test_suite_rejects_an_unknown_benchmark_naming_the_choices(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--only", "nope"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown benchmark(s) nope" in err and "grad_stats" in err and "e2e" in err


def test_model_only_options_need_model(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--only", "grad_stats", "--png", "x.png"])
    assert "--png needs --model" in capsys.readouterr().err


def test_repository_entry_point_is_the_package_cli():
    assert not [f for f in os.listdir(os.path.join(ROOT, "benchmarks")) if f.startswith("bench_")]
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--only", "nope"], cwd=ROOT, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert proc.returncode == 2
    assert "python -m benchmarks: error: --only: unknown benchmark(s) nope" in proc.stderr


def test_nothing_in_fastlight_imports_the_benchmarks():
    offenders = []
    for rel, src in package_files():
        if rel.startswith("fastlight/benchmarks/"):
            continue
        import ast

        for node in ast.walk(ast.parse(src)):
            for module in imported_modules(node, package_of_file(rel)):
                if module == "fastlight.benchmarks" or module.startswith("fastlight.benchmarks."):
                    offenders.append(f"{rel}:{node.lineno}")
    assert not offenders


def test_tables_fit_100_columns_and_explain_percentages_over_100():
    rows = [
        dict(name="a case with a long name " * 3, candidate="a candidate whose name is far too long for one column",
             median_ms=1.23456, ratio=1.0, gbps=123.4, pct_of_bw=131.0, bw_flag="c"),
        dict(name="a case with a long name " * 3, candidate="other", median_ms=2.5, ratio=2.02, gbps=61.0,
             pct_of_bw=65.5),
        dict(name="skipped case", candidate="gpu only", note="n/a: needs CUDA " + "and more words " * 10),
    ]
    text = format_table(rows, notes=["% bw: share of the reference stream."])
    _lines_fit(text)
    assert "131c" in text and "at most twice the last-level cache" in text
    assert "% bw: share of the reference stream." in text
    assert "n/a: needs CUDA" in text


# ---- --model: the user's own module -----------------------------------------------------------------------------


def _check_result(data, with_lightning=True):
    rows = {r["candidate"]: r for r in data["rows"]}
    expected = {"raw loop", "fastlight"} | ({"pytorch_lightning"} if with_lightning else set())
    assert expected <= set(rows), data["rows"]
    for name in expected:
        r = rows[name]
        assert r["median_ms"] > 0 and r["samples_per_s"] > 0, r
        shares = [r["pct_data"], r["pct_forward_backward"], r["pct_optimizer"], r["pct_framework"]]
        assert sum(shares) == pytest.approx(100.0), r  # every step's time is accounted for
    assert rows["raw loop"]["pct_framework"] == pytest.approx(0.0)
    assert set(data["split_ms"]["timed"]) == {"data", "forward_backward", "optimizer"}


def test_model_from_a_users_file_under_all_three(tmp_path, capsys):
    pytest.importorskip("pytorch_lightning")
    path = _write(tmp_path)
    out = tmp_path / "res.json"
    rc = cli.main(["--model", f"{path}:TinyLit", "--model-args", '{"hidden": 4}', "--batch-size", "6",
                   "--steps", "6", "--rounds", "1", "--device", "cpu", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    _lines_fit(text)
    for word in ("raw loop", "fastlight", "pytorch_lightning", "framework %:", "data %, fwd+bwd %, optim %:"):
        assert word in text
    data = json.loads(out.read_text())
    _check_result(data)
    assert data["settings"]["batch_size"] == 6 and data["settings"]["model_args"] == {"hidden": 4, "batch_size": 6}
    assert data["settings"]["user_framework"] == "fastlight"
    assert sys.modules["fastlight"] is fastlight  # the alias for the Lightning copy is gone


def test_png_chart(tmp_path):
    pytest.importorskip("matplotlib")  # optional: the chart is the only use of it
    path = _write(tmp_path)
    png = tmp_path / "chart.png"
    assert cli.main(["--model", f"{path}:TinyLit", "--steps", "3", "--rounds", "1", "--device", "cpu",
                     "--no-lightning", "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_model_from_a_package_module_whose_base_class_lives_in_a_sibling(tmp_path, monkeypatch):
    pl = pytest.importorskip("pytorch_lightning")
    pkg = tmp_path / "userpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "base.py").write_text(TINY.format(framework="fastlight"))
    (pkg / "models.py").write_text("from .base import TinyLit\n\n\nclass Wider(TinyLit):\n"
                                   "    def __init__(self):\n        super().__init__(hidden=16)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = loading.load_class("userpkg.models:Wider", "--model", "LightningModule")
    assert issubclass(cls, fastlight.LightningModule)
    base_before = sys.modules["userpkg.base"]
    pl_cls = loading.load_for_framework(cls, "pytorch_lightning")
    assert issubclass(pl_cls, pl.LightningModule) and not issubclass(pl_cls, fastlight.LightningModule)
    assert pl_cls().net[0].out_features == 16
    # everything the aliasing touched is back
    assert sys.modules["fastlight"] is fastlight and sys.modules["userpkg.base"] is base_before
    assert sys.modules["userpkg"].base is base_before  # the package attribute too
    assert all(not k.startswith("fastlight") or getattr(m, "__name__", k).startswith("fastlight")
               for k, m in sys.modules.items() if m is not None)
    assert pl.LightningModule.__module__.startswith("pytorch_lightning")


def test_a_lightning_written_module_is_loaded_for_fastlight_too(tmp_path):
    pl = pytest.importorskip("pytorch_lightning")
    path = _write(tmp_path, "pl_model.py", framework="pytorch_lightning")
    cls = loading.load_class(f"{path}:TinyLit", "--model", "LightningModule")
    assert issubclass(cls, pl.LightningModule)
    fl_cls = loading.load_for_framework(cls, "fastlight")
    assert issubclass(fl_cls, fastlight.LightningModule)
    assert sys.modules["pytorch_lightning"] is pl


def test_cifar10_example_module_and_datamodule(tmp_path):
    pytest.importorskip("torchvision")
    example = os.path.join(ROOT, "examples", "cifar10.py")
    result = user_model.run(f"{example}:LitResnet", datamodule=f"{example}:CIFAR10Data",
                            datamodule_args=json.dumps({"data_dir": str(tmp_path), "fake_train": 8}),
                            batch_size=2, steps=3, rounds=1, device="cpu", log=lambda s: None)
    _check_result(result, with_lightning="pytorch_lightning" in sys.modules or _has_lightning())
    assert result["settings"]["batch_size"] == 2
    _lines_fit(user_model.table(result))


def _has_lightning():
    try:
        import pytorch_lightning  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "no_such_module_xyz:Lit"], "no module named 'no_such_module_xyz'"),
        (["--model", "missing/file.py:Lit"], "no such file: missing/file.py"),
        (["--model", "{path}"], "expected MODULE:CLASS"),
        (["--model", "{path}:Nope"], "has no attribute 'Nope' (classes defined there: NoData, NotAModule, TinyLit)"),
        (["--model", "{path}:NotAModule"], "NotAModule is not a LightningModule"),
        (["--model", "{path}:NoData"], "NoData has no data: it defines no train_dataloader()"),
        (["--model", "{path}:TinyLit", "--model-args", "{{bad"], "--model-args: not valid JSON"),
        (["--model", "{path}:TinyLit", "--model-args", '{{"width": 3}}'], "constructing TinyLit with {'width': 3}"),
        (["--model", "{path}:TinyLit", "--precision", "8-bit"], "--precision '8-bit': expected one of"),
        (["--model", "{path}:TinyLit", "--device", "cuda:1"], "--device cuda:1: expected cpu, cuda or auto"),
    ],
)
def test_bad_model_input_gets_one_clear_line(tmp_path, capsys, argv, message):
    path = _write(tmp_path)
    argv = [a.format(path=path) for a in argv]
    argv += [] if "--device" in argv else ["--device", "cpu"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "Traceback" not in err


def test_a_candidate_that_cannot_run_the_module_says_why(tmp_path):
    path = tmp_path / "manual.py"
    path.write_text(TINY.format(framework="fastlight") + textwrap.dedent('''
        class Manual(TinyLit):
            def __init__(self):
                super().__init__()
                self.automatic_optimization = False

            def training_step(self, batch, batch_idx):
                opt = self.optimizers()
                opt.zero_grad()
                loss = super().training_step(batch, batch_idx)
                self.manual_backward(loss)
                opt.step()
    '''))
    result = user_model.run(f"{path}:Manual", steps=3, rounds=1, device="cpu", lightning=False, log=lambda s: None)
    rows = {r["candidate"]: r for r in result["rows"]}
    assert "manual optimization" in rows["raw loop"]["note"]
    assert rows["fastlight"]["median_ms"] > 0 and rows["fastlight"].get("pct_data") is None


def test_e2e_runs_every_candidate_and_says_why_one_is_missing(monkeypatch):
    """bench_e2e's wiring on a tiny conv net (the ResNet-18 takes seconds per step here): Lightning, Lightning with
    torch.compile (eager backend: compiling for real takes minutes on the CPU), the raw loop and fastlight get
    numbers; CUDA graphs get a reason."""
    pytest.importorskip("pytorch_lightning")
    pytest.importorskip("torchvision")
    import torch
    from torch import nn

    from fastlight.benchmarks import bench_e2e

    monkeypatch.setattr(bench_e2e, "_model", lambda: nn.Sequential(nn.Conv2d(3, 4, 3, stride=4), nn.Flatten(),
                                                                   nn.Linear(4 * 8 * 8, 10)))
    monkeypatch.setattr(bench_e2e, "_settings", lambda quick, device: ([4], ["32-true"], 4, 2, 1))
    monkeypatch.setattr(bench_e2e, "COMPILE_KWARGS", {"backend": "eager"})
    rows = {r["candidate"]: r for r in bench_e2e.run(quick=False, device="cpu")}
    for cand in ("pytorch_lightning", "pytorch_lightning + compile", "raw loop", "fastlight"):
        assert rows[cand]["samples_per_s"] > 0 and rows[cand]["setup_s"] >= 0, rows[cand]
        assert rows[cand]["run_s"] >= rows[cand]["setup_s"]
    assert rows["pytorch_lightning"]["speedup"] == pytest.approx(1.0)
    assert rows["fastlight cuda_graphs"]["note"] == "n/a: CUDA graphs need a CUDA device"
    assert bench_e2e.cuda_graphs_available() == ("cuda_graphs" in __import__("inspect").signature(
        fastlight.Trainer.__init__).parameters)
    _lines_fit(format_table(list(rows.values()), bench_e2e.COLUMNS, bench_e2e.NOTES))
    torch._dynamo.reset()


def test_raw_loop_uses_the_optimizer_and_step_scheduler_of_configure_optimizers(tmp_path):
    import torch

    from fastlight.benchmarks import compare

    path = _write(tmp_path)
    cls = loading.load_class(f"{path}:TinyLit", "--model", "LightningModule")
    made = []

    class WithScheduler(cls):
        def configure_optimizers(self):
            self.opt = torch.optim.SGD(self.parameters(), lr=0.1)
            sched = torch.optim.lr_scheduler.StepLR(self.opt, step_size=1, gamma=0.5)
            return {"optimizer": self.opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def factory():
        made.append(WithScheduler())
        return made[-1]

    torch.manual_seed(0)  # as raw_run seeds: the same initial weights
    module = factory()
    loader = module.train_dataloader()  # 6 batches of 4
    before = [p.detach().clone() for p in module.parameters()]
    compare.raw_run(factory, loader, "cpu", "32-true", 8)  # crosses an epoch boundary
    trained = made[-1]
    assert trained.opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** 8)
    assert trained is not module
    assert all(not torch.equal(a, b) for a, b in zip(before, trained.parameters()))  # every tensor was stepped
    with pytest.raises(compare.CandidateError, match="one optimizer"):
        compare._first_optimizer([torch.optim.SGD(module.parameters(), lr=1), torch.optim.SGD(module.parameters(), lr=1)])
