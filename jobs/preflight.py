"""Before anything starts: each selected job's fate in its run folder (run, resume, train on, skip, set
aside, start afresh) and the checks that would otherwise fail only once a job runs.

The launcher calls these in order; nothing here submits, trains or writes except :func:`move_aside`, which
runs last, once every check has passed (for SLURM: just before ``sbatch``).
"""
from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console

from fashion import artifacts, runfolder
from fashion.checkpoint import CHECKPOINT, changed_settings, refusal
from fashion.data import DataError
from jobs.catalogue import Job

console = Console()


class Refused(RuntimeError):
    """The launch is refused before anything started (a busy or changed job, unreadable data...): exit 2."""


def set_aside_unavailable(selected: list[Job], configs: dict) -> tuple[list[Job], dict[str, str]]:
    """Jobs that cannot run with their config (e.g. vae/product-cond without its photos) are skipped, with
    why, so ``--all`` runs everything else. Nothing is printed: the launcher says so once every check passed."""
    todo, skipped = [], {}
    for job in selected:
        reason = job.unavailable(configs[job.name]) if job.unavailable else None
        if reason:
            skipped[job.name] = reason
        else:
            todo.append(job)
    return todo, skipped


def decide(selected: list[Job], configs: dict, out: Path, force: bool) -> tuple[list[Job], list[str], list[str]]:
    """Each job's fate, decided before anything is written: (jobs to run, jobs whose old folder moves aside,
    what to tell the user once every other check has passed).

    A completed job is skipped, or continued when --epochs is raised; a partial job resumes only with the
    settings it was trained with; a corrupt one is skipped; --force starts any of them afresh. A job another
    live process is training, or one resumed with changed settings, refuses the whole launch (exit 2).
    """
    todo, replace, refused, notes = [], [], [], []
    for job in selected:
        folder = runfolder.job_dir(out, job.name)
        try:
            artifacts.check_free(folder)
        except artifacts.JobBusy as err:
            refused.append(f"{job.name}: {err}")
            continue
        action, done, why = fate(folder, configs[job.name], force)
        if action == "replace":
            replace.append(job.name)
        elif action == "corrupt":
            notes.append(f"[red]{job.name}: corrupt, skipped: {why}; --force starts it afresh "
                         "(the folder moves to .replaced/)[/]")
            continue
        elif action == "refused":
            refused.append(f"{job.name}: {why}")
            continue
        elif action == "completed":
            notes.append(f"[dim]{job.name}: already completed ({done} epochs) in {folder}, skipped "
                         f"(a larger --epochs trains it on; --force retrains it)[/]")
            continue
        elif action == "train on":
            notes.append(f"{job.name}: completed {done} epochs; training on to {configs[job.name].epochs}")
        todo.append(job)
    if refused:
        raise Refused("nothing was started:\n  " + "\n  ".join(refused))
    return todo, replace, notes


def fate(folder: Path, config, force: bool) -> tuple[str, int, str]:
    """(what a launch does with the job in ``folder``, the epochs it keeps, why), for :func:`decide` and
    --plan. Actions: "replace" (--force: the folder moves aside, training starts afresh), "corrupt" and
    "completed" (skipped), "refused" (a resume with changed settings), "train on" (a completed job asked
    for more epochs) and "train" (from its last epoch; 0 kept: from scratch)."""
    status = artifacts.read_status(folder)
    state = status.get("state")
    has_checkpoint = (folder / CHECKPOINT).exists()
    if force and (has_checkpoint or state in ("completed", "corrupt")):
        return "replace", 0, ""
    if state == "corrupt":
        return "corrupt", 0, status["error"]
    asked = config.epochs
    if state == "completed":  # asking a finished job for fewer epochs is not a change: it is skipped
        config = dataclasses.replace(config, epochs=max(config.epochs, int(status.get("epoch") or 0)))
    problem, done = resume_check(folder, config, status)
    if problem:
        return "refused", done, problem
    if state == "completed":
        return ("completed" if asked <= done else "train on"), done, ""
    return "train", done if has_checkpoint else 0, ""


