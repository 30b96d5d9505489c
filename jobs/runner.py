"""The small callable that submitit runs, locally or on SLURM. Training code never imports submitit."""
from __future__ import annotations

import multiprocessing
import os
import re
import signal
import socket
import subprocess
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

import submitit

if TYPE_CHECKING:
    from fashion.task import TrainConfig

from fashion import artifacts


class TrainJob(submitit.helpers.Checkpointable):
    """Train one catalogue job into ``job_dir``; on preemption/timeout, requeue a fresh copy of itself.

    ``checkpoint()`` only returns a DelayedSubmission of a fresh copy: no I/O in a signal handler. The
    resumed job finds the last per-epoch checkpoint in its own folder. ``config`` is the job's config
    dataclass, validated by the launcher; pickled by reference to the installed package. ``max_requeues``:
    the requeues after a time-out SLURM's submission allows (None: not on SLURM).
    """

    def __init__(self, job_name: str, config: TrainConfig, job_dir: str, max_requeues: int | None = None):
        self.job_name, self.config, self.job_dir = job_name, config, str(job_dir)
        self.max_requeues = max_requeues
        self.warned = False  # SLURM's warning signal came: submitit asked for a checkpoint

    def __call__(self) -> dict:
        import jobs

        distributed = _export_torch_distributed()
        _use_allocated_cpus()
        job = jobs.get(self.job_name)
        try:
            from fashion.runtime import prepare_process
            from fashion.training import fit

            prepare_process(self.config)
            result = fit(job.task, self.config, self.job_dir, self.job_name)
        except artifacts.JobBusy:
            raise  # the folder and its status.json belong to the process that holds the lock
        except Exception as err:
            if not distributed or os.environ.get("RANK", "0") == "0":
                artifacts.write_status(self.job_dir, "failed", error=failure(err, self),
                                       traceback=traceback.format_exc()[-4000:])
            raise
        import torch.distributed

        if distributed and torch.distributed.is_initialized():  # every rank passed fit's last barrier
            torch.distributed.destroy_process_group()  # the clean shutdown torch asks for
        return result

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        # Called by submitit on SLURM's warning, just before it requeues this job or, out of requeues, ends it
        # with an error: noting it here lets failure() tell that error from the job's own.
        self.warned = True
        return submitit.helpers.DelayedSubmission(TrainJob(self.job_name, self.config, self.job_dir,
                                                           self.max_requeues), *args, **kwargs)

    def completed(self) -> bool:
        """The job's folder says it trained all its epochs (a requeued pack skips it)."""
        status = artifacts.read_status(self.job_dir)
        return status.get("state") == "completed" and int(status.get("epoch") or 0) >= self.config.epochs


def failure(err: BaseException, job: TrainJob) -> str:
    """The error in words; the last time-out of a job that ran out of requeues says so plainly."""
    restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)  # set by SLURM in a requeued job
    if job.warned and job.max_requeues is not None and restarts >= job.max_requeues:
        done = artifacts.read_status(job.job_dir).get("epoch", 0)
        return (f"timed out {restarts + 1} times, no requeues left: the time limit is too short for this job. "
                f"Re-launch with a larger --time (or max_requeues) to resume after epoch {done}")
    return f"{type(err).__name__}: {err}"


