"""Shared fixtures: tiny, real IDX files written by the tests themselves. The helpers tests import are in
helpers.py."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from helpers import make_fake_fashion


def pytest_configure(config):
    # The evaluator's per-machine cache (fashion/measure.py) of one test session, never the user's.
    os.environ["FASHION_CACHE"] = tempfile.mkdtemp(prefix="fashion-cache-")


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """Each test starts from a clean accelerate state: tests build jobs of other precisions in one process,
    which accelerate's process-wide state refuses (a job's own process builds one accelerator)."""
    yield
    from accelerate.state import AcceleratorState, GradientState
    import torch.distributed

    if not torch.distributed.is_initialized():
        AcceleratorState._reset_state(reset_partial_state=True)  # accelerate's own test suite does the same
        GradientState._reset_state()


@pytest.fixture
def fake_fashion_dir(tmp_path, monkeypatch) -> Path:
    """A folder of small IDX files that every loader finds through $FASHION_MNIST_DIR."""
    folder = make_fake_fashion(tmp_path / "fashion-mnist")
    monkeypatch.setenv("FASHION_MNIST_DIR", str(folder))
    return folder
