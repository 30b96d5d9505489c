#!/usr/bin/env python
"""Fan out the Fashion-MNIST experiments: on SLURM (default), locally (--local) or as a CPU dry run.

    python launch.py --all --partition gpu          # every job as its own SLURM job, then the report
    python launch.py gan/gan gan/wgan_gp --local    # train on this machine
    python launch.py --all --dry-run                # every job for a few steps on CPU
    python launch.py 'gan/*' --seeds 3              # each GAN from seeds 0, 1 and 2: three jobs per GAN
    python launch.py --all --plan                   # expected minutes per job, GPU-hours, wall time
    python launch.py --list | --status RUN | --cancel RUN | --aggregate RUN | --publish RUN
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from rich.console import Console
from rich.table import Table

import jobs
from fashion import artifacts
from fashion.checkpoint import ChangedSettings
from fashion.data import DataError
from fashion.runfolder import split_seed
from fashion.task import ConfigError
from jobs import preflight, sweep

console = Console()
DEFAULT_JOB = "gan/gan"
# Dry runs train into OUTPUTS/.dry-run/RUN: never into a real run's folders (run names cannot start with '.').
DRY_RUN_DIR = ".dry-run"
PUBLISH_DIR = "results"
# One launch's bounds: past them a typo (--seeds 100000) would only build bookkeeping for minutes.
MAX_JOBS = 10_000


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
    mode.add_argument("--sample", metavar="RUN/JOB", help="draw from a finished generative job into one PNG")
    mode.add_argument("--publish", metavar="RUN", help="copy a run's report, contact sheet, GIFs and settings into "
                      "a compact folder to commit (--out, default results/)")

    g = p.add_argument_group("run and training settings (applied to every selected job)")
    g.add_argument("--run", default="default", help="run name: outputs go to OUTPUTS/RUN/JOB (default: default)")
    g.add_argument("--outputs", default="outputs", help="root of the outputs tree (default: ./outputs)")
    g.add_argument("--epochs", type=int, help="epochs per job")
    g.add_argument("--batch-size", type=int, help="global batch size (split over all GPUs)")
    g.add_argument("--limit-batches", type=int, help="steps per epoch (small budgets, smoke tests)")
    g.add_argument("--precision", choices=("auto", "no", "bf16", "fp16"), help="mixed precision")
    g.add_argument("--seeds", metavar="N|S,S,...",
                   help="train each selected job from several seeds: a count (3: seeds 0,1,2) or a list (0,4,7); "
                        "seed k>0 of job X is the job X.seed<k> with its own folder")
    g.add_argument("--seed", type=int, metavar="S",
                   help="one seed: the same as --seeds S, (default 0); with --sample, the sampling seed")
    g.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files")
    g.add_argument("--download", action="store_true", help="let torchvision download Fashion-MNIST if missing")
    g.add_argument("--log-with", metavar="TRACKERS",
                   help="experiment trackers, comma-separated: tensorboard, wandb (offline), mlflow, aim, ...")
    g.add_argument("--plan-device", default="NVIDIA H200",
                   help="--plan/--dry-run: the device to estimate for, as torch names it, or cpu")
    g.add_argument("--slots", type=int,
                   help="--plan: SLURM jobs (packs, with --pack) running at once (default: --array-parallelism, else all)")
    g.add_argument("--set", action="append", default=[], metavar="[JOB:]KEY=VALUE",
                   help="any config field, for all jobs or for one job (repeatable); see --list -v")
    w = p.add_argument_group("sweeps (docs/sweeps.md): one job per (model, trial, seed)")
    w.add_argument("--sweep", action="append", default=[], metavar="[JOB:]KEY=VALUES",
                   help="a grid KEY=V1,V2 or a range KEY=loguniform(A,B), uniform(A,B), int(A,B), choice(a,b) drawn "
                        "--trials times; KEY1+KEY2=... draws one value for both; repeatable")
    w.add_argument("--trials", type=int, metavar="N", help="random settings drawn per model (per grid point)")
    w.add_argument("--sweep-space", metavar="NAME", help=f"a named space per family ({', '.join(sweep.SPACES)}; "
                   "--list -v prints it); --sweep dimensions override its keys")
    w.add_argument("--sweep-seed", type=int, default=0, metavar="S",
                   help="seeds the trials' draws (default 0): the same seed draws the same settings")
    w.add_argument("--best-of", metavar="RUN", help="retrain each swept model's best trial of RUN (its report) from "
                   "--seeds into --run (default RUN-best): the search's confirmation")
    g.add_argument("--rank-by", choices=("final", "best"),
                   help="which checkpoint's FID the report ranks models by and a sweep picks its best trials by: "
                        "final (the generator each job ends with; the default) or best (each job's best snapshot, "
                        "chosen on training images); --best-of follows its run's report")
    g.add_argument("--classifier", metavar="PATH", help="measure the report's quality numbers in the features of "
                   "this classify job's model.pt instead of the shipped evaluator (numbers then carry its stamp)")
    g.add_argument("--force", action="store_true",
                   help="start the selected jobs afresh: their previous results (completed, partial, corrupt) "
                        "move to RUN/.replaced/")
    g.add_argument("--no-data-check", dest="data_check", action="store_false",
                   help="do not load the data before submitting (a --data-dir that exists only on the cluster)")
    g.add_argument("--nproc", type=int, default=1, help="--local: processes per job (CPU DDP with gloo)")
    g.add_argument("--pack", type=int, default=1, metavar="N",
                   help="train N jobs at once in one SLURM job (or, with --local, side by side here): "
                        "small jobs fill a GPU; 1-GPU, 1-node jobs only")
    g.add_argument("-v", "--verbose", action="store_true",
                   help="--list: every config field and the sweep spaces; --status: every job of a large run")

    d = p.add_argument_group("--sample RUN/JOB (uses --outputs, --seed and, for colorize's test images, --data-dir)")
    d.add_argument("-n", type=int, default=100, help="images to draw (colorize: test images to colour)")
    d.add_argument("--label", help="conditional models: the class to draw, by name (e.g. Dress)")
    d.add_argument("--input", action="append", default=[], metavar="PNG", help="colorize: a grey image (repeatable)")
    d.add_argument("--out", help="--sample: the PNG to write (default: JOB-samples.png here); "
                   f"--publish: the folder to write (default: {PUBLISH_DIR}/; --force replaces an earlier one)")

    s = p.add_argument_group("SLURM (flags override the --cluster profile and each job's defaults)")
    s.add_argument("--cluster", help="profile name: slurm/profiles/NAME.toml")
    add_slurm_options(s)
    s.add_argument("--sbatch", action="append", default=[], metavar="KEY=VALUE", help="any other sbatch option")
    s.add_argument("--no-aggregate", action="store_true",
                   help="no report: no report job on SLURM, no report after --local")
    return p


def add_slurm_options(group) -> None:
    """One flag per row of the SLURM option table (``slurm/options.py``)."""
    from slurm.options import OPTIONS

    for option in OPTIONS:
        group.add_argument(option.flag, type=option.type, metavar=option.metavar, help=option.help)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # SIGTERM (kill, timeout) stops the launcher like Ctrl-C: jobs it runs are stopped and marked, not orphaned.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main else None
    if in_main:  # started in the background (`cmd &` in a script) SIGINT is ignored, and so it would be in the
        signal.signal(signal.SIGINT, signal.default_int_handler)  # job processes, which stop on SIGINT
    try:
        return dispatch(args)
    except KeyboardInterrupt:
        console.print("[yellow]stopped by a signal[/]: interrupted jobs resume when the same command is run again",
                      highlight=False)
        return 130
    except (LaunchError, preflight.Refused, ConfigError, DataError, KeyError, ChangedSettings, artifacts.JobBusy,
            artifacts.WriteError) as err:
        message = err.args[0] if isinstance(err, KeyError) else str(err)
        console.print(f"[bold red]error:[/] {message}", highlight=False)
        return 2
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def dispatch(args) -> int:
    outputs = check_outputs(Path(args.outputs))
    args.classifier = checked_file(args.classifier)
    check_rank_by(args)
    seeds = seeds_of(args)
    if args.list:
        return print_catalogue(args.verbose, seeds, args.jobs or (["all"] if seeds else []))
    if args.status is not None:
        from slurm.status import show_status

        return show_status(run_dir(outputs, args.status, must_exist=True), args.verbose)
    if args.cancel is not None:
        from slurm.status import cancel_run

        return cancel_run(run_dir(outputs, args.cancel, must_exist=True))
    if args.sample:
        from fashion.generator import SampleError, sample_command
        entry = jobs.find(args.sample.strip("/").partition("/")[2])
        generative = entry is None or entry.task.generative()
        try:
            path = sample_command(outputs, args.sample, args.n, args.label, args.seed, args.out, args.input,
                                  args.data_dir, generative)
        except SampleError as err:
            raise LaunchError(str(err)) from None
        console.print(f"wrote {path}", highlight=False)
        return 0
    if args.aggregate is not None:
        from fashion.report import aggregate

        return aggregate(run_dir(outputs, args.aggregate, must_exist=True), console=console,
                         classifier=args.classifier, rank_by=args.rank_by or "final")

    if args.publish is not None:
        return publish(run_dir(outputs, args.publish, must_exist=True), Path(args.out or PUBLISH_DIR), args.force)

    picked, source, swept = None, None, None
    if args.best_of is not None:
        source = run_dir(outputs, args.best_of, must_exist=True)
        picked, provenance = best_of_flags(args, seeds, source)
        selected = sweep.best_jobs(picked, seeds)
    else:
        selected = jobs.select(["all"] if args.all else (args.jobs or [DEFAULT_JOB]), seeds or [0])
        swept = sweep.build(selected, args.sweep, args.sweep_space, args.trials, args.sweep_seed, args.set)
    check_run_name(args.run)
    count = sum(swept.size(job.model) for job in selected) if swept else len(selected)
    if count > MAX_JOBS:
        raise LaunchError(f"{count:,} jobs in one launch: at most {MAX_JOBS:,}; select fewer jobs, seeds or trials "
                          "and launch the rest into the same --run afterwards (completed jobs are skipped)")
    selected = sweep.trial_jobs(selected, swept)
    configs = {job.name: job.make_config(overrides_for(job, args)) for job in selected}
    check_other_job_settings(selected, args)
    if args.plan or args.dry_run:
        show_plan(selected, configs, outputs, args, swept)
        if args.plan:
            return 0
    if args.dry_run:
        from jobs.local import dry_run

        return dry_run(selected, configs, outputs / DRY_RUN_DIR / args.run)
    out = run_dir(outputs, args.run)
    if why := (sweep.refusal(out, swept) if swept else sweep.best_refusal(out, picked, source) if picked else ""):
        raise LaunchError(why)
    preflight.check_flags(selected, configs, out, local=args.local, nproc=args.nproc, pack=args.pack,
                          gpus_per_node=args.gpus_per_node, nodes=args.nodes)
    available, unavailable = preflight.set_aside_unavailable(selected, configs)
    selected, replace, notes = preflight.decide(available, configs, out, args.force)
    preflight.check_evaluator(selected)
    if args.data_check:
        preflight.check_data(selected, configs, local=args.local)

    def announce() -> None:  # what the launch decided, said once every check has passed
        if swept is not None:
            sweep.record(out, swept, selected)
        if picked is not None:
            sweep.record_best(out, picked, provenance)
        for name, reason in unavailable.items():
            console.print(f"[yellow]{name}: skipped, {reason}[/]", highlight=False)
        for line in notes:
            console.print(line, highlight=False)

    if not selected:
        announce()
        if not available:
            console.print("nothing to run: every selected job was skipped")
            return 1
        console.print(f"nothing to run in {out}: every selected job completed or was set aside")
        return 0
    if args.local:
        from jobs.local import run_local

        announce()
        preflight.move_aside(replace, out)
        code = run_local(selected, configs, out, tasks_per_node=args.nproc, pack=args.pack)
        if args.no_aggregate:
            return code
        # As on SLURM (the report job runs afterany): the report follows the jobs whatever their outcome.
        from fashion.report import aggregate

        console.print(f"building the report of {out} (--no-aggregate skips it) ...", highlight=False)
        return aggregate(out, console=console, classifier=args.classifier, rank_by=args.rank_by or "final") or code
    from slurm.submit import SlurmError, launch

    try:  # everything is checked with SLURM first; old results move aside only just before submitting
        return launch(selected, configs, out, slurm_flags(args), console=console, skipped=unavailable,
                      before_submit=lambda: (announce(), preflight.move_aside(replace, out)))
    except SlurmError as err:
        raise LaunchError(str(err)) from None


def best_of_flags(args, seeds: list[int] | None, source: Path):
    """--best-of RUN: each swept model's best trial there (and where it came from), retrained from --seeds
    into --run (default RUN-best)."""
    if args.sweep or args.sweep_space or args.trials is not None or args.jobs or args.all:
        raise LaunchError(f"--best-of {args.best_of} picks the jobs (each model's best trial): drop job names, "
                          "--all, --sweep, --sweep-space and --trials")
    if not seeds:
        raise LaunchError(f"--best-of {args.best_of}: give the seeds to retrain each best trial from, e.g. "
                          "--seeds 100,101,102,103,104 (seeds the sweep did not use give an unbiased estimate)")
    if args.run == "default":
        args.run = f"{args.best_of}-best"
    picked, provenance = sweep.best_of(source, args.rank_by)
    args.rank_by = provenance["rank_by"]  # the confirming run's report ranks as the search's did
    return picked, provenance


def publish(run: Path, dest: Path, force: bool) -> int:
    """--publish: the run's results as a folder to commit; the catalogue says what a full-length job is."""
    import dataclasses

    from fashion.report.publish import PublishError
    from fashion.report.publish import publish as write_publication

    full = {job.name: dataclasses.asdict(job.make_config()) for job in jobs.CATALOGUE.values()}
    try:
        settings = write_publication(run, dest, full, force=force)
    except PublishError as err:
        raise LaunchError(str(err)) from None
    state = "PARTIAL (see its README)" if settings["partial"] else "full length"
    console.print(f"published run {run.name} to {dest}/: {state}, {len(settings['models'])} models", highlight=False)
    return 0


