"""The one resume convention: a single ``checkpoint.pt`` per job folder, replaced atomically each epoch.

Every rank holds identical weights under DDP, so the main process writes it and every rank reads it.
A requeued or re-launched job always looks here first; there is no other place a checkpoint can hide.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch

from fashion.artifacts import write_bytes

CHECKPOINT = "checkpoint.pt"


class CheckpointError(RuntimeError):
    pass


def checkpoint_path(job_dir) -> Path:
    return Path(job_dir) / CHECKPOINT


def save_checkpoint(job_dir, state: dict) -> Path:
    buf = io.BytesIO()
    torch.save(state, buf)
    return write_bytes(checkpoint_path(job_dir), buf.getvalue())


def load_checkpoint(job_dir) -> dict | None:
    """The saved state, or None when the job has not finished an epoch yet."""
    path = checkpoint_path(job_dir)
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises several types for a damaged zip
        raise CheckpointError(f"{path}: unreadable checkpoint ({err}). Delete it to retrain this job "
                              "from scratch, or re-launch with --force.") from err
