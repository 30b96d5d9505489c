"""What a run will cost before it is paid for: each job's expected minutes, the run's GPU-hours and wall time.

A job's speed (images/s) comes from earlier runs of the same job on the same device and batch size found
under the outputs root (their metrics.json, or status.json while running), else from the benchmark's
figures (benchmarks/figures.toml), else from the median of that device's figures; each row says which.
Only what the launch would train is counted, as :func:`jobs.preflight.fate` decides it for the launch: a
job the run's folder holds completed is skipped, a partial one resumes after its last epoch (``--force``
retrains both). Estimates cover the training loop only (no
start-up, report or queue wait).
"""
from __future__ import annotations

import statistics
import tomllib
from dataclasses import dataclass
from pathlib import Path

from fashion import artifacts, runfolder
from jobs.catalogue import Resources
from jobs.preflight import fate

FIGURES = Path(__file__).resolve().parents[1] / "benchmarks" / "figures.toml"
TRAIN_IMAGES = 60_000  # Fashion-MNIST's training split
MOST_ROWS = 40  # past this (a sweep), the table has a row per model


@dataclass
class Estimate:
    job: str
    images: int
    "Images the launch would train the job on: its remaining epochs."
    images_per_s: float
    source: str
    gpus: int
    resources: Resources | None = None
    "The catalogue's request, which decides the SLURM jobs a pack may share (as the launcher groups them)."
    done: str = ""
    "What the run's folder already holds of the job, when something: 'completed: skipped', 'after epoch 3'."

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


def estimate(jobs, configs: dict, outputs: Path, device: str, figures: dict | None = None,
             run_dir: Path | None = None, force: bool = False) -> list[Estimate]:
    """One row per job; with ``run_dir``, only the epochs a launch into it would train (none with ``force``)."""
    figures = load_figures() if figures is None else figures
    table = figures.get(device, {})
    rows = []
    for job in jobs:
        config = configs[job.name]
        epochs, done = config.epochs, ""
        if job.unavailable and (reason := job.unavailable(config)):
            epochs, done = 0, f"set aside: {reason}"  # the launch prints the same reason
        elif run_dir is not None:
            action, kept, why = fate(runfolder.job_dir(run_dir, job.name), config, force)
            if action in ("corrupt", "completed", "refused"):
                epochs, done = 0, f"refused: {why}" if action == "refused" else f"{action}: skipped"
            elif kept:
                epochs, done = config.epochs - kept, f"after epoch {kept}"
        measured = measured_rate(outputs, job.name, device, config.batch_size)
        if measured:
            rate, source = measured[0], f"{measured[1]} earlier run{'s' if measured[1] > 1 else ''}"
        elif (model := runfolder.split_trial(job.name)[0]) in table:  # its seeds and trials run at its speed
            rate, source = table[model], "benchmark figure"
        elif table:
            rate, source = statistics.median(table.values()), "guess: median of figures"
        else:
            known = ", ".join(figures) or "none"
            raise ValueError(f"no figures for device {device!r} in {FIGURES.name} (it has: {known}) "
                             "and no earlier run on it; choose another --plan-device")
        images = images_per_run(config) // config.epochs * epochs if config.epochs else 0
        rows.append(Estimate(job.name, images, rate, source, job.resources.gpus_per_node * job.resources.nodes,
                             job.resources, done))
    return rows


def allocations(rows: list[Estimate], pack: int = 1) -> list[list[Estimate]]:
    """The SLURM jobs a launch submits for ``rows``: one per job still to train, or with ``--pack N`` up to N
    side by side, in selection order among the jobs that ask for the same resources."""
    by_request: dict[object, list[Estimate]] = {}
    for row in rows:
        if row.images:
            by_request.setdefault(row.resources, []).append(row)
    size = max(1, pack)
    return [members[i:i + size] for members in by_request.values() for i in range(0, len(members), size)]