def slurm_flags(args):
    """The SLURM flags as one typed object: the slurm package never reads the argparse namespace."""
    from slurm.options import OPTIONS
    from slurm.requests import SlurmFlags

    return SlurmFlags(cluster=args.cluster, **{o.name: getattr(args, o.name) for o in OPTIONS},
                      sbatch=tuple(args.sbatch), aggregate=not args.no_aggregate, classifier=args.classifier,
                      rank_by=args.rank_by, pack=args.pack)


def overrides_for(job: jobs.Job, args) -> dict[str, str]:
    flags = {"epochs": args.epochs, "batch_size": args.batch_size, "limit_batches": args.limit_batches,
             "precision": args.precision, "data_dir": args.data_dir,
             "download": True if args.download else None, "log_with": args.log_with}
    values = {k: str(v) for k, v in flags.items() if v is not None}
    for item in args.set:
        target, _, assignment = item.rpartition(":") if ":" in item.split("=", 1)[0] else ("", "", item)
        key, eq, value = assignment.partition("=")
        if not eq or not key:
            raise LaunchError(f"--set {item!r}: expected KEY=VALUE or JOB:KEY=VALUE")
        if target and jobs.find(target) is None:
            raise LaunchError(f"--set {item!r}: unknown job {target!r}; `python launch.py --list` shows them")
        if not target or target in (job.name, job.model):  # a model's setting applies to all its seeds
            values[key] = value
    return values


