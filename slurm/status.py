"""``python launch.py --status RUN`` and ``--cancel RUN``: a run's jobs as its folders and SLURM see them."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from fashion import artifacts, runfolder
from slurm.queue import ACTIVE_STATES, SLURM_FILE, job_states, latest_ids

# A pipe or a log file has no width: give tables room instead of rich's 80 columns.
console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160)
LOG_LINES = 15
MOST_ROWS = 40  # past this many jobs (a sweep), one row per model unless -v
MOST_FAILURES = 10
FAILED_STATES = {"FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "PREEMPTED"}


def job_folders(run_dir: Path) -> dict[str, Path]:
    """Every job folder of a run (one holding status.json), by job name."""
    return {name: runfolder.job_dir(run_dir, name) for name in runfolder.job_names(run_dir, (runfolder.STATUS_FILE,))}


def submissions(run_dir: Path) -> list[dict]:
    return (artifacts.read_json(run_dir / SLURM_FILE, {}) or {}).get("submissions", [])


def last_history_row(folder: Path) -> dict:
    rows = runfolder.read_history(folder)
    return rows[-1] if rows else {}


def _losses(row: dict) -> str:
    terms = []
    for key, value in row.items():
        if key in runfolder.BOOKKEEPING or value in ("", None):
            continue
        try:
            terms.append(f"{key} {float(value):.3g}")
        except ValueError:
            continue
    return "  ".join(terms)


def _shown(path: Path) -> str:
    """A path as short as it can be said: relative to here when it is below here."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def show_status(run_dir: Path, verbose: bool = False) -> int:
    """Print one row per job: SLURM id and state, our state, epochs, last losses, speed, outputs folder; in a
    run of more than MOST_ROWS jobs (a sweep) one row per model unless ``verbose``, failures in full either way."""
    run_dir = Path(run_dir)
    folders = job_folders(run_dir)
    subs = submissions(run_dir)
    statuses = {name: artifacts.read_status(folder) for name, folder in folders.items()}
    ids = {name: job_id for name, job_id in latest_ids(run_dir).items() if name in statuses}
    report = subs[-1].get("report") if subs else None
    problems: list[str] = []
    states = job_states(list(ids.values()) + ([report["slurm_id"]] if report else []), problems)
    for problem in problems:
        console.print(f"[yellow]SLURM states unknown, showing what the job folders say: {problem}[/]",
                      highlight=False)

    summary = len(folders) > MOST_ROWS and not verbose
    table = Table(title=f"run {run_dir.name}" + (f": {len(folders)} jobs by model (-v: every job)" if summary else ""))
    for col in ("job", "seed", "SLURM", "state", "epoch", "s/epoch"):
        table.add_column(col, no_wrap=True)
    for col in ("last losses", "outputs"):
        table.add_column(col, overflow="fold")
    failures, by_model = [], {}
    for name, folder in folders.items():
        status, slurm_id = statuses[name], ids.get(name, "")
        slurm_state = states.get(slurm_id, "") if slurm_id else ""
        state = status.get("state", "?")
        # A job SLURM killed (memory, node failure) never got to write its own failure.
        if slurm_state in FAILED_STATES and state in ("queued", "running"):
            state = "failed"
        elif slurm_state == "CANCELLED" and state in ("queued", "running"):
            state = "cancelled"
        elif slurm_state == "PENDING" and state in ("running", "interrupted"):
            state = "queued"  # requeued (preempted or timed out): waiting to resume
        row = last_history_row(folder)
        epochs = status.get("epochs") or (status.get("config") or {}).get("epochs")
        done = status.get("epoch", int(row.get("epoch", 0)))
        colour = {"completed": "green", "running": "cyan", "queued": "white", "cancelled": "yellow",
                  "interrupted": "yellow"}.get(state, "red")
        speed = status.get("seconds_per_epoch")
        progress = f"{done}/{epochs or '?'}"
        model = by_model.setdefault(runfolder.split_trial(name)[0], {"jobs": 0, "states": {}, "done": 0, "epochs": 0})
        model["jobs"] += 1
        model["states"][state] = model["states"].get(state, 0) + 1
        model["done"], model["epochs"] = model["done"] + int(done or 0), model["epochs"] + int(epochs or 0)
        if state == "running" and status.get("step") and status.get("steps"):
            progress += f" (step {status['step']}/{status['steps']})"
        table.add_row(name, str(runfolder.split_seed(name)[1]), f"{slurm_id} {slurm_state}".strip(), f"[{colour}]{state}[/]",
                      progress,
                      f"{speed:.1f}" if speed else "", _losses(row), _shown(folder))
        # A pack's SLURM state is every member's: a member that completed in a failed pack did not fail.
        if state in ("failed", "diverged", "corrupt") or (slurm_state in FAILED_STATES and state != "completed"):
            failures.append((name, status, slurm_state))
    if summary:
        table = Table(title=table.title)
        for col in ("model", "jobs", "states", "epochs done"):
            table.add_column(col)
        for model, m in by_model.items():
            counts = ", ".join(f"{n} {state}" for state, n in sorted(m["states"].items()))
            table.add_row(model, str(m["jobs"]), counts, f"{m['done']}/{m['epochs']}")
    if report:
        report_state = f"{report['slurm_id']} {states.get(report['slurm_id'], '')}".strip()
        table.add_row(*(("(report)", "", report_state, "") if summary else
                        ("(report)", "", report_state, "", "", "", "", _shown(run_dir / "report"))))
    console.print(table)

    shown = failures[:MOST_FAILURES] if summary else failures
    if len(shown) < len(failures):
        console.print(f"[red]{len(failures)} jobs failed; the first {len(shown)} below (-v: every one)[/]")
    for name, status, slurm_state in shown:
        source, detail = runfolder.log_tail(run_dir, name, status, LOG_LINES)
        title = f"{name}: {status.get('state')}{f' / SLURM {slurm_state}' if slurm_state else ''} ({source})"
        console.print(Panel(detail, title=title, title_align="left", border_style="red"), markup=False)
    if report and states.get(report["slurm_id"]) in FAILED_STATES:
        console.print(Panel(runfolder.read_tail(report.get("log_err") or "", LOG_LINES) or "no log recorded", title="report job failed",
                            title_align="left", border_style="red"))
    if not folders:
        console.print(f"{run_dir}: no job folders yet")
    return 0


