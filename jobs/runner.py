"""The small callable that submitit runs, locally or on SLURM. Training code never imports submitit."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import traceback
from pathlib import Path

import submitit

from fashion import artifacts


class TrainJob(submitit.helpers.Checkpointable):
    """Train one catalogue job into ``job_dir``; on preemption/timeout, requeue a fresh copy of itself.

    ``checkpoint()`` (inherited) only returns a DelayedSubmission of this object: no I/O in a signal
    handler. The resumed job finds the last per-epoch checkpoint in its own folder.
    """

    def __init__(self, job_name: str, config: dict, job_dir: str):
        self.job_name, self.config, self.job_dir = job_name, config, str(job_dir)

    def __call__(self) -> dict:
        import jobs

        distributed = _export_torch_distributed()
        _use_allocated_cpus()
        job = jobs.get(self.job_name)
        config = job.make_config(self.config)
        try:
            from fashion.training import fit

            return fit(job.task, config, self.job_dir, self.job_name)
        except artifacts.JobBusy:
            raise  # the folder and its status.json belong to the process that holds the lock
        except Exception as err:
            if not distributed or os.environ.get("RANK", "0") == "0":
                artifacts.write_status(self.job_dir, "failed", error=failure(err, self.job_dir),
                                       traceback=traceback.format_exc()[-4000:])
            raise


def failure(err: BaseException, job_dir) -> str:
    """The error in words; the last time-out of a job that ran out of requeues says so plainly."""
    if isinstance(err, submitit.core.utils.UncompletedJobError) and "timed-out too many times" in str(err):
        times = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) + 1
        done = artifacts.read_status(job_dir).get("epoch", 0)
        return (f"timed out {times} times, no requeues left: the time limit is too short for this job. "
                f"Re-launch with a larger --time (or max_requeues) to resume after epoch {done}")
    return f"{type(err).__name__}: {err}"


class AggregateJob(submitit.helpers.Checkpointable):
    """Build the run's report (``fashion.report.aggregate``); submitted to start after every training job."""

    def __init__(self, run_dir: str, options: dict | None = None):
        self.run_dir, self.options = str(run_dir), dict(options or {})

    def __call__(self) -> int:
        from fashion.report import aggregate  # imported here: the launcher must not need the report's deps

        code = aggregate(Path(self.run_dir), **self.options)
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
    cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if cpus.isdigit() and int(cpus) > 0:
        import torch

        torch.set_num_threads(int(cpus))
        # accelerate resets the threads of CPU DDP ranks to cores / ranks on this node unless this is set
        os.environ.setdefault("OMP_NUM_THREADS", cpus)

