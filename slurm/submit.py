"""Submitting a run to SLURM through submitit: one SLURM job per experiment (or per pack of experiments,
``--pack N``), one job array per set of jobs asking for identical resources, then the report job, which
starts when they have all ended. Everything is checked first (``slurm.checks``), so a bad request is an
error naming the setting to fix, not a traceback and not half a run.
"""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from fashion import artifacts, runfolder
from slurm.checks import Cluster, check_report_options, explain_rejection, sbatch_test_only, slurm_command
from slurm.queue import SLURM_FILE, cancel, earlier_active, hold_pending, refuse_active
from slurm.requests import (Request, SlurmError, SlurmFlags, flag_values, load_profile, packed, report_request,
                            resolve, sbatch_extras, signal_delay_s)

if TYPE_CHECKING:
    from fashion.report import ReportOptions


def launch(todo, configs: dict, run_dir: Path, flags: SlurmFlags, console, skipped: dict | None = None,
           before_submit=None) -> int:
    """Check, then submit every job (arrays where resources match) and the report job. ``skipped``: jobs
    the launcher set aside, with why (recorded in slurm.json); ``before_submit``: called once every check
    has passed, just before the first sbatch (--force moves old results aside there, never earlier)."""
    profile, profile_name = load_profile(flags.cluster)
    extras = sbatch_extras(profile, list(flags.sbatch))
    given = flag_values(flags)

    requests = {job.name: resolve(job, profile, profile_name, given, extras) for job in todo}
    cluster = Cluster.query()
    notes: dict[str, list[str]] = {}
    for job in todo:
        requests[job.name], job_notes = cluster.fit(requests[job.name])
        for note in job_notes:
            notes.setdefault(note, []).append(job.name)
        world, batch = requests[job.name].world_size, configs[job.name].batch_size
        if batch % world:
            raise SlurmError(f"{job.name}: batch_size {batch} is global and must split evenly over its {world} "
                             f"processes (GPUs x nodes); use --batch-size {-(-batch // world) * world}")
    by_request: dict[Request, list] = {}
    for job in todo:
        by_request.setdefault(requests[job.name], []).append(job)
    groups: dict[Request, list[list]] = {}
    for request, members in by_request.items():
        for unit, unit_request in units(request, members, flags.pack):
            unit_request, unit_notes = cluster.fit(unit_request)
            for note in unit_notes:
                notes.setdefault(note, []).extend(job.name for job in unit)
            groups.setdefault(unit_request, []).append(unit)
    for note, names in notes.items():
        console.print(f"[dim]{note} ({_names(list(dict.fromkeys(names)))})[/]", highlight=False)
    arrays = split_arrays(groups, cluster.max_array_size)
    if len(arrays) > len(groups):
        console.print(f"[dim]arrays of more than {cluster.max_array_size} jobs split in {len(arrays)} arrays "
                      f"(the cluster's MaxArraySize)[/]", highlight=False)

    run_name = run_dir.name
    for request, group in arrays:
        sbatch_test_only(request, f"fashion-{run_name}", len(group), group_words(group))
    report = None
    report_options = None
    if flags.aggregate:
        report, _ = cluster.fit(report_request(arrays[0][0], profile))
        sbatch_test_only(report, f"fashion-{run_name}-report", 1, "the report job")
        report_options = check_report_options(profile.get("report", {}), profile_name)
        if flags.classifier:  # the launcher's --classifier: the report measures with that model
            report_options = dataclasses.replace(report_options, classifier=flags.classifier)
        if flags.rank_by:  # the launcher's --rank-by: the checkpoint the report ranks by
            report_options = dataclasses.replace(report_options, rank_by=flags.rank_by)
    refuse_active(todo, run_dir)
    if before_submit is not None:
        before_submit()

    submission = submit(arrays, report, configs, run_dir, profile_name, skipped or {}, report_options)
    print_submission(console, submission, run_dir)
    return 0


