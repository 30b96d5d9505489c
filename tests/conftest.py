"""Shared fixtures: tiny, real IDX files written by the tests themselves, tasks built as fit builds them, and
one trained job for the whole session. The helpers tests import are in helpers.py."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from helpers import TrainedJob, data_at, fit_tiny, make_fake_fashion, tiny


def pytest_configure(config):
    # The evaluator's per-machine cache (fashion/measure.py) of one test session, never the user's.
    os.environ["FASHION_CACHE"] = tempfile.mkdtemp(prefix="fashion-cache-")


@pytest.fixture(autouse=True)
def default_dtype_is_restored():
    """A test that changes torch's default dtype fails here, and the next test still starts from float32."""
    import torch

    before = torch.get_default_dtype()
    yield
    after = torch.get_default_dtype()
    torch.set_default_dtype(before)
    assert after == before, f"the test left torch's default dtype at {after}"


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


@pytest.fixture
def task_factory(fake_fashion_dir):
    """``task_factory(job_name, **changes)``: the job's task on the fake data as fit trains it: a tiny config
    with ``changes``, the task's own automatic precision, the data cut to the config's subsets on the
    accelerator's device, the nets and optimisers prepared (fashion/training.py's ``fit`` and ``_fit``)."""
    import torch

    import jobs
    from fashion.runtime import make_accelerator
    from fashion.training import build_task

    def build(job_name: str, **changes):
        job = jobs.get(job_name)
        config = tiny(job.make_config(), **changes)
        config.validate()
        acc = make_accelerator(config, job.task.auto_precision)
        torch.manual_seed(config.seed)
        return build_task(job.task, config, acc, job.task.load_data(config))

    return build


@pytest.fixture(scope="session")
def trained_data(tmp_path_factory) -> Path:
    """The fake data set of the session's trained job, kept for the session: what builds on the job (resumes
    it, trains a second seed beside it, reports on it) reads the same images."""
    return make_fake_fashion(tmp_path_factory.mktemp("trained-data") / "fashion-mnist")


@pytest.fixture(scope="module")
def module_data(trained_data) -> Path:
    """``trained_data`` where every loader of the module looks ($FASHION_MNIST_DIR), for module-scoped
    fixtures (the function-scoped ``fake_fashion_dir`` cannot serve them)."""
    with data_at(trained_data):
        yield trained_data


@pytest.fixture(scope="session")
def trained_job(trained_data, tmp_path_factory) -> TrainedJob:
    """gan/cgan trained for one tiny epoch (two steps) on ``trained_data``: a finished job folder, trained once
    a session. Tests copy it (helpers.copy_job) and never write into it."""
    name = "gan/cgan"
    folder = tmp_path_factory.mktemp("trained") / name
    with data_at(trained_data):
        config = fit_tiny(name, folder)
    return TrainedJob(name, folder, config, trained_data)
