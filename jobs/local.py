"""Running jobs without SLURM: ``--local`` (submitit's local executor) and ``--dry-run`` (in-process, CPU)."""
from __future__ import annotations

import dataclasses
import os
import shutil
import time
import traceback
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fashion import artifacts, runfolder
from jobs.catalogue import Job
from jobs.runner import TrainJob

console = Console()

# What every job leaves in its folder; tasks add their own in ``Task.expected_files``.
COMMON_ARTIFACTS = ("config.json", "status.json", "history.csv", "losses.csv", "losses.png",
                    "metrics.json", "checkpoint.pt")


def expected_artifacts(job: Job) -> tuple[str, ...]:
    return COMMON_ARTIFACTS + tuple(job.task.expected_files)


def run_local(jobs: list[Job], configs: dict, run_dir: Path, tasks_per_node: int = 1, pack: int = 1) -> int:
    """Train the jobs in subprocesses (submitit LocalExecutor), one after another or ``pack`` at a time side
    by side on this machine (one GPU, if any, shared), showing live progress."""
    import submitit

    from jobs.runner import PackJob

    results = []
    with Progress(TextColumn("{task.description:<18}"), BarColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), console=console) as progress:
        for first in range(0, len(jobs), max(1, pack)):
            unit = jobs[first:first + max(1, pack)]
            outs = {job.name: runfolder.job_dir(run_dir, job.name) for job in unit}
            executor = submitit.LocalExecutor(folder=runfolder.job_dir(run_dir / runfolder.SUBMITIT_DIR, unit[0].name))
            executor.update_parameters(tasks_per_node=tasks_per_node, timeout_min=60 * 24 * 7,
                                       **local_gpus(tasks_per_node, all(configs[j.name].cpu for j in unit)))
            members = []
            for job in unit:
                artifacts.write_status(outs[job.name], "queued", job=job.name, error=None, traceback=None, reason=None)
                members.append(TrainJob(job.name, configs[job.name], str(outs[job.name])))
            handle = executor.submit(members[0] if len(members) == 1 else PackJob(members))
            bars = {name: progress.add_task(name, total=None, info="starting") for name in outs}
            try:
                while not handle.done():
                    for name, out in outs.items():
                        _update_bar(progress, bars[name], artifacts.read_status(out))
                    time.sleep(1.0)
            except KeyboardInterrupt:
                stop(handle, list(outs.values()))
                progress.console.print(f"[yellow]{', '.join(outs)}: interrupted[/]; run the same command again to "
                                       "resume", highlight=False)
                raise
            try:
                handle.results()  # one result per task; any failed task (or pack member) raises
                error = None
            except Exception as err:  # the job's own traceback is in its log and status.json
                error = err
            for name, out in outs.items():
                status = artifacts.read_status(out)
                _update_bar(progress, bars[name], status)
                state = status.get("state", "?")
                if error is not None and state != "completed":
                    state = "failed" if state in ("queued", "running", "?") else state
                    progress.console.print(f"[red]{name} failed:[/] {failure_message(status, error)}",
                                           highlight=False)
                    progress.console.print(f"  log: {handle.paths.stderr}", highlight=False)
                results.append((name, state, status.get("epoch"), status.get("seconds_per_epoch"), out))
    table = Table(title=f"run {run_dir.name}")
    for col in ("job", "state", "epochs", "s/epoch", "outputs"):
        table.add_column(col)
    for name, state, epoch, spe, out in results:
        colour = "green" if state == "completed" else "red"
        table.add_row(name, f"[{colour}]{state}[/]", str(epoch), f"{spe}", str(out))
    console.print(table)
    return 0 if all(r[1] == "completed" for r in results) else 1


def stop(handle, outs: list[Path], wait_s: float = 15.0) -> None:
    """Stop a local job at once and leave it resumable: submitit's local tasks ignore SIGTERM, so the
    controller gets SIGINT, which it passes on (KeyboardInterrupt in the trainer, which marks the job)."""
    handle.cancel()
    deadline = time.monotonic() + wait_s
    while not handle.done() and time.monotonic() < deadline:
        time.sleep(0.2)
    for out in outs:
        if artifacts.read_status(out).get("state") in ("queued", "running"):  # killed before it could say so
            artifacts.write_status(out, "interrupted", interrupted=time.time(),
                                   reason="stopped by a signal; re-launch the same command to resume")