def seeds_of(args) -> list[int] | None:
    """The seeds asked for (``--seeds`` or ``--seed``), or None for the default (seed 0 alone)."""
    if args.seeds is not None and args.seed is not None:
        raise LaunchError(f"--seed {args.seed} and --seeds {args.seeds}: give one of them (--seed S is "
                          "--seeds S, and --seeds takes a count or a list of seeds)")
    if args.seed is not None:
        if args.seed < 0:
            raise LaunchError(f"--seed {args.seed}: seeds are 0 or more")
        return [args.seed]
    return jobs.parse_seeds(args.seeds) if args.seeds is not None else None


def check_rank_by(args) -> None:
    """--rank-by goes with what builds a report or picks best trials, not with a flag it would not change."""
    if args.rank_by is None:
        return
    idle = [flag for flag, given in (("--list", args.list), ("--status", args.status is not None),
                                     ("--cancel", args.cancel is not None), ("--sample", args.sample),
                                     ("--publish", args.publish is not None)) if given]
    if not idle and args.best_of is None:  # --best-of picks its trials by it, whatever else is given
        idle = [flag for flag, given in (("--no-aggregate", args.no_aggregate), ("--plan", args.plan),
                                         ("--dry-run", args.dry_run)) if given]
    if idle:
        raise LaunchError(f"--rank-by {args.rank_by} with {idle[0]}: --rank-by chooses how a report ranks (with "
                          "--aggregate, a launch that builds its report, or --best-of); drop one of them")