def cancel_run(run_dir: Path) -> int:
    """scancel the run's queued and running SLURM jobs (ids from slurm.json) and mark them cancelled."""
    run_dir = Path(run_dir)
    subs = submissions(run_dir)
    if not subs:
        console.print(f"[red]error:[/] {run_dir} has no {SLURM_FILE}: it was never submitted to SLURM "
                      "(a --local run cannot be cancelled from here)", highlight=False)
        return 2
    jobs = {name: job_id for sub in subs for group in sub["groups"] for name, job_id in group["jobs"].items()}
    reports = [sub["report"]["slurm_id"] for sub in subs if sub.get("report")]
    problems: list[str] = []
    states = job_states(list(jobs.values()) + reports, problems)
    if problems:
        console.print(f"[red]error:[/] which jobs are still active is unknown: {problems[0]}", highlight=False)
        return 2
    active = [i for i in [*jobs.values(), *reports] if states.get(i) in ACTIVE_STATES]
    if not active:
        console.print(f"run {run_dir.name}: no queued or running SLURM jobs")
        return 0
    res = subprocess.run(["scancel", *active], capture_output=True, text=True, timeout=60, check=False)
    if res.returncode != 0:
        console.print(f"[red]scancel failed:[/] {res.stderr.strip()}", highlight=False)
        return 1
    # Wait for the kills to land so no job rewrites its status.json after we mark it.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not any(job_states(active).get(i) in ACTIVE_STATES - {"PENDING"} for i in active):
            break
        time.sleep(1)
    table = Table(title=f"run {run_dir.name}: cancelled")
    for col in ("job", "SLURM id", "was"):
        table.add_column(col)
    for name, job_id in jobs.items():
        if job_id in active:
            folder = runfolder.job_dir(run_dir, name)
            status = artifacts.read_status(folder)
            if str(status.get("slurm_id")) == job_id and status.get("state") in ("queued", "running"):
                artifacts.write_status(folder, "cancelled", cancelled=time.time())
            table.add_row(name, job_id, states[job_id])
    for job_id in reports:
        if job_id in active:
            table.add_row("(report)", job_id, states[job_id])
    console.print(table)
    return 0
