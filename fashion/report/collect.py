"""Read what each job left in the run folder: state, progress, final losses, speed, hardware, pictures, logs.

Everything here only reads, and tolerates any file being absent: a run is aggregated while jobs are still
queued or running, and after some have failed.
"""
from __future__ import annotations

import re
from pathlib import Path

from fashion import runfolder
from fashion.runfolder import BOOKKEEPING, LOOP_KEYS, JobFolder, natural

PICTURES = (".png", ".gif")


def read_jobs(run_dir: Path) -> list[JobFolder]:
    """Every job folder of the run, read, in natural name order."""
    return [runfolder.read_job(run_dir, name) for name in sorted(runfolder.job_names(run_dir), key=natural)]


def final_terms(job: JobFolder) -> dict[str, float]:
    """The last epoch's mean of each top-level logged term (``D``, ``G``, ``recon``...; sub-terms left out)."""
    return {k: v for k, v in sorted(job.last_epoch.items()) if k not in BOOKKEEPING and "." not in k}


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
        for p in sorted(sub.iterdir(), key=lambda p: natural(p.name)):  # so the highest epoch comes last
            if p.is_file() and p.suffix in PICTURES:
                latest[re.sub(r"\d+(?=\.\w+$)", "#", p.name)] = p  # the number before the suffix is the epoch
        found += latest.values()
    return found


def final_samples(job: JobFolder) -> Path | None:
    """The last per-epoch sample grid, for the contact sheet."""
    frames = runfolder.sample_frames(job.path)
    return frames[-1] if frames else None
