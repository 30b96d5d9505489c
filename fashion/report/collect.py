"""Read what each job left in the run folder: state, progress, final losses, speed, hardware, pictures, logs.

Everything here only reads, and tolerates any file being absent: a run is aggregated while jobs are still
queued or running, and after some have failed.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from fashion import artifacts

REPORT_DIR = "report"
# Families whose jobs draw samples/epoch_NNN.png every epoch.
SAMPLING_FAMILIES = {"gan", "vae", "colorize"}
PICTURES = (".png", ".gif")
LOG_LINES = 40
# history.csv columns that are bookkeeping, not loss terms or test numbers.
NOT_LOSSES = {"epoch", "iteration", "seconds", "images_per_s"}
# metrics.json keys written by the training loop (or by the report); anything else numeric is the task's own.
LOOP_KEYS = {"job", "state", "epochs", "seconds_per_epoch", "images_per_s", "final", "world_size", "device",
             "precision", "threads", "host", "slurm_job_id", "gpu", "quality", "fid_curve"}


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


def find_jobs(run_dir: Path, order: list[str] = ()) -> list[JobFolder]:
    """Every job folder of a run (one holding status.json or config.json), in ``order`` then by name."""
    names = set()
    for marker in ("status.json", "config.json"):
        for path in run_dir.rglob(marker):
            rel = path.parent.relative_to(run_dir)
            if rel.parts and rel.parts[0] != REPORT_DIR and not any(p.startswith(".") for p in rel.parts):
                names.add(rel.as_posix())
    rank = {name: i for i, name in enumerate(order)}
    return [read_job(run_dir, n) for n in sorted(names, key=lambda n: (rank.get(n, len(rank)), n))]


def read_job(run_dir: Path, name: str) -> JobFolder:
    """A job folder's status, config, metrics and last history row; unreadable files are noted, not fatal."""
    folder = run_dir / name
    job = JobFolder(name, folder)
    for attr, file in (("status", "status.json"), ("config", "config.json"), ("metrics", "metrics.json")):
        try:
            setattr(job, attr, artifacts.read_json(folder / file, {}) or {})
        except ValueError as err:  # corrupt JSON: show it, keep going
            job.errors.append(str(err))
            if attr == "status":
                job.status = {"state": "corrupt"}
    job.last_epoch = _last_row(folder / "history.csv")
    if not job.last_epoch and (folder / "history.csv").exists():
        job.errors.append(f"{folder / 'history.csv'}: unreadable or empty")
    job.last_epoch = job.last_epoch or dict(job.metrics.get("final", {}))
    if job.state == "completed" and job.family in SAMPLING_FAMILIES and not (folder / "samples").is_dir():
        job.errors.append(f"{folder / 'samples'}: missing (every epoch of a generative job draws a grid there)")
    return job


def _last_row(path: Path) -> dict:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError):
        return {}
    return {k: _number(v) for k, v in rows[-1].items() if k and _number(v) is not None} if rows else {}


def _number(text) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def final_terms(job: JobFolder) -> dict[str, float]:
    """The last epoch's mean of each top-level logged term (``D``, ``G``, ``recon``...; sub-terms left out)."""
    return {k: v for k, v in sorted(job.last_epoch.items()) if k not in NOT_LOSSES and "." not in k}


def is_evaluation(term: str) -> bool:
    """Logged numbers measured on held-out or whole splits (``test_psnr``), as opposed to training losses."""
    return term.startswith(("test_", "train_"))


def own_metrics(job: JobFolder) -> dict[str, float]:
    """Numbers a task reported itself in metrics.json (test accuracy, PSNR...), beside the loop's keys;
    else the last epoch's test numbers."""
    own = {k: v for k, v in sorted(job.metrics.items())
           if k not in LOOP_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)}
    return own or {k: v for k, v in final_terms(job).items() if k.startswith("test_")}


def progress(job: JobFolder) -> tuple[int | None, int | None]:
    """(epochs done, epochs planned)."""
    done = job.status.get("epoch", job.metrics.get("epochs"))
    planned = job.status.get("epochs", job.config.get("config", {}).get("epochs"))
    return done, planned


def hardware(job: JobFolder) -> tuple[str, int | None]:
    """(GPU model or device type, number of processes) as recorded by the job."""
    info = {**job.status, **job.config}
    return info.get("gpu") or info.get("device") or "", info.get("world_size")


def pictures(job: JobFolder) -> list[Path]:
    """Every top-level PNG/GIF of the job folder, plus the latest picture of each per-epoch series in its
    sub-folders (``samples/epoch_007.png``, ``sweeps/c1_epoch_007.png``)."""
    if not job.path.is_dir():
        return []
    found = sorted(p for p in job.path.iterdir() if p.is_file() and p.suffix in PICTURES)
    for sub in sorted(p for p in job.path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        latest: dict[str, Path] = {}
        for p in sorted(sub.iterdir(), key=lambda p: _natural(p.name)):  # so the highest epoch comes last
            if p.is_file() and p.suffix in PICTURES:
                latest[re.sub(r"\d+(?=\.\w+$)", "#", p.name)] = p  # the number before the suffix is the epoch
        found += latest.values()
    return found


def final_samples(job: JobFolder) -> Path | None:
    """The last per-epoch sample grid, for the contact sheet."""
    frames = sorted((job.path / "samples").glob("epoch_*.png"), key=lambda p: _natural(p.name))
    return frames[-1] if frames else None


def _natural(name: str) -> list:
    """Sort key reading digit runs as numbers: epoch_999 before epoch_1000."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def log_tail(run_dir: Path, job: JobFolder, lines: int = LOG_LINES) -> str:
    """The end of the job's recorded log (status.json's log_err/log_out, else submitit's local logs),
    else the traceback or reason kept in status.json."""
    candidates = [Path(job.status[k]) for k in ("log_err", "log_out") if job.status.get(k)]
    candidates = [p if p.is_absolute() else run_dir / p for p in candidates]
    submitit_dir = run_dir / ".submitit" / job.name
    if submitit_dir.is_dir():
        for suffix in ("_log.err", "_log.out"):
            logs = sorted(submitit_dir.glob(f"*{suffix}"), key=lambda p: (p.stat().st_mtime, p.name))
            candidates += logs[-1:]
    for path in candidates:
        try:
            text = path.read_text(errors="replace").rstrip()
        except OSError:
            continue
        if text:
            return f"{path}:\n" + "\n".join(text.splitlines()[-lines:])
    return (job.status.get("traceback") or job.status.get("error") or job.status.get("reason")
            or "no log recorded").rstrip()
