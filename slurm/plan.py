"""What a run will cost before it is paid for: each job's expected minutes, the run's GPU-hours and wall time.

A job's speed (images/s) comes from earlier runs of the same job on the same device and batch size found
under the outputs root (their metrics.json, or status.json while running), else from the benchmark's
figures (benchmarks/figures.toml), else from the median of that device's figures; each row says which.
Estimates cover the training loop only (no start-up, report or queue wait).
"""
from __future__ import annotations

import statistics
import tomllib
from dataclasses import dataclass
from pathlib import Path

from fashion import artifacts, runfolder

FIGURES = Path(__file__).resolve().parents[1] / "benchmarks" / "figures.toml"
TRAIN_IMAGES = 60_000  # Fashion-MNIST's training split


@dataclass
class Estimate:
    job: str
    images: int
    "Images the job trains on over all its epochs."
    images_per_s: float
    source: str
    gpus: int

    @property
    def minutes(self) -> float:
        return self.images / self.images_per_s / 60


def load_figures(path: Path = FIGURES) -> dict[str, dict[str, float]]:
    with open(path, "rb") as f:
        return tomllib.load(f).get("devices", {})


def images_per_run(config) -> int:
    n = config.train_subset or TRAIN_IMAGES
    steps = n // config.batch_size
    if config.limit_batches:
        steps = min(steps, config.limit_batches)
    return config.epochs * steps * config.batch_size


def measured_rate(outputs: Path, job: str, device: str, batch_size: int) -> tuple[float, int] | None:
    """Mean images/s of earlier runs of ``job`` on ``device`` at ``batch_size``, and how many runs."""
    rates = []
    for run in sorted(p for p in Path(outputs).iterdir() if p.is_dir()) if Path(outputs).is_dir() else []:
        folder = runfolder.job_dir(run, job)
        try:
            config = artifacts.read_json(folder / "config.json") or {}
            ran_on = config.get("gpu") or config.get("device")
            if ran_on != device or config.get("config", {}).get("batch_size") != batch_size:
                continue
            rate = ((artifacts.read_json(folder / "metrics.json") or {}).get("images_per_s")
                    or artifacts.read_status(folder).get("images_per_s"))
        except ValueError:  # a corrupt file says nothing about speed
            continue
        if rate:
            rates.append(float(rate))
    return (statistics.mean(rates), len(rates)) if rates else None


def estimate(jobs, configs: dict, outputs: Path, device: str, figures: dict | None = None) -> list[Estimate]:
    figures = load_figures() if figures is None else figures
    table = figures.get(device, {})
    rows = []
    for job in jobs:
        config = configs[job.name]
        measured = measured_rate(outputs, job.name, device, config.batch_size)
        if measured:
            rate, source = measured[0], f"{measured[1]} earlier run{'s' if measured[1] > 1 else ''}"
        elif (model := runfolder.split_seed(job.name)[0]) in table:  # every seed of a model runs at its speed
            rate, source = table[model], "benchmark figure"
        elif table:
            rate, source = statistics.median(table.values()), "guess: median of figures"
        else:
            known = ", ".join(figures) or "none"
            raise ValueError(f"no figures for device {device!r} in {FIGURES.name} (it has: {known}) "
                             "and no earlier run on it; choose another --plan-device")
        rows.append(Estimate(job.name, images_per_run(config), rate, source,
                             job.resources.gpus_per_node * job.resources.nodes))
    return rows


def wall_minutes(minutes: list[float], slots: int) -> float:
    """Time until the last job ends with ``slots`` jobs running at once, longest first as they free up."""
    ends = [0.0] * max(1, slots)
    for m in sorted(minutes, reverse=True):
        i = ends.index(min(ends))
        ends[i] += m
    return max(ends)


def gpu_hours(rows: list[Estimate]) -> float:
    return sum(r.minutes * r.gpus for r in rows) / 60


def print_plan(rows: list[Estimate], device: str, slots: int, console) -> None:
    from rich.table import Table

    table = Table(title=f"plan on {device} (training loop only)")
    for col, justify in (("job", "left"), ("images", "right"), ("images/s", "right"), ("minutes", "right"),
                         ("from", "left")):
        table.add_column(col, justify=justify)
    for r in rows:
        table.add_row(r.job, f"{r.images:,}", f"{r.images_per_s:.0f}", f"{r.minutes:.1f}", r.source)
    console.print(table)
    unit = "GPU-hours" if device != "cpu" else "device-hours"
    wall = wall_minutes([r.minutes for r in rows], slots)
    console.print(f"{len(rows)} jobs: {gpu_hours(rows):.2f} {unit}; wall time {wall:.1f} min "
                  f"with {slots} running at once", highlight=False)
