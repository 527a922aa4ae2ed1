import os

import pytest
import torch


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
