"""What a job asks SLURM for: three layers, each overriding the one before: the job's own defaults
(``Job.resources`` in the catalogue), the ``--cluster`` profile (``slurm/profiles/NAME.toml``), the flags.
"""
from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"

PROFILE_KEYS = {
    "partition": str, "cpu_partition": str, "account": str, "qos": str, "time": int, "gpus_per_node": int,
    "nodes": int, "cpus_per_task": int, "mem": str, "constraint": str, "exclude": str,
    "array_parallelism": int, "max_requeues": int, "python": str, "setup": list, "sbatch": dict, "report": dict,
}
# Launcher flag (argparse dest) -> the profile key it overrides.
FLAG_KEYS = ("partition", "account", "qos", "time", "gpus_per_node", "nodes", "cpus_per_task", "mem",
             "constraint", "exclude", "array_parallelism")
# sbatch options that have their own flag: taking them through --sbatch would bypass the checks.
OWN_FLAG = {"partition", "account", "qos", "time", "t", "gpus-per-node", "gres", "nodes", "N", "cpus-per-task",
            "c", "mem", "constraint", "C", "exclude", "x", "array", "ntasks-per-node", "dependency", "signal"}
REPORT_RESOURCES = {"cpus_per_task": 2, "time": 60}


class SlurmError(RuntimeError):
    """A request SLURM cannot run, or no SLURM to ask; the message names the setting to fix."""



@dataclass(frozen=True)
class Request:
    """Everything sbatch is asked for one job; jobs with equal requests are submitted as one array."""

    partition: str | None
    account: str | None
    qos: str | None
    time: int
    gpus_per_node: int
    nodes: int
    cpus_per_task: int
    mem: str | None
    constraint: str | None
    exclude: str | None
    array_parallelism: int | None = None
    max_requeues: int = 3
    python: str | None = None
    setup: tuple[str, ...] = ()
    sbatch: tuple[tuple[str, str], ...] = ()
    # Where each value came from ("--partition", "local.toml", "gan/gan's default"): names the fix in errors.
    origin: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    # Settings still at the job's own default: lowered to fit the cluster instead of refused.
    defaults: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def tasks_per_node(self) -> int:
        """One process per GPU (DDP); one process for a CPU job."""
        return max(1, self.gpus_per_node)

    @property
    def world_size(self) -> int:
        return self.tasks_per_node * self.nodes

    def where(self, key: str) -> str:
        return dict(self.origin).get(key, key)

    def executor_parameters(self) -> dict:
        """The parameters of ``submitit.SlurmExecutor.update_parameters`` for this request."""
        params = dict(time=self.time, nodes=self.nodes, ntasks_per_node=self.tasks_per_node,
                      cpus_per_task=self.cpus_per_task, signal_delay_s=signal_delay_s(self.time),
                      setup=list(self.setup),
                      additional_parameters=dict(self.sbatch))
        if self.gpus_per_node:
            params["gpus_per_node"] = self.gpus_per_node
        if self.array_parallelism:
            params["array_parallelism"] = self.array_parallelism
        optional = dict(partition=self.partition, account=self.account, qos=self.qos, mem=self.mem,
                        constraint=self.constraint, exclude=self.exclude)
        params.update({k: v for k, v in optional.items() if v})
        return params

    def sbatch_options(self) -> list[str]:
        """The request as sbatch command-line options, as submitit writes them into the job script."""
        params = self.executor_parameters()
        options = [f"--{key.replace('_', '-')}={params[key]}" for key in
                   ("partition", "account", "qos", "time", "nodes", "ntasks_per_node", "cpus_per_task",
                    "gpus_per_node", "mem", "constraint", "exclude") if key in params]
        options += [f"--{key}" if value is True else f"--{key}={value}" for key, value in self.sbatch]
        return options

    def summary(self) -> dict:
        """The request as plain data, for slurm.json and the launch table."""
        return {k: v for k, v in dataclasses.asdict(self).items()
                if k not in ("origin", "defaults") and v not in (None, (), "")}


