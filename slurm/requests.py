"""What a job asks SLURM for: three layers, each overriding the one before: the job's own defaults
(``Job.resources`` in the catalogue), the ``--cluster`` profile (``slurm/profiles/NAME.toml``), the flags.
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from slurm.options import OPTIONS, SlurmError, mem_mb

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"

OPTION = {option.name: option for option in OPTIONS}
OWNER = {name: option for option in OPTIONS for name in option.sbatch}
# A profile's keys: every option, and the settings that only a profile gives.
PROFILE_KEYS = {**{option.name: option.type for option in OPTIONS}, "cpu_partition": str, "max_requeues": int,
                "python": str, "setup": list, "sbatch": dict, "report": dict}
# sbatch options the launcher writes itself, with why: no --sbatch may set them either.
LAUNCHER_SETS = {"array": "jobs asking for the same resources become one array; --array-parallelism limits it",
                 "dependency": "the report job starts after the training jobs",
                 "signal": "the warning before the time limit that requeues a job"}
REPORT_RESOURCES = {"cpus_per_task": 2, "time": 60}


def with_options(base: type, doc: str) -> type:
    """``base`` with one more field per row of the option table, named as the row; None: not asked."""
    fields = [(option.name, option.type | None, None) for option in OPTIONS]
    return dataclasses.make_dataclass(base.__name__.lstrip("_"), fields, bases=(base,), frozen=True,
                                      namespace={"__module__": __name__, "__doc__": doc})


@dataclass(frozen=True)
class _Request:
    max_requeues: int = 3
    python: str | None = None
    setup: tuple[str, ...] = ()
    sbatch: tuple[tuple[str, str], ...] = ()
    # Where each value came from ("--partition", "local.toml", "gan/gan's default"): names the fix in errors.
    origin: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    # Settings still at the job's own default: lowered to fit the cluster instead of refused.
    lowerable: frozenset[str] = field(default=frozenset(), compare=False)

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
        params = dict(ntasks_per_node=self.tasks_per_node, signal_delay_s=signal_delay_s(self.time),
                      setup=list(self.setup), additional_parameters=dict(self.sbatch))
        # An option not asked for (None, "", or 0 GPUs) is left out: SLURM's own default applies.
        params.update({o.name: getattr(self, o.name) for o in OPTIONS if getattr(self, o.name)})
        return params

    def sbatch_options(self) -> list[str]:
        """The request as sbatch command-line options, as submitit writes them into the job script."""
        # submitit renders its job script only in private functions (its public API writes the script while
        # submitting), so this follows its rule: an option's value as --NAME=VALUE, a bare flag as --NAME.
        written = [(o.sbatch[0], getattr(self, o.name)) for o in OPTIONS if o.sbatch and getattr(self, o.name)]
        written += [("ntasks-per-node", self.tasks_per_node), *self.sbatch]
        return [f"--{key}" if value is True else f"--{key}={value}" for key, value in written]

    def summary(self) -> dict:
        """The request as plain data, for slurm.json and the launch table."""
        return {k: v for k, v in dataclasses.asdict(self).items()
                if k not in ("origin", "lowerable") and v not in (None, (), "")}


Request = with_options(_Request, "Everything sbatch is asked for one job; jobs with equal requests are submitted "
                                 "as one array.")


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
class _SlurmFlags:
    cluster: str | None = None
    sbatch: tuple[str, ...] = ()
    "``--sbatch KEY=VALUE`` items."
    aggregate: bool = True
    "Submit the report job after the training jobs."
    classifier: str | None = None
    "A classify/cnn model.pt the report measures with."
    rank_by: str | None = None
    "The checkpoint whose FID the report ranks by (``--rank-by``); None: the profile's, else the report's default."
    pack: int = 1
    "Catalogue jobs trained concurrently in one SLURM job (``--pack N``)."


SlurmFlags = with_options(_SlurmFlags, "The launcher's SLURM flags, typed once: an option left None takes the "
                                       "profile's or the job's.")


def flag_values(flags: SlurmFlags) -> dict:
    """The options the user actually gave (the others are None)."""
    return {o.name: getattr(flags, o.name) for o in OPTIONS if getattr(flags, o.name) is not None}


def sbatch_extras(profile: dict, items: list[str]) -> dict[str, str]:
    """The profile's [sbatch] table updated by ``--sbatch KEY=VALUE`` items (KEY alone: a bare flag)."""
    extras = {str(k).lstrip("-"): v for k, v in profile.get("sbatch", {}).items()}
    for item in items:
        key, eq, value = item.partition("=")
        extras[key.strip().lstrip("-")] = value if eq else True
    for key in extras:
        if not key:
            raise SlurmError("--sbatch: expected KEY=VALUE, e.g. --sbatch mail-type=END")
        if key in OWNER:
            raise SlurmError(f"--sbatch {key}=...: use the launcher's own flag {OWNER[key].flag} (it is checked and "
                             "decides arrays, tasks and the report dependency)")
        if key in LAUNCHER_SETS:
            raise SlurmError(f"--sbatch {key}=...: the launcher sets --{key} itself ({LAUNCHER_SETS[key]}); "
                             "drop it")
    return extras


def resolve(job, profile: dict, profile_name: str, flags: dict, extras: dict) -> Request:
    """Job defaults, overridden by the profile, overridden by the flags."""
    values = {o.name: o.job_default(job.resources) for o in OPTIONS if o.job_default}
    origin = {k: f"{job.name}'s default {k}={v}" for k, v in values.items()}
    lowerable = set(values)
    for key, value in [*((k, v) for k, v in profile.items() if k in OPTION), *flags.items()]:
        values[key] = value
        origin[key] = f"{OPTION[key].flag} {value}" if key in flags else f"{key} = {value!r} in {profile_name}"
        lowerable.discard(key)
    if values["gpus_per_node"] == 0 and "partition" not in flags and "cpu_partition" in profile:
        values["partition"] = profile["cpu_partition"]
        origin["partition"] = f"cpu_partition = {profile['cpu_partition']!r} in {profile_name}"
    for option in OPTIONS:
        if option.check and values.get(option.name) not in (None, ""):
            option.check(values[option.name], origin[option.name])
    return Request(**values, max_requeues=profile.get("max_requeues", 3), python=profile.get("python"),
                   setup=tuple(profile.get("setup", ())), sbatch=tuple(sorted(extras.items())),
                   origin=tuple(origin.items()), lowerable=frozenset(lowerable))


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
                               lowerable=request.lowerable | {"cpus_per_task", "mem"})


def report_request(first: Request, profile: dict) -> Request:
    """The report job: CPU only, on the profile's CPU partition, else the training partition with no GPU."""
    origin = dict(first.origin)
    partition = profile.get("cpu_partition", first.partition)
    if "cpu_partition" in profile:
        origin["partition"] = f"cpu_partition = {partition!r}"
    return dataclasses.replace(first, partition=partition, gpus_per_node=0, nodes=1, mem=None,
                               constraint=None, array_parallelism=None, origin=tuple(origin.items()),
                               lowerable=frozenset({"cpus_per_task", "time"}), **REPORT_RESOURCES)
