"""Shared fixtures: tiny, real IDX files written by the tests themselves."""
from __future__ import annotations

import gzip
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = Path("/usr/share/datasets/fashion-mnist")


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


def write_idx(path: Path, array: np.ndarray, compress: bool = True) -> Path:
    """Write an unsigned-byte IDX file (the original Fashion-MNIST format)."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def make_fake_fashion(folder: Path, n_train: int = 512, n_test: int = 256, seed: int = 0) -> Path:
    """Learnable fake Fashion-MNIST: each class is a noisy bright block at its own place."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        images = rng.integers(0, 60, size=(n, 28, 28))
        for i, label in enumerate(labels):
            row, col = divmod(int(label), 5)
            images[i, 4 + row * 12: 12 + row * 12, 2 + col * 5: 7 + col * 5] += 180
        write_idx(folder / f"{split}-images-idx3-ubyte", images.clip(0, 255).astype(np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte", labels.astype(np.uint8))
    return folder


@pytest.fixture
def fake_fashion_dir(tmp_path, monkeypatch) -> Path:
    """A folder of small IDX files that every loader finds through $FASHION_MNIST_DIR."""
    folder = make_fake_fashion(tmp_path / "fashion-mnist")
    monkeypatch.setenv("FASHION_MNIST_DIR", str(folder))
    return folder


def tiny(config, **changes):
    """A config shrunk for a unit test: CPU, fp32, a couple of short epochs."""
    import dataclasses

    base = dict(epochs=1, limit_batches=2, batch_size=16, cpu=True, precision="no", train_subset=256, test_subset=128,
                eval_samples=256)
    base.update(changes)
    return dataclasses.replace(config, **base)