def checked_file(path: str | None) -> str | None:
    if path and not Path(path).is_file():
        raise LaunchError(f"--classifier {path}: no such file; give the model.pt a classify job saved")
    return str(Path(path).resolve()) if path else None


def check_outputs(outputs: Path) -> Path:
    """--outputs is a folder, or a path where one can be made: not a file, nor inside one."""
    existing = outputs
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        where = "" if existing == outputs else f" ({existing} is a file)"
        raise LaunchError(f"--outputs {outputs}: not a folder{where}; give the root of the outputs tree, an "
                          "existing folder or a new one")
    return outputs


def check_run_name(run: str) -> str:
    """The one check of a run name (--run, --status, --cancel, --aggregate): a plain folder name."""
    if not run or not run.strip() or run != run.strip() or "/" in run or "\\" in run or run.startswith(".") \
            or any(ord(c) < 32 for c in run):
        raise LaunchError(f"run name {run!r}: use a plain folder name like 'baseline' or 'sweep-1' "
                          "(no slashes, no leading dot, not empty)")
    return run


def show_plan(selected: list[jobs.Job], configs: dict, outputs: Path, args, swept=None) -> None:
    """--plan/--dry-run: what the launch into --run would train (completed jobs skipped, partial ones resumed)
    and what it costs; a sweep's trials per model."""
    from slurm.plan import estimate, print_plan

    if args.slots is not None and args.slots < 1:
        raise LaunchError(f"--slots {args.slots}: must be at least 1")
    preflight.check_pack(args.pack, args.nproc, args.gpus_per_node, args.nodes)  # as the launch would refuse
    try:
        rows = estimate(selected, configs, outputs, args.plan_device, run_dir=outputs / args.run, force=args.force)
    except ValueError as err:
        raise LaunchError(str(err)) from None
    if swept is not None:
        seeds = len({split_seed(job.name)[1] for job in selected})
        console.print("sweep: " + ", ".join(f"{model} {swept.size(model)} trial{'s' * (swept.size(model) > 1)}"
                                            for model in swept.dims) + f"; x {seeds} seed{'s' * (seeds > 1)}",
                      highlight=False)
    print_plan(rows, args.plan_device, args.slots or args.array_parallelism, console, pack=args.pack)


