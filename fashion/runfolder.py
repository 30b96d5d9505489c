"""The layout of a run folder, and the one place that reads it.

``<run>/<job name>/`` per job (the name keeps its slash: ``outputs/main/gan/wgan_gp/``), ``<run>/report/``
for the report, hidden folders (``.submitit``, ``.replaced``) for the machinery. Writing status.json and
every atomic write stay in :mod:`fashion.artifacts`; this module names the files, reads them back and owns
the formats of the sample files the report measures (snapshots, the evaluation set).
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fashion import artifacts
from fashion.artifacts import STATUS_FILE, read_json, read_status

CONFIG_FILE, METRICS_FILE, HISTORY_FILE, LOSSES_FILE = "config.json", "metrics.json", "history.csv", "losses.csv"
REPORT_DIR = "report"
SNAPSHOT_DIR = "snapshots"
EVAL_FILE = "eval_samples.pt"
SUBMITIT_DIR = ".submitit"
LOG_LINES = 40
# Seed k > 0 of job X is the job (and folder) ``X.seed<k>``; seed 0 keeps the plain name, so runs without
# seeds stay valid.
SEED_NAME = re.compile(r"^(?P<base>.+)\.seed(?P<seed>[1-9]\d*)$")
# Trial ``tNNN`` / grid point ``gNN`` of a sweep over model X is the job ``X.tNNN`` (jobs/sweep.py).
TRIAL_NAME = re.compile(r"^(?P<model>.+?)\.(?P<trial>(?:g\d+\.)?t\d+|g\d+)$")
# Families whose jobs draw samples/epoch_NNN.png every epoch.
SAMPLING_FAMILIES = frozenset({"gan", "vae", "colorize"})

# history.csv columns the training loop adds to every epoch row; the other columns are the task's terms.
BOOKKEEPING = ("epoch", "iteration", "seconds", "images_per_s")
# config.json / metrics.json keys describing where a job ran (training.fit writes them).
ENVIRONMENT_KEYS = ("world_size", "device", "precision", "threads", "host", "slurm_job_id", "gpu")
# metrics.json keys written by the training loop and by the report; any other number is the task's own.
LOOP_KEYS = frozenset({"job", "state", "epochs", "seconds_per_epoch", "images_per_s", "final", *ENVIRONMENT_KEYS,
                       "quality", "fid_curve", "measure_seconds", "selection", "selection_seconds"})

__all__ = ["STATUS_FILE", "read_json", "read_status", "job_dir", "job_names", "read_job", "JobFolder",
           "read_history", "log_tail", "write_snapshot", "read_snapshot", "snapshot_files", "EvalSamples",
           "write_eval_samples", "read_eval_samples", "split_seed"]


def split_seed(name: str) -> tuple[str, int]:
    """(model, seed) of a job name: ``gan/gan.seed2`` -> ("gan/gan", 2), ``gan/gan`` -> ("gan/gan", 0)."""
    match = SEED_NAME.match(name)
    return (match["base"], int(match["seed"])) if match else (name, 0)


def split_trial(name: str) -> tuple[str, str, int]:
    """(model, trial, seed) of a job name: ``gan/gan.t007.seed2`` -> ("gan/gan", "t007", 2); no trial: ""."""
    base, seed = split_seed(name)
    match = TRIAL_NAME.match(base)
    return (match["model"], match["trial"], seed) if match else (base, "", seed)


def seeds_by_model(items: Iterable, name: Callable = str) -> dict[str, list]:
    """``items`` (job names, or what ``name`` maps to one) per model, lowest seed first; models in name order."""
    groups: dict[str, list] = {}
    for item in sorted(items, key=lambda i: split_seed(name(i))[1]):
        groups.setdefault(split_seed(name(item))[0], []).append(item)
    return dict(sorted(groups.items(), key=lambda kv: natural(kv[0])))


def job_dir(run_dir, name: str) -> Path:
    """The folder of job ``name`` (``gan/wgan_gp``) in a run."""
    return Path(run_dir) / name


def job_names(run_dir, markers: tuple[str, ...] = (STATUS_FILE, CONFIG_FILE)) -> list[str]:
    """Names of every job folder of a run (one holding a marker file), sorted; report and hidden folders left out."""
    run_dir, names = Path(run_dir), set()
    for marker in markers:
        for path in run_dir.rglob(marker):
            rel = path.parent.relative_to(run_dir)
            if rel.parts and rel.parts[0] != REPORT_DIR and not any(p.startswith(".") for p in rel.parts):
                names.add(rel.as_posix())
    return sorted(names)


@dataclass
class JobFolder:
    """One job's files, read once."""

    name: str
    path: Path
    status: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    last_epoch: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    "Files that exist but cannot be read (corrupt JSON)."

    @property
    def state(self) -> str:
        return self.status.get("state", "unknown")

    @property
    def family(self) -> str:
        return self.name.split("/", 1)[0]

    @property
    def settings(self) -> dict:
        """The resolved config the job trained with (config.json's ``config``)."""
        return self.config.get("config", {}) or {}


def read_job(run_dir, name: str) -> JobFolder:
    """A job folder's status, config, metrics and last history row; unreadable files are noted, not fatal."""
    folder = job_dir(run_dir, name)
    job = JobFolder(name, folder)
    for attr, file in (("status", STATUS_FILE), ("config", CONFIG_FILE), ("metrics", METRICS_FILE)):
        try:
            setattr(job, attr, read_json(folder / file, {}) or {})
        except ValueError as err:  # corrupt JSON: show it, keep going
            job.errors.append(str(err))
            if attr == "status":
                job.status = {"state": "corrupt"}
    rows = read_history(folder)
    if not rows and (folder / HISTORY_FILE).exists():
        job.errors.append(f"{folder / HISTORY_FILE}: unreadable or empty")
    job.last_epoch = rows[-1] if rows else dict(job.metrics.get("final", {}))
    if job.state == "completed" and job.family in SAMPLING_FAMILIES and not (folder / "samples").is_dir():
        job.errors.append(f"{folder / 'samples'}: missing (every epoch of a generative job draws a grid there)")
    return job