def failure_message(status: dict, err: BaseException, lines: int = 3) -> str:
    """The job's own error (status.json), else the last lines of the exception submitit raised."""
    if status.get("error"):
        return str(status["error"]).strip()
    text = [line for line in str(err).strip().splitlines() if line.strip()]
    return "\n  ".join(text[-lines:]) or type(err).__name__


def local_gpus(tasks_per_node: int, cpu: bool) -> dict:
    """One GPU per task, from those this process may use; none if there are too few (the tasks then run on the
    CPU, DDP over gloo). submitit's local executor hides every GPU unless told (CUDA_VISIBLE_DEVICES="")."""
    import torch

    count = 0 if cpu else torch.cuda.device_count()
    if count < tasks_per_node:
        return {}
    # Keep the user's own CUDA_VISIBLE_DEVICES choice: submitit would otherwise renumber from GPU 0. GPU UUIDs
    # cannot be passed on (submitit takes indices), so with those the first `count` GPUs are used.
    chosen = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    visible = tuple(int(d) for d in chosen) if chosen and all(d.isdigit() for d in chosen) else tuple(range(count))
    return {"gpus_per_node": tasks_per_node, "visible_gpus": visible}


def _update_bar(progress, bar, status):
    epochs, steps = status.get("epochs"), status.get("steps")
    if not epochs or not steps:
        return
    done = status.get("epoch", 0) * steps + status.get("step", 0)
    progress.update(bar, total=epochs * steps, completed=done,
                    info=f"epoch {min(status.get('epoch', 0) + 1, epochs)}/{epochs} {status.get('state', '')}")


def dry_run(jobs: list[Job], configs: dict, run_dir: Path) -> int:
    """Each job for two epochs of three steps on a data slice, on CPU, in this process; then check its files.
    Every job asks for the same accelerator (CPU, fp32), so one process serves them all."""
    from fashion.runtime import prepare_process
    from fashion.training import fit

    rows = []
    for job in jobs:
        config = dataclasses.replace(configs[job.name], epochs=2, limit_batches=3, cpu=True, precision="no",
                                     train_subset=max(256, 2 * configs[job.name].batch_size), test_subset=256,
                                     eval_samples=256)
        out = runfolder.job_dir(run_dir, job.name)
        artifacts.check_free(out)  # another dry run of the same name is still training here
        shutil.rmtree(out, ignore_errors=True)  # scratch space: dry runs never write into a real run
        reason = job.unavailable(config) if job.unavailable else None
        if reason:
            rows.append((job.name, "skipped", 0.0, reason))
            continue
        console.print(f"[bold]{job.name}[/] ...")
        t0 = time.perf_counter()
        try:
            prepare_process(config)
            fit(job.task, config, out, job.name)
            missing = [a for a in expected_artifacts(job) if not (out / a).exists()]
            state = artifacts.read_status(out).get("state")
            detail = (f"missing {', '.join(missing)}" if missing else
                      "" if state == "completed" else f"status {state}")
            rows.append((job.name, "pass" if not detail else "FAIL", time.perf_counter() - t0, detail))
        except Exception as err:
            console.print(traceback.format_exc(), markup=False)
            rows.append((job.name, "FAIL", time.perf_counter() - t0, f"{type(err).__name__}: {err}"))
    table = Table(title="dry run")
    for col in ("job", "seed", "result", "seconds", "detail"):
        table.add_column(col)
    for name, result, seconds, detail in rows:
        colour = {"pass": "green", "skipped": "yellow"}.get(result, "red")
        table.add_row(name, str(configs[name].seed), f"[{colour}]{result}[/]", f"{seconds:.1f}", detail)
    console.print(table)
    return 0 if all(r[1] != "FAIL" for r in rows) else 1