def run_dir(outputs: Path, run: str, must_exist: bool = False) -> Path:
    path = outputs / check_run_name(run)
    if must_exist and not path.is_dir():
        known = sorted(p.name for p in outputs.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if outputs.is_dir() else []
        raise LaunchError(f"no run {run!r} under {outputs}/; runs there: {', '.join(known) or 'none'}")
    return path


def check_other_job_settings(selected: list[jobs.Job], args) -> None:
    """A ``--set JOB:KEY=VALUE`` for a job not selected is still checked: a typo must not wait for the next run."""
    chosen = {job.name for job in selected} | {job.model for job in selected}
    for item in args.set:
        head = item.split("=", 1)[0]
        target = head.rpartition(":")[0] if ":" in head else ""
        if target and target in jobs.CATALOGUE and target not in chosen:
            jobs.get(target).make_config(overrides_for(jobs.get(target), args))


def print_catalogue(verbose: bool, seeds: list[int] | None = None, patterns: list[str] = ()) -> int:
    """The catalogue; with seeds (or job names) the selected jobs under the names they run as."""
    from jobs.catalogue import field_docs

    shown = jobs.select(list(patterns), seeds) if patterns else list(jobs.CATALOGUE.values())
    table = Table(title="job catalogue" + (f", seeds {', '.join(map(str, seeds))}" if seeds else ""))
    for col in ("job", "suite", "GPUs", "time", "description"):
        table.add_column(col)
    for job in shown:
        r = job.resources
        table.add_row(job.name, job.suite, f"{r.gpus_per_node}x{r.nodes}", f"{r.timeout_min} min", job.description)
    console.print(table)
    if verbose:
        for job in jobs.CATALOGUE.values():
            fields = Table(title=job.name, show_header=False)
            config = job.make_config()
            for name, _, doc in field_docs(job.config_class):
                fields.add_row(name, repr(getattr(config, name)), doc)
            console.print(fields)
        spaces = Table(title="sweep spaces (--sweep-space NAME): dimensions per suite and per model")
        for col in ("space", "for", "dimensions (as --sweep takes them)"):
            spaces.add_column(col)
        for name, space in sweep.SPACES.items():
            for where, dims in space.items():
                spaces.add_row(name, where, "; ".join(dims))
        console.print(spaces)
    return 0


if __name__ == "__main__":
    sys.exit(main())