def resume_check(folder: Path, config, status: dict) -> tuple[str, int]:
    """(why resuming this folder with ``config`` is refused or "", epochs it has trained), from config.json."""
    done = int(status.get("epoch") or 0) if isinstance(status.get("epoch"), (int, float)) else 0
    if not (folder / CHECKPOINT).exists():
        return "", done
    try:
        saved = (artifacts.read_json(folder / "config.json", {}) or {}).get("config")
    except ValueError as err:
        return f"{err}", done
    if not saved:
        return "", done
    refused, _ = changed_settings(saved, dataclasses.asdict(config), done)
    return (refusal(folder, refused, done) if refused else ""), done


def move_aside(names: list[str], out: Path) -> None:
    """--force: each job's previous folder goes to RUN/.replaced/, never deleted."""
    for name in names:
        folder = runfolder.job_dir(out, name)
        if not folder.exists():
            continue
        trash = out / ".replaced" / f"{name.replace('/', '__')}-{time.strftime('%Y%m%d-%H%M%S')}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder), str(trash))
        console.print(f"[yellow]{name}: previous results moved to {trash}[/]", highlight=False)


def check_pack(pack: int, nproc: int = 1, gpus_per_node: int | None = None, nodes: int | None = None) -> None:
    """--pack N: at least 1, and only for jobs of one process, one GPU and one node (also --plan's check)."""
    if pack < 1:
        raise Refused(f"--pack {pack}: must be at least 1 (jobs trained at once in one allocation)")
    if pack > 1 and (nproc > 1 or (gpus_per_node or 0) > 1 or (nodes or 1) > 1):
        raise Refused(f"--pack {pack}: only jobs of one process, one GPU and one node share an "
                      "allocation; drop --pack, or --nproc/--gpus-per-node/--nodes")


def check_writable(out: Path) -> None:
    """A file can be made where the run goes (tried in its nearest existing folder, which it leaves as it was)."""
    folder = out
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise Refused(f"cannot write {out}: {err.strerror or err} in {folder}; choose another --outputs or "
                      "fix its permissions") from None


def check_flags(selected: list[Job], configs: dict, out: Path, *, local: bool, nproc: int = 1, pack: int = 1,
                gpus_per_node: int | None = None, nodes: int | None = None) -> None:
    """The flags alone, before any job's fate is decided: packing, DDP batch splits, the outputs folder."""
    check_pack(pack, nproc, gpus_per_node, nodes)
    if local:
        if nproc < 1:
            raise Refused(f"--nproc {nproc}: must be at least 1")
        uneven = [j.name for j in selected if configs[j.name].batch_size % nproc]
        if uneven:
            batch = configs[uneven[0]].batch_size
            raise Refused(f"{', '.join(uneven)}: batch_size {batch} is global and must split evenly over "
                          f"--nproc {nproc} processes; use --batch-size "
                          f"{-(-batch // nproc) * nproc} or another --nproc")
    check_writable(out)


def check_evaluator(selected: list[Job]) -> None:
    """Jobs that draw samples measure them with the shipped evaluator: a missing or damaged one is refused
    now, not after hours of training."""
    if any(job.task.measured() for job in selected):
        from fashion.evaluator import EvaluatorError, load_evaluator

        try:
            load_evaluator()
        except EvaluatorError as err:
            raise Refused(str(err)) from None


def check_data(selected: list[Job], configs: dict, *, local: bool) -> None:
    """What would only fail once a job runs: each data source the jobs to run read, loaded once."""
    seen: dict[tuple, str] = {}
    for job in selected:
        config = configs[job.name]
        key = (job.task.load_data, config.data_dir, config.download)
        if key not in seen:
            try:
                job.task.load_data(config)
                seen[key] = ""
            except DataError as err:
                seen[key] = str(err)
            except OSError as err:
                seen[key] = f"{getattr(err, 'filename', '') or config.data_dir}: cannot be read ({err.strerror or err})"
        if seen[key]:
            hint = " (--no-data-check skips this check for a path that exists only on the cluster)" \
                if not local else ""
            raise Refused(f"{job.name}: {seen[key]}{hint}")
