#!/usr/bin/env python
"""Fan out the Fashion-MNIST experiments: on SLURM (default), locally (--local) or as a CPU dry run.

    python launch.py --all --partition gpu          # every job as its own SLURM job, then the report
    python launch.py gan/gan gan/wgan_gp --local    # train on this machine
    python launch.py --all --dry-run                # every job for a few steps on CPU
    python launch.py --all --plan                   # expected minutes per job, GPU-hours, wall time
    python launch.py --list | --status RUN | --cancel RUN | --aggregate RUN
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

import jobs
from fashion import artifacts
from fashion.data import DataError
from fashion.training import ConfigError

console = Console()
DEFAULT_JOB = "gan/gan"


class LaunchError(RuntimeError):
    """A problem with the request itself; printed without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("jobs", nargs="*", metavar="JOB",
                   help=f"job names, globs ('gan/*') or suites ({', '.join(jobs.SUITES)}); default {DEFAULT_JOB}")
    p.add_argument("--all", action="store_true", help="every job in the catalogue")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--local", action="store_true", help="train here with submitit's local executor")
    mode.add_argument("--dry-run", action="store_true", help="every selected job for a few steps on CPU")
    mode.add_argument("--list", action="store_true", help="print the job catalogue")
    mode.add_argument("--plan", action="store_true",
                      help="print each job's expected minutes, the GPU-hours and the wall time; run nothing")
    mode.add_argument("--status", metavar="RUN", help="show the state of a run's jobs")
    mode.add_argument("--cancel", metavar="RUN", help="cancel a run's SLURM jobs")
    mode.add_argument("--aggregate", metavar="RUN", help="build the report of a run now")

    g = p.add_argument_group("run and training settings (applied to every selected job)")
    g.add_argument("--run", default="default", help="run name: outputs go to OUTPUTS/RUN/JOB (default: default)")
    g.add_argument("--outputs", default="outputs", help="root of the outputs tree (default: ./outputs)")
    g.add_argument("--epochs", type=int, help="epochs per job")
    g.add_argument("--batch-size", type=int, help="global batch size (split over all GPUs)")
    g.add_argument("--limit-batches", type=int, help="steps per epoch (small budgets, smoke tests)")
    g.add_argument("--precision", choices=("auto", "no", "bf16", "fp16"), help="mixed precision")
    g.add_argument("--seed", type=int)
    g.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files")
    g.add_argument("--download", action="store_true", help="let torchvision download Fashion-MNIST if missing")
    g.add_argument("--log-with", metavar="TRACKERS",
                   help="experiment trackers, comma-separated: tensorboard, wandb (offline), mlflow, aim, ...")
    g.add_argument("--plan-device", default="NVIDIA H200",
                   help="--plan/--dry-run: the device to estimate for, as torch names it, or cpu")
    g.add_argument("--slots", type=int, help="--plan: jobs running at once (default: --array-parallelism, else all)")
    g.add_argument("--set", action="append", default=[], metavar="[JOB:]KEY=VALUE",
                   help="any config field, for all jobs or for one job (repeatable); see --list -v")
    g.add_argument("--force", action="store_true", help="retrain jobs that already completed in this run")
    g.add_argument("--nproc", type=int, default=1, help="--local: processes per job (CPU DDP with gloo)")
    g.add_argument("-v", "--verbose", action="store_true", help="--list: show every config field")

    s = p.add_argument_group("SLURM (flags override the --cluster profile and each job's defaults)")
    s.add_argument("--cluster", help="profile name: slurm/clusters/NAME.toml")
    s.add_argument("--partition")
    s.add_argument("--account")
    s.add_argument("--qos")
    s.add_argument("--time", type=int, metavar="MINUTES", help="time limit per job")
    s.add_argument("--gpus-per-node", type=int)
    s.add_argument("--nodes", type=int)
    s.add_argument("--cpus-per-task", type=int)
    s.add_argument("--mem", help="memory per node, e.g. 32G")
    s.add_argument("--constraint")
    s.add_argument("--exclude")
    s.add_argument("--array-parallelism", type=int, help="max jobs of one array running at once")
    s.add_argument("--sbatch", action="append", default=[], metavar="KEY=VALUE", help="any other sbatch option")
    s.add_argument("--no-aggregate", action="store_true", help="do not submit the report job")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return dispatch(args)
    except (LaunchError, ConfigError, DataError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) else str(err)
        console.print(f"[bold red]error:[/] {message}", highlight=False)
        return 2


