"""Shared test settings: a hypothesis profile for CI and one torch thread per test.

The CI machine has 2 cores; torch's default intra-op threads oversubscribe them when a test
also runs worker processes, and small updates got ~100x slower, so every test runs with one
thread (tests that need more set it themselves).
"""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    deadline=None,  # torch's first call trips the default 200 ms deadline
    derandomize=True,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


#: Devices every device-aware test runs on: the CPU always, CUDA where a GPU exists. CUDA cases
#: carry the ``gpu`` marker, so ``pytest -m gpu`` (benchmarks/gpu_suite.sh) runs exactly them;
#: on a machine without CUDA they are skipped, never silently passed.
DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
        ],
    ),
]


@pytest.fixture(params=DEVICES)
def any_device(request) -> torch.device:
    """A ``torch.device`` to run on: ``cpu``, and ``cuda`` where available (marked ``gpu``)."""
    return torch.device(request.param)