def pack_minutes(unit: list[Estimate]) -> tuple[float, float]:
    """(fastest, slowest) minutes of one allocation: its members side by side at the speed each has alone,
    or taking turns as on a saturated device. Unmeasured packs lie between the two."""
    minutes = [r.minutes for r in unit]
    return max(minutes), sum(minutes)


def wall_minutes(minutes: list[float], slots: int) -> float:
    """Time until the last job ends with ``slots`` jobs running at once, longest first as they free up."""
    ends = [0.0] * max(1, slots)
    for m in sorted(minutes, reverse=True):
        i = ends.index(min(ends))
        ends[i] += m
    return max(ends)


def totals(rows: list[Estimate], slots: int, pack: int = 1) -> tuple[tuple[float, float], tuple[float, float]]:
    """((GPU-hours), (wall minutes)) of the run, each as (fastest, slowest): equal without packing; with
    ``--pack N`` a pack holds its GPU until its last member ends, and ``slots`` counts packs at once."""
    units = allocations(rows, pack)
    spans = [pack_minutes(unit) for unit in units]
    hours = tuple(sum(span[k] * unit[0].gpus for span, unit in zip(spans, units)) / 60 for k in (0, 1))
    walls = tuple(wall_minutes([span[k] for span in spans], slots) if spans else 0.0 for k in (0, 1))
    return hours, walls


def print_plan(rows: list[Estimate], device: str, slots: int | None, console, pack: int = 1) -> None:
    """The table and the totals; ``slots`` SLURM jobs (or packs) at once, every one when None."""
    from rich.table import Table

    table = Table(title=f"plan on {device} (training loop only)")
    if len(rows) > MOST_ROWS:  # a sweep: one row per model, its trials and seeds counted
        for col, justify in (("model", "left"), ("jobs", "right"), ("to train", "right"), ("minutes", "right"),
                             ("from", "left")):
            table.add_column(col, justify=justify)
        by_model: dict[str, list[Estimate]] = {}
        for r in rows:
            by_model.setdefault(runfolder.split_trial(r.job)[0], []).append(r)
        for model, group in by_model.items():
            table.add_row(model, str(len(group)), str(sum(1 for r in group if r.images)),
                          f"{sum(r.minutes for r in group):.1f}", ", ".join(sorted({r.source for r in group})))
    else:
        for col, justify in (("job", "left"), ("images", "right"), ("images/s", "right"), ("minutes", "right"),
                             ("from", "left"), ("in the run", "left")):
            table.add_column(col, justify=justify)
        for r in rows:
            table.add_row(r.job, f"{r.images:,}", f"{r.images_per_s:.0f}", f"{r.minutes:.1f}", r.source,
                          r.done.split(":")[0])
    console.print(table)
    for r in rows:
        if r.done.startswith(("set aside: ", "refused: ")):
            console.print(f"[yellow]{r.job}: {r.done}[/]", highlight=False)
    unit = "GPU-hours" if device != "cpu" else "device-hours"
    todo = [r for r in rows if r.images]
    skipped = f" ({len(rows) - len(todo)} skipped)" if len(todo) < len(rows) else ""
    units = allocations(todo, pack)
    slots = slots or max(1, len(units))
    (low, high), (fast, slow) = totals(todo, slots, pack)
    packed = len(units) < len(todo)  # some SLURM job trains several
    jobs = f"{len(todo)} job{'s' if len(todo) != 1 else ''} to train{skipped}"
    at_once = f"with {slots} {'pack' + ('s' if slots > 1 else '') if packed else 'running'} at once"
    if not packed:
        console.print(f"{jobs}: {low:.2f} {unit}; wall time {fast:.1f} min {at_once}",
                      highlight=False)
        return
    packs = f"{len(units)} pack{'s' if len(units) > 1 else ''}"
    console.print(f"{jobs} in {packs} of up to {pack}: {low:.2f}-{high:.2f} "
                  f"{unit}; wall time {fast:.1f}-{slow:.1f} min {at_once} (from members training side by side "
                  "at the speed each has alone, to members taking turns)", highlight=False)
