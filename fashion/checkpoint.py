"""The one resume convention: a single ``checkpoint.pt`` per job folder, replaced atomically each epoch.

Every rank holds identical weights under DDP, so the main process writes it and every rank reads it.
A requeued or re-launched job always looks here first; there is no other place a checkpoint can hide.
"""
from __future__ import annotations

import dataclasses
import io
import json
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


# Settings that say where things are, what extra pictures to keep, or with how much work and on which
# kernels the same algorithm runs (fast): changing them leaves the model and its training untouched, so a
# resumed job takes the new value.
NEUTRAL_KEYS = frozenset({"data_dir", "photo_dir", "download", "snapshot_every", "snapshot_samples", "eval_samples",
                          "log_with", "fast", "compile"})


class ChangedSettings(RuntimeError):
    """A resumed job was given settings that would change its experiment half-way."""


def changed_settings(saved: dict, new: dict, epochs_done: int) -> tuple[dict, dict]:
    """Compare a job's saved config with the one it is resumed with: (refused, accepted) as {key: (old, new)}.

    Accepted: the neutral keys, and ``epochs`` raised or lowered to no fewer than the epochs already trained,
    unless a learning-rate schedule spans the epochs (then the schedule would bend half-way). Everything else
    changes the experiment and is refused.
    """
    # Compared as JSON would store them: config.json turns tuples into lists, and (0.1, 0.2) is [0.1, 0.2].
    saved, new = (json.loads(json.dumps(config, default=str)) for config in (saved, new))
    refused, accepted = {}, {}
    for key in sorted(set(saved) | set(new)):
        old, value = saved.get(key), new.get(key)
        if old == value or key not in saved:  # a field added to the config since: its default applies
            continue
        if key in NEUTRAL_KEYS:
            accepted[key] = (old, value)
        elif key == "epochs" and saved.get("lr_schedule", "constant") == "constant" and value >= epochs_done:
            accepted[key] = (old, value)
        else:
            refused[key] = (old, value)
    return refused, accepted


def refusal(job_dir, refused: dict, epochs_done: int) -> str:
    """The message for a refused resume: which keys changed and the two ways out."""
    what = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in refused.items())
    return (f"{job_dir}: trained {epochs_done} epoch(s) with other settings; changed: {what}. Resuming would mix "
            "the two. Re-launch with the old settings to continue, with --force to start this job afresh (its "
            "results move to .replaced/), or with a new --run")


def state_of(task, epoch: int, history: list[dict], steps: list[dict]) -> dict:
    """Everything a resume needs after ``epoch``, as detached CPU copies (written while the next epoch trains)."""
    acc = task.acc
    return _cpu_copy({
        "epoch": epoch, "history": list(history), "steps": list(steps),
        "nets": {n: task.unwrap(n).state_dict() for n in task.nets},
        "opts": {n: o.state_dict() for n, o in task.opts.items()},
        "scaler": acc.scaler.state_dict() if acc.scaler is not None else None,
        "task": task.state_dict(), "config": dataclasses.asdict(task.config),
    })


def restore(task, state: dict | None, job_dir) -> dict:
    """Load a saved state into a prepared task (every rank); returns what the resume changed, refusing
    changes that alter the experiment (also checked by the launcher; here for requeues and direct calls)."""
    if state is None:
        return {}
    changes = {}
    if state.get("config"):
        refused, changes = changed_settings(state["config"], dataclasses.asdict(task.config), state["epoch"])
        if refused:
            raise ChangedSettings(refusal(job_dir, refused, state["epoch"]))
    for name in task.nets:
        task.unwrap(name).load_state_dict(state["nets"][name])
    for name, opt in task.opts.items():
        opt.load_state_dict(state["opts"][name])
    if task.acc.scaler is not None and state.get("scaler"):
        task.acc.scaler.load_state_dict(state["scaler"])
    task.load_state_dict(state.get("task", {}))
    return changes


def _cpu_copy(obj):
    """A detached CPU copy of every tensor in a nested state, so training can go on while it is written."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_cpu_copy(v) for v in obj)
    return obj