def units(request: Request, members: list, pack: int) -> list[tuple[list, Request]]:
    """The SLURM jobs that train ``members`` (which share ``request``): one each, or with ``--pack N`` up
    to N at once in one allocation, each pack asking for the CPUs and memory of its members together."""
    if pack <= 1:
        return [([job], request) for job in members]
    if request.gpus_per_node > 1 or request.nodes > 1:
        raise SlurmError(f"--pack {pack}: {members[0].name} asks for {request.gpus_per_node} GPUs x "
                         f"{request.nodes} nodes; only jobs of one node and at most one GPU share an allocation "
                         "(drop --pack, or ask for --gpus-per-node 1 --nodes 1)")
    chunks = [members[i:i + pack] for i in range(0, len(members), pack)]
    return [(chunk, packed(request, len(chunk))) for chunk in chunks]


def _names(names: list[str], most: int = 3) -> str:
    return ", ".join(names) if len(names) <= most else f"{', '.join(names[:most])}, ... {len(names)} jobs"


def group_words(group: list[list]) -> str:
    """A group of SLURM jobs (each a list of the catalogue jobs it trains) in words, for error messages."""
    names = [j.name for unit in group for j in unit]
    if len(group) == 1:
        return names[0] if len(names) == 1 else f"the pack of {', '.join(names)}"
    return f"the array of {len(group)} jobs ({names[0]}, ...)"


def split_arrays(groups: dict[Request, list], most: int | None) -> list[tuple[Request, list]]:
    """Each group of SLURM jobs with one request as arrays of at most ``most`` (the cluster's MaxArraySize)."""
    size = most or max((len(g) for g in groups.values()), default=1)
    return [(request, group[i:i + size]) for request, group in groups.items() for i in range(0, len(group), size)]


def submit(arrays: list[tuple[Request, list]], report: Request | None, configs: dict, run_dir: Path,
           profile_name: str, skipped: dict, report_options: ReportOptions | None = None) -> dict:
    """Submit the groups held, record ids and log paths, then release them. A run has one report, built
    after all of its jobs: the new report job waits for these and for every job of the run still active,
    and replaces the run's pending report job (two reports would write report/ at once)."""
    import submitit

    from jobs.runner import AggregateJob

    run_dir = run_dir.resolve()
    created = not run_dir.exists()
    folder = run_dir / runfolder.SUBMITIT_DIR / "%j"
    job_name = f"fashion-{run_dir.name}"
    handles: dict[str, object] = {}
    submitted_ids: list[str] = []
    record = {"submitted": time.strftime("%Y-%m-%dT%H:%M:%S"), "argv": sys.argv[1:], "cluster": profile_name,
              "skipped": skipped, "groups": [], "report": None}
    earlier, replaced = [], []
    if report is not None:
        earlier, reports = earlier_active(run_dir)
        # Held, not cancelled, until the new report is in: a failed submission gives them back untouched.
        replaced = hold_pending([i for i, state in reports.items() if state == "PENDING"])
        earlier += [i for i in reports if i not in replaced]  # a report already running finishes first
    try:
        for request, group in arrays:
            executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=request.max_requeues,
                                              python=request.python)
            params = request.executor_parameters()
            # Held until every status.json names its SLURM id: a job must never start before its record.
            params["additional_parameters"]["hold"] = True
            executor.update_parameters(job_name=job_name, **params)
            try:
                with executor.batch():
                    submitted = [(unit, executor.submit(slurm_job(unit, configs, run_dir, request)))
                                 for unit in group]
            # A refused sbatch is submitit's FailedJobError or FailedSubmissionError, which it does not export:
            # RuntimeError is their public base.
            except (subprocess.SubprocessError, RuntimeError) as err:
                raise explain_rejection(str(err), request, group_words(group)) from None
            members = {job.name: handle for unit, handle in submitted for job in unit}
            handles.update(members)
            masters = sorted({h.job_id.split("_")[0] for _, h in submitted})
            submitted_ids += masters
            entry = {"slurm_id": masters[0], "array": len(group) > 1,
                     "jobs": {n: h.job_id for n, h in members.items()}, "request": request.summary()}
            if any(len(unit) > 1 for unit in group):
                entry["packs"] = {h.job_id: [job.name for job in unit] for unit, h in submitted}
            record["groups"].append(entry)
        if report is not None:
            dependency = "afterany:" + ":".join([*earlier, *submitted_ids])
            executor = submitit.SlurmExecutor(folder=folder, python=report.python)
            executor.update_parameters(job_name=f"{job_name}-report", dependency=dependency,
                                       **report.executor_parameters())
            try:
                handle = executor.submit(AggregateJob(str(run_dir), report_options))
            except (subprocess.SubprocessError, RuntimeError) as err:  # as above
                raise explain_rejection(str(err), report, "the report job") from None
            submitted_ids.append(handle.job_id)
            record["report"] = {"slurm_id": handle.job_id, "dependency": dependency, "earlier": earlier,
                                "replaces": replaced,
                                "partition": report.partition, "cpus_per_task": report.cpus_per_task,
                                "time": report.time,
                                "log_out": str(handle.paths.stdout), "log_err": str(handle.paths.stderr)}
    except BaseException:
        cancel(submitted_ids)
        if replaced:
            subprocess.run(["scontrol", "release", ",".join(replaced)], capture_output=True, timeout=60, check=False)
        if created:  # a refused submission leaves no half-made run behind (submitit wrote its scripts there)
            shutil.rmtree(run_dir, ignore_errors=True)
        raise

    now = time.time()
    for name, handle in handles.items():
        # Replaced, not merged: a re-launched job must not carry the traceback of its last failure.
        artifacts.write_json(runfolder.job_dir(run_dir, name) / artifacts.STATUS_FILE, {
            "state": "queued", "job": name, "epoch": 0, "epochs": configs[name].epochs,
            "slurm_id": handle.job_id, "log_out": str(handle.paths.stdout),
            "log_err": str(handle.paths.stderr), "submitted": now, "updated": now})
    history = artifacts.read_json(run_dir / SLURM_FILE, {}) or {}
    history.setdefault("submissions", []).append(record)
    artifacts.write_json(run_dir / SLURM_FILE, history)
    cancel(replaced)
    held = [g["slurm_id"] for g in record["groups"]]
    try:
        slurm_command("scontrol", "release", ",".join(held))
    except SlurmError as err:
        raise SlurmError(f"submitted {', '.join(held)} on hold but could not release them ({err}); "
                         f"run `scontrol release {','.join(held)}`, or python launch.py --cancel {run_dir.name}") from None
    return record


