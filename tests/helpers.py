"""Helpers the tests import (``from helpers import tiny``); the fixtures are in conftest.py.

A plain module: ``from conftest import`` breaks once a subfolder has a conftest.py of its own (pytest
loads each as the module ``conftest``, and an import finds whichever loaded last).
"""
from __future__ import annotations

import contextlib
import dataclasses
import gzip
import os
import shutil
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = Path("/usr/share/datasets/fashion-mnist")


def benchmark(name: str):
    """A script of benchmarks/ as a module (``benchmark("collate").make_run`` writes a synthetic run)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def tiny(config, **changes):
    """A config shrunk for a unit test: CPU, fp32, a couple of short epochs."""
    base = dict(epochs=1, limit_batches=2, batch_size=16, cpu=True, precision="no", train_subset=256, test_subset=128,
                eval_samples=256)
    base.update(changes)
    return dataclasses.replace(config, **base)


@contextlib.contextmanager
def data_at(folder: Path):
    """Every loader reads the data set in ``folder`` (through $FASHION_MNIST_DIR) inside the block."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FASHION_MNIST_DIR", str(folder))
        yield folder


@contextlib.contextmanager
def float64():
    """torch's default dtype is float64 inside, and what it was outside, whatever happens inside."""
    import torch

    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(default)


def fit_tiny(name: str, folder: Path, **changes):
    """Train catalogue job ``name`` into ``folder`` with a tiny config (and ``changes``); returns the config.
    The data: wherever $FASHION_MNIST_DIR points (see :func:`data_at`)."""
    import jobs
    from fashion.training import fit

    job = jobs.get(name)
    config = tiny(job.make_config(), **changes)
    fit(job.task, config, folder, job.name)
    return config


class TrainedJob(NamedTuple):
    """A finished job folder, the config that trained it and the fake data set it learnt."""
    name: str
    folder: Path
    config: object
    data: Path


def copy_job(src: Path, dst: Path, link: bool = True) -> None:
    """A job folder into another run; hard links spare copying the GAN's large checkpoint (every write
    into a job folder replaces files, so the template stays as it was). A test that trains in the copy,
    or edits a file in place, copies (``link=False``)."""
    shutil.copytree(src, dst, copy_function=os.link if link else shutil.copy2)


def final_entry(quality: dict) -> dict:
    """The final generator's one entry of a metrics.json ``quality`` section (beside it: the best checkpoint's)."""
    (entry,) = [e for e in quality.values() if e["stamp"].get("checkpoint", "final") == "final"]
    return entry


class Interrupted(Exception):
    pass


def crashing(task_class, after_steps):
    """The same GAN, but the process 'dies' after a number of steps (as a preempted job does)."""

    class Crashing(task_class):
        steps = 0

        def train_step(self, *args):
            Crashing.steps += 1
            if Crashing.steps > after_steps:
                raise Interrupted
            return super().train_step(*args)

    return Crashing
