import gc
import os
import sys

import pytest
import torch

# The test modules share helpers that sit next to them (_parity_helpers, optim_helpers, ...): make them importable
# whichever file pytest collects first, also when one file is run alone.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def pytest_report_header(config):
    import fastlight.ops as ops

    return [
        f"fastlight ops backend: cpu={ops.backend('cpu')} ({ops.backend_reason('cpu')}); "
        f"cuda={ops.backend('cuda')}; torch {torch.__version__}; "
        f"FASTLIGHT_KERNELS={os.environ.get('FASTLIGHT_KERNELS', '')!r}"
    ]


@pytest.fixture
def cuda_device():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    return torch.device("cuda")


def _rank_zero_holders():
    """Every rank_zero_only function whose .rank a test may change (ours, and Lightning's if installed)."""
    from fastlight.utilities import rank_zero

    holders = [rank_zero.rank_zero_only]
    try:
        import lightning_fabric.utilities.rank_zero as fabric_rz
        import lightning_utilities.core.rank_zero as util_rz

        holders += [fabric_rz.rank_zero_only, util_rz.rank_zero_only]
    except ImportError:
        pass
    return holders


@pytest.fixture(autouse=True)
def _isolate_global_rank():
    """Tests run as rank 0. Lightning reads its rank from the environment when first imported, so a test
    that imports it while faking LOCAL_RANK=1 would silence Lightning's loggers for the whole session;
    and fastlight's strategies set the rank when a process group starts."""
    holders = _rank_zero_holders()
    for h in holders:
        h.rank = 0
    yield
    for h in holders:
        h.rank = 0


# Tests that start several processes (DDP launches, torchrun, spawn) run one at a time on one pytest-xdist worker
# (`--dist loadgroup`, scripts/test.sh): two of them at once on a 2-core machine oversubscribe it and hit their
# timeouts. Their ports are free ports picked per run, so they are safe beside the other tests.
_MULTI_PROCESS_FILES = ("test_ddp_launch.py", "test_ddp_trainer.py", "test_ddp_fsdp.py")


def pytest_collection_finish(session):
    # What collection loaded (torch, Lightning, the logger clients, the test modules: about a million objects) stays
    # alive for the whole run; freezing it keeps each gc.collect() from walking it again. The batch-size finders call
    # gc.collect() per trial, as Lightning's does: 0.23 s each here before, a fifth of that after.
    gc.freeze()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in _MULTI_PROCESS_FILES:
            item.add_marker(pytest.mark.xdist_group("multi_process"))