def dispatch(args) -> int:
    outputs = Path(args.outputs)
    if args.list:
        return print_catalogue(args.verbose)
    if args.status:
        from slurm.status import show_status

        return show_status(run_dir(outputs, args.status, must_exist=True))
    if args.cancel:
        from slurm.status import cancel_run

        return cancel_run(run_dir(outputs, args.cancel, must_exist=True))
    if args.aggregate:
        from fashion.report import aggregate

        return aggregate(run_dir(outputs, args.aggregate, must_exist=True), console=console)

    selected = jobs.select(["all"] if args.all else (args.jobs or [DEFAULT_JOB]))
    configs = {job.name: job.make_config(overrides_for(job, args)) for job in selected}
    if args.plan or args.dry_run:
        show_plan(selected, configs, outputs, args)
        if args.plan:
            return 0
    if args.dry_run:
        from jobs.local import dry_run

        return dry_run(selected, configs, outputs / (args.run if args.run != "default" else "dry-run"))
    out = run_dir(outputs, args.run)
    selected, unavailable = set_aside_unavailable(selected, configs)
    if not selected:
        console.print("nothing to run: every selected job was skipped")
        return 1
    selected = skip_finished(selected, out, args.force)
    if not selected:
        console.print(f"every selected job already completed in {out}; --force retrains them")
        return 0
    if args.local:
        from jobs.local import run_local

        return run_local(selected, configs, out, tasks_per_node=args.nproc)
    from slurm.executor import SlurmError, launch

    try:
        return launch(selected, configs, out, args, console=console, skipped=unavailable)
    except SlurmError as err:
        raise LaunchError(str(err)) from None


def overrides_for(job: jobs.Job, args) -> dict[str, str]:
    flags = {"epochs": args.epochs, "batch_size": args.batch_size, "limit_batches": args.limit_batches,
             "precision": args.precision, "seed": args.seed, "data_dir": args.data_dir,
             "download": True if args.download else None, "log_with": args.log_with}
    values = {k: str(v) for k, v in flags.items() if v is not None}
    for item in args.set:
        target, _, assignment = item.rpartition(":") if ":" in item.split("=", 1)[0] else ("", "", item)
        key, eq, value = assignment.partition("=")
        if not eq or not key:
            raise LaunchError(f"--set {item!r}: expected KEY=VALUE or JOB:KEY=VALUE")
        if target and target not in jobs.CATALOGUE:
            raise LaunchError(f"--set {item!r}: unknown job {target!r}; `python launch.py --list` shows them")
        if not target or target == job.name:
            values[key] = value
    return values


def show_plan(selected: list[jobs.Job], configs: dict, outputs: Path, args) -> None:
    from slurm.plan import estimate, print_plan

    slots = args.slots or args.array_parallelism or len(selected)
    if slots < 1:
        raise LaunchError(f"--slots {slots}: must be at least 1")
    try:
        rows = estimate(selected, configs, outputs, args.plan_device)
    except ValueError as err:
        raise LaunchError(str(err)) from None
    print_plan(rows, args.plan_device, slots, console)


def run_dir(outputs: Path, run: str, must_exist: bool = False) -> Path:
    if not run or "/" in run or run.startswith("."):
        raise LaunchError(f"--run {run!r}: use a plain folder name like 'baseline' or 'sweep-1'")
    path = outputs / run
    if must_exist and not path.is_dir():
        known = sorted(p.name for p in outputs.iterdir() if p.is_dir()) if outputs.is_dir() else []
        raise LaunchError(f"no run {run!r} under {outputs}/; runs there: {', '.join(known) or 'none'}")
    return path


def set_aside_unavailable(selected: list[jobs.Job], configs: dict) -> tuple[list[jobs.Job], dict[str, str]]:
    """Jobs that cannot run with their config (e.g. vae/product-cond without its photos) are skipped,
    saying why, so ``--all`` runs everything else."""
    todo, skipped = [], {}
    for job in selected:
        reason = job.unavailable(configs[job.name]) if job.unavailable else None
        if reason:
            skipped[job.name] = reason
            console.print(f"[yellow]{job.name}: skipped, {reason}[/]", highlight=False)
        else:
            todo.append(job)
    return todo, skipped


def skip_finished(selected: list[jobs.Job], out: Path, force: bool) -> list[jobs.Job]:
    """Never spend GPU hours twice: completed jobs are skipped unless --force moves them aside."""
    todo = []
    for job in selected:
        folder = out / job.name
        if artifacts.read_status(folder).get("state") == "completed":
            if not force:
                console.print(f"[dim]{job.name}: already completed in {folder}, skipped (--force retrains)[/]")
                continue
            trash = out / ".replaced" / f"{job.name.replace('/', '__')}-{time.strftime('%Y%m%d-%H%M%S')}"
            trash.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(folder), str(trash))
            console.print(f"[yellow]{job.name}: previous results moved to {trash}[/]")
        todo.append(job)
    return todo


def print_catalogue(verbose: bool) -> int:
    from jobs.catalogue import describe

    table = Table(title="job catalogue")
    for col in ("job", "suite", "GPUs", "time", "description"):
        table.add_column(col)
    for job in jobs.CATALOGUE.values():
        r = job.resources
        table.add_row(job.name, job.suite, f"{r.gpus_per_node}x{r.nodes}", f"{r.timeout_min} min", job.description)
    console.print(table)
    if verbose:
        for job in jobs.CATALOGUE.values():
            fields = Table(title=job.name, show_header=False)
            config = job.make_config()
            for name, _, doc in describe(job.config_class):
                fields.add_row(name, repr(getattr(config, name)), doc)
            console.print(fields)
    return 0


if __name__ == "__main__":
    sys.exit(main())