def slurm_job(unit: list, configs: dict, run_dir: Path, request: Request):
    """What one SLURM job runs: a catalogue job, or a pack of them trained side by side."""
    from jobs.runner import PackJob, TrainJob

    members = [TrainJob(job.name, configs[job.name], str(runfolder.job_dir(run_dir, job.name)), request.max_requeues)
               for job in unit]
    # A third of the warning time for the members to stop: the rest is submitit's requeue.
    return members[0] if len(members) == 1 else PackJob(members, stop_s=signal_delay_s(request.time) / 3)


def print_submission(console, record: dict, run_dir: Path) -> None:
    from rich.table import Table

    table = Table(title=f"run {run_dir.name}: submitted to SLURM")
    table.add_column("SLURM id", no_wrap=True)
    table.add_column("jobs")
    table.add_column("each asks for")
    for group in record["groups"]:
        r = group["request"]
        kind = f"{group['slurm_id']} (array)" if group["array"] else group["slurm_id"]
        mem = f", {r['mem']}" if r.get("mem") else ""
        names = _names(list(group["jobs"]))
        if group.get("packs"):
            names = f"{len(group['packs'])} pack(s) of {max(len(m) for m in group['packs'].values())}: {names}"
        table.add_row(kind, names, f"{r.get('partition')}: {r['gpus_per_node']} GPU x "
                      f"{r['nodes']} node, {r['cpus_per_task']} CPU/task{mem}, {r['time']} min")
    if record["report"]:
        r = record["report"]
        also = f" and {len(r['earlier'])} earlier one(s) of the run" if r.get("earlier") else ""
        replaces = f" (replaces {', '.join(r['replaces'])})" if r.get("replaces") else ""
        table.add_row(r["slurm_id"], f"the report, after all of them{also}{replaces}",
                      f"{r['partition']}: no GPU, {r['cpus_per_task']} CPU, {r['time']} min")
    console.print(table)
    console.print(f"follow it: python launch.py --status {run_dir.name}    "
                  f"cancel it: python launch.py --cancel {run_dir.name}", highlight=False)