class PackJob(submitit.helpers.Checkpointable):
    """Train several catalogue jobs at once in one allocation (``--pack N``), each in its own process,
    folder and status; a member that fails leaves the others training, and the pack fails at the end naming it.

    SLURM's warning signal (time limit, preemption) makes submitit call ``checkpoint()``: the members get
    SIGINT (each marks itself interrupted, keeping its last epoch checkpoint) and a fresh pack is requeued,
    which skips the members that completed and resumes the others.
    """

    def __init__(self, members: list[TrainJob], stop_s: float = 10.0):
        # stop_s: how long members get to mark themselves when stopped; under SLURM well inside the time
        # between the warning signal and the kill, or the requeue would never happen.
        self.members, self.stop_s = list(members), stop_s
        self._running: dict[str, multiprocessing.Process] = {}

    def __getstate__(self) -> dict:
        return {"members": self.members, "stop_s": self.stop_s}  # never the processes: a requeued pack starts its own

    def __setstate__(self, state: dict) -> None:
        self.members, self.stop_s, self._running = state["members"], state["stop_s"], {}

    def __call__(self) -> dict[str, str]:
        todo = [m for m in self.members if not m.completed()]
        for m in self.members:
            if m not in todo:
                print(f"{m.job_name}: already completed, skipped", flush=True)
        threads = max(1, _allocated_cpus() // max(1, len(todo)))
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no CUDA or torch state shared
        for member in todo:
            process = context.Process(target=_run_member, args=(member, threads), name=member.job_name)
            process.start()
            self._running[member.job_name] = process
        try:
            for process in self._running.values():
                process.join()
        except KeyboardInterrupt:  # --local stopped: the members mark themselves interrupted
            self.stop()
            raise
        states = {m.job_name: artifacts.read_status(m.job_dir).get("state", "?") for m in self.members}
        failed = [f"{name} ({states[name]}, exit code {p.exitcode})" for name, p in self._running.items()
                  if p.exitcode != 0 or states[name] != "completed"]
        if failed:
            raise RuntimeError(f"pack members did not complete: {', '.join(failed)}; each one's status.json "
                               "says why; the other members completed")
        return states

    def stop(self) -> None:
        """SIGINT to every member still training, and wait (at most ``stop_s``) for them to mark themselves."""
        live = [p for p in self._running.values() if p.is_alive()]
        for process in live:
            os.kill(process.pid, signal.SIGINT)
        deadline = time.monotonic() + self.stop_s
        for process in live:
            process.join(max(0.0, deadline - time.monotonic()))

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        # Stopping the members is the one piece of work here: SLURM would otherwise kill them mid-epoch
        # without their status saying so. The requeued copy holds the member specs only.
        self.stop()
        return super().checkpoint(*args, **kwargs)


def _run_member(member: TrainJob, threads: int) -> None:
    """One pack member, in its own process: its share of the allocation's CPUs, then the job itself."""
    # SLURM signals every process of the job: the pack answers USR2 (requeue) and stops its members with
    # SIGINT; a member handles TERM as a job run by submitit does, by ignoring it (SLURM's KILL follows).
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if "SLURM_CPUS_PER_TASK" in os.environ:
        os.environ["SLURM_CPUS_PER_TASK"] = str(threads)  # read by TrainJob (torch threads)
    else:
        import torch

        torch.set_num_threads(threads)
    member()


def _slurm_cpus() -> int | None:
    """The CPUs SLURM gave this task, if it said."""
    cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return int(cpus) if cpus.isdigit() and int(cpus) > 0 else None


def _allocated_cpus() -> int:
    return _slurm_cpus() or os.cpu_count() or 1


class AggregateJob(submitit.helpers.Checkpointable):
    """Build the run's report (``fashion.report.aggregate``); submitted to start after every training job."""

    def __init__(self, run_dir: str, options=None):
        from fashion.report.aggregate import ReportOptions

        self.run_dir, self.options = str(run_dir), options or ReportOptions()

    def __call__(self) -> int:
        import dataclasses

        from fashion.report import aggregate  # imported here: the launcher must not need the report's deps

        code = aggregate(Path(self.run_dir), **dataclasses.asdict(self.options))
        if code:
            raise RuntimeError(f"the report of {self.run_dir} failed (exit code {code}); its log says why")
        return code


def _export_torch_distributed() -> bool:
    """Under submitit with several tasks, export RANK/WORLD_SIZE/MASTER_ADDR... for accelerate."""
    try:
        env = submitit.JobEnvironment()
    except RuntimeError:  # not started by submitit (in-process dry run, tests)
        return False
    if env.num_tasks <= 1:
        return False
    # Keep every GPU visible: accelerate selects cuda:LOCAL_RANK itself.
    dist = submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    os.environ["MASTER_ADDR"] = rendezvous_address(dist.master_addr)
    return True


def rendezvous_address(node: str) -> str:
    """``node`` (the first node's SLURM name, which submitit makes MASTER_ADDR) if it resolves, else the
    address SLURM itself reaches that node at (its NodeAddr): node names need not be host names, and
    torch.distributed retries an unresolvable name forever."""
    try:
        socket.getaddrinfo(node, None)
        return node
    except OSError:
        pass
    try:
        out = subprocess.run(["scontrol", "-o", "show", "node", node], capture_output=True, text=True,
                             timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise RuntimeError(f"the first node's name {node!r} does not resolve and scontrol cannot say its "
                           f"address ({err})") from None
    match = re.search(r"\bNodeAddr=(\S+)", out)
    if not match:
        raise RuntimeError(f"the first node's name {node!r} does not resolve and `scontrol show node` gives "
                           "no NodeAddr")
    return match[1]


def _use_allocated_cpus() -> None:
    """One intra-op thread per CPU SLURM gave this task. Without it torch starts a thread per core of the
    node, and several jobs (or DDP ranks) sharing a node oversubscribe it many times over."""
    cpus = _slurm_cpus()
    if cpus:
        import torch

        torch.set_num_threads(cpus)
        # accelerate resets the threads of CPU DDP ranks to cores / ranks on this node unless this is set
        os.environ.setdefault("OMP_NUM_THREADS", str(cpus))