def read_history(folder, file: str = HISTORY_FILE) -> list[dict[str, float]]:
    """The per-epoch rows of history.csv (or losses.csv) as numbers; empty cells and text left out."""
    try:
        with open(Path(folder) / file, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError):  # missing or damaged: the caller flags what exists
        return []
    return [{k: n for k, v in row.items() if k and (n := _number(v)) is not None} for row in rows]


def _number(text) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def log_tail(run_dir, name: str, status: dict, lines: int = LOG_LINES) -> tuple[str, str]:
    """(where, text): the end of the job's log (status.json's log_err/log_out, else submitit's local logs),
    else the traceback or reason kept in status.json."""
    run_dir = Path(run_dir)
    candidates = [Path(status[k]) for k in ("log_err", "log_out") if status.get(k)]
    candidates = [p if p.is_absolute() else run_dir / p for p in candidates]
    submitit_dir = run_dir / SUBMITIT_DIR / name
    if submitit_dir.is_dir():
        for suffix in ("_log.err", "_log.out"):
            logs = sorted(submitit_dir.glob(f"*{suffix}"), key=lambda p: (p.stat().st_mtime, p.name))
            candidates += logs[-1:]
    for path in candidates:
        if text := read_tail(path, lines):
            # The job's own one-line error first: a log tail buries it under a stack trace.
            error = status.get("error") or status.get("reason")
            return str(path), "\n".join(([error] if error else []) + [text])
    return STATUS_FILE, (status.get("traceback") or status.get("error") or status.get("reason")
                         or "no log recorded").rstrip()


def read_tail(path, lines: int = LOG_LINES) -> str:
    """The last ``lines`` lines of a text file; empty when it is missing or unreadable."""
    try:
        text = Path(path).read_text(errors="replace").rstrip()
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def lowest_seeds(items: Iterable, name: Callable = str, drew: Callable = bool) -> dict[str, tuple]:
    """Per model, (its lowest-seed item that ``drew`` pictures, how many seeds the model has): the one the
    contact sheet and the GIFs show."""
    out = {}
    for model, group in seeds_by_model(items, name).items():
        if drawn := [item for item in group if drew(item)]:
            out[model] = (drawn[0], len(group))
    return out


def natural(name: str) -> list:
    """Sort key reading digit runs as numbers: epoch_999 before epoch_1000."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


# -- sample files --------------------------------------------------------------------------------------
def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] as uint8 on the CPU (0.8 KB per 28x28 grey image); uint8 images are already that
    form and come back unchanged (scaling them again would turn every non-zero pixel white)."""
    if images.dtype == torch.uint8:
        return images.detach().cpu()
    return images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()


def _save(path: Path, obj: dict) -> Path:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return artifacts.write_bytes(path, buf.getvalue())


def snapshot_path(folder, epoch: int) -> Path:
    return Path(folder) / SNAPSHOT_DIR / f"epoch_{epoch:03d}.pt"


def write_snapshot(folder, epoch: int, images: torch.Tensor) -> Path:
    """``snapshots/epoch_NNN.pt``: the model's samples at an epoch, for the FID-over-epochs curve."""
    return _save(snapshot_path(folder, epoch), {"epoch": epoch, "images": to_uint8(images)})


def sample_frames(folder) -> list[Path]:
    """The per-epoch sample grids (``samples/epoch_NNN.png``), in epoch order (epoch_1000 after epoch_999)."""
    return sorted((Path(folder) / "samples").glob("epoch_*.png"), key=lambda p: natural(p.name))


def snapshot_files(folder) -> list[Path]:
    return sorted((Path(folder) / SNAPSHOT_DIR).glob("epoch_*.pt"), key=lambda p: natural(p.name))


def read_snapshot(path) -> tuple[int, torch.Tensor]:
    """(epoch, uint8 images) of one snapshot file."""
    snapshot = torch.load(path, map_location="cpu", weights_only=True)
    return int(snapshot["epoch"]), snapshot["images"]


@dataclass
class EvalSamples:
    """A finished generative job's evaluation set: what the report measures instead of rebuilding the model."""

    images: torch.Tensor
    "uint8 (N, C, H, W)."
    labels: torch.Tensor | None
    "What each sample was asked to show (None: unconditional)."
    label_names: list[str]
    "What the label values mean (class names, or the codes of an unsupervised model)."
    label_kind: str = "class"
    "class: labels are Fashion-MNIST classes; code: an unsupervised code, matched to classes by the metric."
    seed: int = 0
    epoch: int = 0


def write_eval_samples(folder, samples: EvalSamples, file: str = EVAL_FILE) -> Path:
    return _save(Path(folder) / file, {
        "images": to_uint8(samples.images),
        "labels": None if samples.labels is None else samples.labels.detach().long().cpu(),
        "label_names": list(samples.label_names), "label_kind": samples.label_kind,
        "seed": samples.seed, "epoch": samples.epoch})


def read_eval_samples(folder, file: str = EVAL_FILE) -> EvalSamples | None:
    """The job's evaluation set (``file``: the best checkpoint's, fashion/selection.py), or None when it wrote none."""
    path = Path(folder) / file
    if not path.exists():
        return None
    data = torch.load(path, map_location="cpu", weights_only=True)
    return EvalSamples(data["images"], data["labels"], list(data["label_names"]), data["label_kind"],
                       int(data["seed"]), int(data["epoch"]))
