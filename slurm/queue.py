"""Queue state of a run's SLURM jobs: squeue for the jobs still queued, sacct for the ones that left it,
and the ids each submission recorded in the run's ``slurm.json``."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from fashion import artifacts
from slurm.requests import SlurmError

SLURM_FILE = "slurm.json"

ACTIVE_STATES = {"PENDING", "RUNNING", "REQUEUED", "SUSPENDED", "CONFIGURING", "COMPLETING", "RESIZING",
                 "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "STOPPED"}


def job_states(ids: list[str], problems: list[str] | None = None) -> dict[str, str]:
    """SLURM state of each job id ("45" or array task "45_3"): squeue for jobs still in the queue, sacct for
    the ones that left it; ids neither knows are left out, with the reason appended to ``problems``.

    squeue comes first because the accounting database learns of a job late: a pending job (a held one, or
    one waiting for its --begin time) can be missing from sacct for a long time.
    """
    problems = [] if problems is None else problems
    if not ids:
        return {}
    states = queued_states(ids)
    rest = [i for i in ids if i not in states]
    return {**states, **accounted_states(rest, problems)} if rest else states


def queued_states(ids: list[str]) -> dict[str, str]:
    """State of those ``ids`` that are in slurmctld's queue now (one line per array task); {} without squeue."""
    if shutil.which("squeue") is None:
        return {}
    try:  # every job of this user, not -j: squeue fails outright when one id has left the queue
        res = subprocess.run(["squeue", "--me", "-h", "-r", "-o", "%i|%T"], capture_output=True, text=True,
                             timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return {}
    if res.returncode != 0:
        return {}
    wanted = set(ids)
    rows = (line.split("|", 1) for line in res.stdout.splitlines() if "|" in line)
    return {job_id: state.strip() for job_id, state in rows if job_id in wanted}


def accounted_states(ids: list[str], problems: list[str]) -> dict[str, str]:
    """State of each id from the accounting database (sacct), which also knows the jobs that ended."""
    if shutil.which("sacct") is None:
        problems.append("sacct is not installed here")
        return {}
    masters = sorted({i.split("_")[0] for i in ids})
    try:
        res = subprocess.run(["sacct", "-n", "-P", "-X", "-j", ",".join(masters), "-o", "JobID,State"],
                             capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        problems.append("sacct got no answer in 30 s")
        return {}
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["no message"])[-1]
        problems.append(f"{last} (SLURM_CONF={os.environ.get('SLURM_CONF', 'unset')})")
        return {}
    states = {}
    for line in res.stdout.splitlines():
        job_id, _, state = line.partition("|")
        for one in expand_array_id(job_id.strip()):
            states[one] = state.split()[0] if state.strip() else "UNKNOWN"  # "CANCELLED by 0" -> CANCELLED
    return {i: states[i] for i in ids if i in states}


def expand_array_id(job_id: str) -> list[str]:
    """sacct's ids of array tasks that have not started, "45_[2-4,7%2]", as "45_2", "45_3", "45_4", "45_7"."""
    match = re.fullmatch(r"(\d+)_\[([\d,\-]+)(?:%\d+)?\]", job_id)
    if not match:
        return [job_id]
    tasks = []
    for part in match[2].split(","):
        first, _, last = part.partition("-")
        tasks += range(int(first), int(last or first) + 1)
    return [f"{match[1]}_{t}" for t in tasks]


def latest_ids(run_dir: Path) -> dict[str, str]:
    """Each job's SLURM id ("123_4" for array task 4) in its latest submission recorded in slurm.json."""
    subs = (artifacts.read_json(Path(run_dir) / SLURM_FILE, {}) or {}).get("submissions", [])
    return {name: job_id for sub in subs for group in sub["groups"] for name, job_id in group["jobs"].items()}


def refuse_active(todo: list, run_dir: Path) -> None:
    """Two SLURM jobs training into one folder would corrupt it: refuse jobs still queued or running."""
    recorded = latest_ids(run_dir)
    ids = {job.name: recorded.get(job.name, "") for job in todo}
    states = job_states([i for i in ids.values() if i])
    active = [f"{name} (SLURM job {i}, {states[i]})" for name, i in ids.items() if states.get(i) in ACTIVE_STATES]
    if active:
        raise SlurmError(f"already queued or running in run {run_dir.name}: {', '.join(active)}. Wait for them "
                         f"(python launch.py --status {run_dir.name}), cancel them (--cancel {run_dir.name}), "
                         "or choose another --run")


def earlier_active(run_dir: Path) -> tuple[list[str], dict[str, str]]:
    """What earlier submissions to this run still have queued or running: the SLURM ids of training jobs
    (array masters: a dependency on one waits for all its tasks) and each report job with its state."""
    subs = (artifacts.read_json(Path(run_dir) / SLURM_FILE, {}) or {}).get("submissions", [])
    trained = [i for sub in subs for group in sub["groups"] for i in group["jobs"].values()]
    reports = [sub["report"]["slurm_id"] for sub in subs if sub.get("report")]
    states = job_states(trained + reports)
    active = sorted({i.split("_")[0] for i in trained if states.get(i) in ACTIVE_STATES}, key=int)
    return active, {i: states[i] for i in reports if states.get(i) in ACTIVE_STATES}


def hold_pending(ids: list[str]) -> list[str]:
    """Hold each job that is still pending; the ones held (a job that just started cannot be held)."""
    return [i for i in ids if subprocess.run(["scontrol", "hold", i], capture_output=True, timeout=60,
                                             check=False).returncode == 0]


def cancel(ids: list[str]) -> None:
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=60, check=False)