def signal_delay_s(time_min: int) -> int:
    """Seconds before the time limit at which SLURM warns the job (SIGUSR2): long enough for submitit to
    requeue it, and well inside the limit (submitit's default 90 s would fire before a 1-minute job started)."""
    return max(10, min(90, int(0.2 * time_min * 60)))


def load_profile(name: str | None) -> tuple[dict, str]:
    """The settings of ``slurm/profiles/NAME.toml`` (or of a path to a .toml file) and a label for messages."""
    if not name:
        return {}, ""
    path = Path(name) if name.endswith(".toml") else PROFILES_DIR / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))
        raise SlurmError(f"--cluster {name}: no profile {path}; profiles: {', '.join(known) or 'none'} "
                         f"(copy slurm/profiles/example.toml to add one)")
    try:
        profile = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise SlurmError(f"{path}: not valid TOML ({err})") from None
    for key, value in profile.items():
        if key not in PROFILE_KEYS:
            raise SlurmError(f"{path}: unknown key {key!r}; valid keys: {', '.join(PROFILE_KEYS)} "
                             "(slurm/profiles/example.toml documents them)")
        kind = PROFILE_KEYS[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise SlurmError(f"{path}: {key} = {value!r} should be a TOML {kind.__name__}")
    if not all(isinstance(line, str) for line in profile.get("setup", [])):
        raise SlurmError(f"{path}: setup must be a list of shell lines (strings)")
    return profile, path.name


@dataclass(frozen=True)
class SlurmFlags:
    """The launcher's SLURM flags, typed once: a value left None takes the profile's or the job's."""

    cluster: str | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: int | None = None
    gpus_per_node: int | None = None
    nodes: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    constraint: str | None = None
    exclude: str | None = None
    array_parallelism: int | None = None
    sbatch: tuple[str, ...] = ()
    "``--sbatch KEY=VALUE`` items."
    aggregate: bool = True
    "Submit the report job after the training jobs."
    classifier: str | None = None
    "A classify/cnn model.pt the report measures with."
    pack: int = 1
    "Catalogue jobs trained concurrently in one SLURM job (``--pack N``)."


def flag_values(flags: SlurmFlags) -> dict:
    """The resource flags the user actually gave (the others are None)."""
    return {k: getattr(flags, k) for k in FLAG_KEYS if getattr(flags, k) is not None}


def sbatch_extras(profile: dict, items: list[str]) -> dict[str, str]:
    """The profile's [sbatch] table updated by ``--sbatch KEY=VALUE`` items (KEY alone: a bare flag)."""
    extras = {str(k).lstrip("-"): v for k, v in profile.get("sbatch", {}).items()}
    for item in items:
        key, eq, value = item.partition("=")
        extras[key.strip().lstrip("-")] = value if eq else True
    for key in extras:
        if not key:
            raise SlurmError("--sbatch: expected KEY=VALUE, e.g. --sbatch mail-type=END")
        if key in OWN_FLAG:
            flag = {"t": "time", "N": "nodes", "c": "cpus-per-task", "C": "constraint", "x": "exclude",
                    "gres": "gpus-per-node"}.get(key, key)
            raise SlurmError(f"--sbatch {key}=...: use the launcher's own flag --{flag} (it is checked and "
                             "decides arrays, tasks and the report dependency)")
    return extras


def resolve(job, profile: dict, profile_name: str, flags: dict, extras: dict) -> Request:
    """Job defaults, overridden by the profile, overridden by the flags."""
    r = job.resources
    values = {"time": r.timeout_min, "gpus_per_node": r.gpus_per_node, "nodes": r.nodes,
              "cpus_per_task": r.cpus_per_task, "mem": f"{r.mem_gb}G" if r.mem_gb else None}
    origin = {k: f"{job.name}'s default {k}={v}" for k, v in values.items()}
    defaults = set(values)
    for key, value in [*((k, v) for k, v in profile.items() if k in FLAG_KEYS), *flags.items()]:
        values[key] = value
        origin[key] = f"--{key.replace('_', '-')} {value}" if key in flags else f"{key} = {value!r} in {profile_name}"
        defaults.discard(key)
    if values["gpus_per_node"] == 0 and "partition" not in flags and "cpu_partition" in profile:
        values["partition"] = profile["cpu_partition"]
        origin["partition"] = f"cpu_partition = {profile['cpu_partition']!r} in {profile_name}"
    for key in ("time", "nodes", "cpus_per_task"):
        if values[key] < 1:
            raise SlurmError(f"{origin[key]}: must be at least 1")
    if values["gpus_per_node"] < 0:
        raise SlurmError(f"{origin['gpus_per_node']}: must be 0 (a CPU job) or more")
    if values.get("array_parallelism") is not None and values["array_parallelism"] < 1:
        raise SlurmError(f"{origin['array_parallelism']}: must be at least 1")
    if values.get("mem"):
        mem_mb(values["mem"], origin["mem"])
    return Request(partition=values.get("partition"), account=values.get("account"), qos=values.get("qos"),
                   time=values["time"], gpus_per_node=values["gpus_per_node"], nodes=values["nodes"],
                   cpus_per_task=values["cpus_per_task"], mem=values.get("mem"),
                   constraint=values.get("constraint"), exclude=values.get("exclude"),
                   array_parallelism=values.get("array_parallelism"),
                   max_requeues=profile.get("max_requeues", 3), python=profile.get("python"),
                   setup=tuple(profile.get("setup", ())), sbatch=tuple(sorted(extras.items())),
                   origin=tuple(origin.items()), defaults=frozenset(defaults))


def mem_mb(text: str, where: str = "mem") -> int:
    """Megabytes in a SLURM memory size ("16G", "1500M", "2T"; a bare number is megabytes)."""
    match = re.fullmatch(r"(\d+)([KMGT]?)B?", str(text).strip(), re.IGNORECASE)
    if not match:
        raise SlurmError(f"{where}: not a memory size; write a whole number and a unit, like 16G or 1500M")
    number, unit = int(match[1]), match[2].upper() or "M"
    return int(number * {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}[unit])


def parse_minutes(text: str) -> int | None:
    """SLURM durations ("UNLIMITED", "30", "2:00:00", "1-12:00:00") in minutes; None when unlimited."""
    if text.upper() in ("UNLIMITED", "INFINITE", "NONE", ""):
        return None
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if days:  # days-hours[:minutes[:seconds]]
        parts += [0] * (3 - len(parts))
        hours, minutes, seconds = parts
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    else:  # minutes[:seconds]
        hours, (minutes, seconds) = 0, (parts + [0])[:2]
    return int(days or 0) * 1440 + hours * 60 + minutes + (seconds > 0)




def packed(request: Request, members: int) -> Request:
    """The request of a pack of ``members`` jobs sharing one allocation: their CPUs and memory together
    (lowered to what a node has, with a note), the same GPU and the same time limit: the members train
    concurrently, so the pack takes as long as its slowest member, slowed by sharing the GPU and memory
    bandwidth; a pack that runs out of time is requeued and resumes like any job."""
    if members <= 1:
        return request
    origin = dict(request.origin)
    origin["cpus_per_task"] = f"--pack {members} x {request.where('cpus_per_task')}"
    mem = None
    if request.mem:
        mem = f"{mem_mb(request.mem) * members}M"
        origin["mem"] = f"--pack {members} x {request.where('mem')}"
    return dataclasses.replace(request, cpus_per_task=request.cpus_per_task * members, mem=mem,
                               origin=tuple(origin.items()),
                               defaults=request.defaults | {"cpus_per_task", "mem"})


def report_request(first: Request, profile: dict) -> Request:
    """The report job: CPU only, on the profile's CPU partition, else the training partition with no GPU."""
    origin = dict(first.origin)
    partition = profile.get("cpu_partition", first.partition)
    if "cpu_partition" in profile:
        origin["partition"] = f"cpu_partition = {partition!r}"
    return dataclasses.replace(first, partition=partition, gpus_per_node=0, nodes=1, mem=None,
                               constraint=None, array_parallelism=None, origin=tuple(origin.items()),
                               defaults=frozenset({"cpus_per_task", "time"}), **REPORT_RESOURCES)
