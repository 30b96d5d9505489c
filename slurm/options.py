"""The SLURM settings a job can ask for, as one table: each row is a launcher flag (``--gpus-per-node``), a
profile key and a field of every request (``gpus_per_node``), a keyword of submitit's
``SlurmExecutor.update_parameters`` of the same name, and the sbatch options it stands for.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


class SlurmError(RuntimeError):
    """A request SLURM cannot run, or no SLURM to ask; the message names the setting to fix."""


@dataclass(frozen=True)
class Option:
    """One row of the table; a new SLURM setting is one more row."""

    name: str
    type: type
    "int or str: the flag's type and the TOML type of the profile key."
    help: str
    metavar: str | None = None
    job_default: Callable | None = None
    "The catalogue job's own value, from its ``Resources``; lowered to fit a cluster instead of refused."
    sbatch: tuple[str, ...] = ()
    "The sbatch options it owns, written as the first: ``--sbatch`` is refused them (it would bypass the checks)."
    check: Callable | None = None
    "``check(value, where)`` raises SlurmError naming ``where`` when the value is invalid."

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def at_least(least: int, words: str = ""):
    """A check that a number is ``least`` or more (``words``: how the message says so)."""
    def check(value: int, where: str) -> None:
        if value < least:
            raise SlurmError(f"{where}: must be {words or f'at least {least}'}")
    return check


def mem_mb(text: str, where: str = "mem") -> int:
    """Megabytes in a SLURM memory size ("16G", "1500M", "2T"; a bare number is megabytes)."""
    match = re.fullmatch(r"(\d+)([KMGT]?)B?", str(text).strip(), re.IGNORECASE)
    if not match:
        raise SlurmError(f"{where}: not a memory size; write a whole number and a unit, like 16G or 1500M")
    number, unit = int(match[1]), match[2].upper() or "M"
    return int(number * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}[unit])


OPTIONS = (
    Option("partition", str, "where the training jobs go", sbatch=("partition", "p")),
    Option("account", str, "the allocation charged", sbatch=("account", "A")),
    Option("qos", str, "quality of service", sbatch=("qos", "q")),
    Option("time", int, "time limit per job; a job that needs longer is requeued from its checkpoint",
           metavar="MINUTES", job_default=lambda r: r.timeout_min, sbatch=("time", "t"), check=at_least(1)),
    # One task per GPU: the launcher derives the tasks, and SLURM's generic resources are GPUs here.
    Option("gpus_per_node", int, "one DDP process per GPU; 0 makes a CPU job", job_default=lambda r: r.gpus_per_node,
           sbatch=("gpus-per-node", "gres", "ntasks-per-node"), check=at_least(0, "0 (a CPU job) or more")),
    Option("nodes", int, "DDP across nodes (gpus-per-node x nodes processes)", job_default=lambda r: r.nodes,
           sbatch=("nodes", "N"), check=at_least(1)),
    Option("cpus_per_task", int, "CPUs per process (per GPU)", job_default=lambda r: r.cpus_per_task,
           sbatch=("cpus-per-task", "c"), check=at_least(1)),
    Option("mem", str, "memory per node, e.g. 32G (K/M/G/T; a bare number is MB)",
           job_default=lambda r: f"{r.mem_gb}G" if r.mem_gb else None, sbatch=("mem",), check=mem_mb),
    Option("constraint", str, "node features (sbatch --constraint syntax)", sbatch=("constraint", "C")),
    Option("exclude", str, "nodes to avoid", sbatch=("exclude", "x")),
    # Not an sbatch option of its own: submitit writes it into --array=0-N%PARALLELISM.
    Option("array_parallelism", int, "max jobs of one array running at once", check=at_least(1)),
)
