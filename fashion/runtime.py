"""Where a job runs: its accelerator (device, DDP, mixed precision), the process-wide settings a job's own
process takes, and what the run folder records about the machine.

Nothing here changes the process behind the caller's back: :func:`make_accelerator` only builds the
accelerator, and :func:`prepare_process` (called by the job's entry point, jobs/runner.py, the dry run
and the benchmark) is the one place that sets process-wide state.
"""
from __future__ import annotations

import ctypes
import os
import platform
import socket
import subprocess
import warnings
from pathlib import Path

import torch

from fashion.task import ConfigError, TrainConfig


def resolve_precision(precision: str, cuda: bool, auto: str = "bf16", bf16_supported: bool | None = None) -> str:
    """accelerate's mixed_precision for a config's ``precision``; ``auto`` is the task family's default."""
    if precision == "auto":
        if bf16_supported is None:
            bf16_supported = cuda and torch.cuda.is_bf16_supported()
        return auto if auto == "bf16" and cuda and bf16_supported else "no"
    if precision == "fp16" and not cuda:
        raise ConfigError("precision=fp16 needs a GPU (on a CPU it would silently run fp32); use bf16 or no")
    return precision


def uses_cuda(config: TrainConfig) -> bool:
    return torch.cuda.is_available() and not config.cpu


def make_accelerator(config: TrainConfig, auto_precision: str = "bf16", project_dir=None):
    """The job's accelerate ``Accelerator``: CPU or GPU, DDP when launched with several processes, mixed
    precision from the config, trackers (``log_with``) when a job folder is given."""
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    cuda = uses_cuda(config)
    # broadcast_buffers=False: GANs run D twice before one backward; re-broadcasting BatchNorm buffers
    # between those forwards breaks autograd on CUDA. Every rank still trains identical weights.
    ddp = DistributedDataParallelKwargs(broadcast_buffers=False)
    trackers = config.trackers() if project_dir is not None else []
    return Accelerator(cpu=not cuda, mixed_precision=resolve_precision(config.precision, cuda, auto_precision),
                       kwargs_handlers=[ddp], log_with=trackers or None,
                       project_dir=str(project_dir) if trackers else None)


def prepare_process(config: TrainConfig) -> None:
    """What a job's process sets for itself before training: the fast path's allocator on the CPU, and the
    silence of two warnings about choices made on purpose."""
    if config.fast and not uses_cuda(config):
        keep_freed_memory()
    # torch suggests forward_sync_buffers, which accelerate's kwargs cannot pass yet; the behaviour we want
    # (no per-forward buffer broadcast) is what broadcast_buffers=False gives.
    warnings.filterwarnings("ignore", message="`broadcast_buffers` is deprecated")
    # GlobalBatchNorm's collectives (fashion/batchnorm.py): the suggested successor is a private module.
    warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_", category=FutureWarning)


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed blocks of up to 32 MiB in the heap for the whole process; False where
    the C library is not glibc.

    A training step frees and reallocates the same gradient and activation buffers (the largest GAN layer's
    gradient is 25 MiB). By default glibc serves such blocks with mmap and hands them back to the kernel on
    free, so every step pays for munmap and for the kernel zeroing fresh pages: on a 2-core machine
    (docs/performance.md), keeping them made gan/gan's CPU step 15% faster. The cost is that the process keeps
    its peak heap.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))


def git_sha(folder: Path = Path(__file__).parent) -> str:
    """The code's commit (``3034738``), ``-dirty`` when tracked files differ from it; empty outside a checkout."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty", "--exclude=*", "--abbrev=7"],
                              capture_output=True, text=True, cwd=folder, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def environment(acc) -> dict:
    """Where the job runs, for config.json, status.json and metrics.json."""
    env = {"world_size": acc.num_processes, "device": str(acc.device.type), "precision": acc.mixed_precision,
           "threads": torch.get_num_threads(), "host": socket.gethostname(),
           "slurm_job_id": os.environ.get("SLURM_JOB_ID", "")}
    if acc.device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(acc.device)
    return env
