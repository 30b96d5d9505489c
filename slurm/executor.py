"""Submitting a run to SLURM through submitit: one SLURM job per experiment, one job array per set of jobs
asking for identical resources, then the report job, which starts when they have all ended.

What a job asks for comes from three layers, each overriding the one before: the job's own defaults
(``Job.resources`` in the catalogue), the ``--cluster`` profile (``slurm/clusters/NAME.toml``), the flags.
Everything is checked against the cluster (``scontrol``, ``sbatch --test-only``) before anything is
submitted or written, so a bad partition, account or resource request is an error naming the setting to
fix, not a traceback and not half a run.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from fashion import artifacts, runfolder

CLUSTERS_DIR = Path(__file__).resolve().parent / "clusters"
SLURM_FILE = "slurm.json"
SUBMITIT_DIR = ".submitit"

# Profile keys and their types; slurm/clusters/example.toml documents each one.
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


# ---------------------------------------------------------------------------------------------------------
# What one job asks for
# ---------------------------------------------------------------------------------------------------------

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

    def summary(self) -> dict:
        """The request as plain data, for slurm.json and the launch table."""
        return {k: v for k, v in dataclasses.asdict(self).items()
                if k not in ("origin", "defaults") and v not in (None, (), "")}


def signal_delay_s(time_min: int) -> int:
    """Seconds before the time limit at which SLURM warns the job (SIGUSR2): long enough for submitit to
    requeue it, and well inside the limit (submitit's default 90 s would fire before a 1-minute job started)."""
    return max(10, min(90, int(0.2 * time_min * 60)))


def load_profile(name: str | None) -> tuple[dict, str]:
    """The settings of ``slurm/clusters/NAME.toml`` (or of a path to a .toml file) and a label for messages."""
    if not name:
        return {}, ""
    path = Path(name) if name.endswith(".toml") else CLUSTERS_DIR / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in CLUSTERS_DIR.glob("*.toml"))
        raise SlurmError(f"--cluster {name}: no profile {path}; profiles: {', '.join(known) or 'none'} "
                         f"(copy slurm/clusters/example.toml to add one)")
    try:
        profile = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise SlurmError(f"{path}: not valid TOML ({err})") from None
    for key, value in profile.items():
        if key not in PROFILE_KEYS:
            raise SlurmError(f"{path}: unknown key {key!r}; valid keys: {', '.join(PROFILE_KEYS)} "
                             "(slurm/clusters/example.toml documents them)")
        kind = PROFILE_KEYS[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise SlurmError(f"{path}: {key} = {value!r} should be a TOML {kind.__name__}")
    if not all(isinstance(line, str) for line in profile.get("setup", [])):
        raise SlurmError(f"{path}: setup must be a list of shell lines (strings)")
    return profile, path.name


def flag_values(args) -> dict:
    """The SLURM flags the user actually gave (argparse leaves the others None)."""
    return {k: getattr(args, k) for k in FLAG_KEYS if getattr(args, k, None) is not None}


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


# ---------------------------------------------------------------------------------------------------------
# What the cluster offers
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    mem_mb: int
    gpus: int
    partitions: tuple[str, ...]


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool
    state: str
    max_time: int | None
    max_nodes: int | None


def slurm_command(*cmd: str, timeout: float = 30) -> str:
    """Run a SLURM client command; SlurmError, with what to do, when SLURM is missing or unreachable."""
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise SlurmError(no_slurm_hint(f"`{cmd[0]}` is not installed here")) from None
    except subprocess.TimeoutExpired:
        raise SlurmError(no_slurm_hint(f"`{' '.join(cmd)}` got no answer in {timeout:.0f} s")) from None
    if res.returncode != 0:
        raise SlurmError(no_slurm_hint(f"`{' '.join(cmd)}` failed: {res.stderr.strip() or res.stdout.strip()}"))
    return res.stdout


def no_slurm_hint(problem: str) -> str:
    conf = os.environ.get("SLURM_CONF")
    return (f"no SLURM cluster to submit to: {problem} (SLURM_CONF={conf or 'unset'}). Train on this machine "
            "with --local, or start the local test cluster: slurm/cluster/start.sh, then "
            "export SLURM_CONF=/tmp/fashion-slurm/slurm.conf")


def _fields(line: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S*)", line))


def count_gpus(gres: str) -> int:
    """GPUs in a node's Gres field: "gpu:2", "gpu:a100:4(S:0-1)", "gpu:a100:2,gpu:v100:2", "(null)"."""
    return sum(int(n) for n in re.findall(r"\bgpu(?::[A-Za-z_][\w.-]*)?:(\d+)", gres))


class Cluster:
    """The partitions and nodes ``scontrol`` reports, and the checks of a request against them."""

    def __init__(self, partitions: list[Partition], nodes: list[Node]):
        self.partitions = {p.name: p for p in partitions}
        self.nodes = nodes

    @classmethod
    def query(cls) -> "Cluster":
        for tool in ("sbatch", "srun", "scontrol"):
            if shutil.which(tool) is None:
                raise SlurmError(no_slurm_hint(f"`{tool}` is not installed here"))
        if os.environ.get("SLURM_CONF") and not Path(os.environ["SLURM_CONF"]).is_file():
            raise SlurmError(no_slurm_hint("the file SLURM_CONF names does not exist"))
        partitions = []
        for line in slurm_command("scontrol", "-o", "show", "partition").splitlines():
            f = _fields(line)
            if "PartitionName" in f:
                max_nodes = f.get("MaxNodes", "UNLIMITED")
                partitions.append(Partition(f["PartitionName"], f.get("Default") == "YES", f.get("State", "UP"),
                                            parse_minutes(f.get("MaxTime", "UNLIMITED")),
                                            int(max_nodes) if max_nodes.isdigit() else None))
        nodes = []
        for line in slurm_command("scontrol", "-o", "show", "node").splitlines():
            f = _fields(line)
            if "NodeName" in f:
                nodes.append(Node(f["NodeName"], int(f.get("CPUTot", 0) or 0), int(f.get("RealMemory", 0) or 0),
                                  count_gpus(f.get("Gres", "")), tuple(f.get("Partitions", "").split(","))))
        return cls(partitions, nodes)

    def fit(self, request: Request) -> tuple[Request, list[str]]:
        """The request checked against the partition's nodes: a job's own defaults are lowered to what the
        nodes have (with a note); values the user set that no node can satisfy are errors naming them."""
        notes, changes = [], {}

        def too_big(key: str, wanted, limit, fixed, why: str):
            if key in request.defaults:
                changes[key] = fixed
                notes.append(f"default {key}={wanted} lowered to {fixed}: {why}")
            else:
                raise SlurmError(f"{request.where(key)}: {why}; ask for at most {limit}")

        name = request.partition
        if name is None:
            name = next((p.name for p in self.partitions.values() if p.default), None)
            if name is None:
                raise SlurmError(f"this cluster has no default partition; choose one with --partition "
                                 f"({', '.join(self.partitions)})")
        elif name not in self.partitions:
            raise SlurmError(f"{request.where('partition')}: no such partition; partitions here: "
                             f"{', '.join(self.partitions) or 'none'} (`sinfo` lists them)")
        partition = self.partitions[name]
        nodes = [n for n in self.nodes if name in n.partitions]
        if not nodes:
            raise SlurmError(f"{request.where('partition')}: partition {name} has no nodes")
        if partition.state != "UP":
            notes.append(f"partition {name} is {partition.state}: jobs will wait until it is UP")
        most_gpus = max(n.gpus for n in nodes)
        if request.gpus_per_node > most_gpus:
            too_big("gpus_per_node", request.gpus_per_node, most_gpus, most_gpus,
                    f"partition {name}'s nodes have at most {most_gpus} GPUs")
        gpus = changes.get("gpus_per_node", request.gpus_per_node)
        tasks = max(1, gpus)
        nodes = [n for n in nodes if n.gpus >= gpus]
        most_cpus = max(n.cpus for n in nodes)
        if tasks * request.cpus_per_task > most_cpus:
            too_big("cpus_per_task", request.cpus_per_task, most_cpus // tasks, max(1, most_cpus // tasks),
                    f"{tasks} task(s) per node x {request.cpus_per_task} CPUs > the {most_cpus} CPUs of "
                    f"partition {name}'s nodes")
        limit_nodes = min(len(nodes), partition.max_nodes or len(nodes))
        if request.nodes > limit_nodes:
            too_big("nodes", request.nodes, limit_nodes, limit_nodes,
                    f"partition {name} has {limit_nodes} node(s) that fit this request")
        if request.mem:
            most_mem = max(n.mem_mb for n in nodes)
            if most_mem and mem_mb(request.mem, request.where("mem")) > most_mem:
                too_big("mem", request.mem, f"{most_mem}M", f"{most_mem}M",
                        f"partition {name}'s nodes have {most_mem} MB")
        if partition.max_time is not None and request.time > partition.max_time:
            too_big("time", request.time, partition.max_time, partition.max_time,
                    f"partition {name} allows {partition.max_time} minutes")
        return dataclasses.replace(request, partition=name, **changes), notes


# sbatch's complaint -> the setting that needs changing, and how to find a valid value.
SBATCH_ERRORS = (
    ("invalid account", "account", "use an account you belong to (`sacctmgr show assoc user=$USER format=account`)"),
    ("invalid partition", "partition", "`sinfo` lists the partitions"),
    ("invalid qos", "qos", "use a QOS of your account (`sacctmgr show assoc user=$USER format=account,qos`)"),
    ("invalid feature", "constraint", "`sinfo -o '%P %f'` lists the node features"),
    ("invalid node name", "exclude", "`sinfo -N` lists the node names"),
    ("time limit", "time", "`sinfo -o '%P %l'` shows each partition's limit"),
    ("invalid generic resource", "gpus_per_node", "`sinfo -o '%P %G'` shows the GPUs of each partition"),
    ("memory", "mem", "`sinfo -o '%P %m'` shows the memory of the nodes"),
    ("node configuration is not available", "resources",
     "lower --gpus-per-node, --cpus-per-task, --mem or --nodes, or check --constraint (`sinfo -N -l`)"),
)


def explain_rejection(message: str, request: Request, what: str) -> SlurmError:
    """Turn sbatch's error text into a SlurmError naming the setting to fix."""
    lines = [ln.strip() for ln in str(message).splitlines() if ln.strip()]
    reason = "; ".join(dict.fromkeys(ln.removeprefix("sbatch: error: ") for ln in lines
                                     if "error" in ln.lower() or "failure" in ln.lower())) or " ".join(lines[-2:])
    for needle, key, hint in SBATCH_ERRORS:
        if needle in reason.lower():
            if key == "resources":
                settings = ", ".join(request.where(k) for k in ("gpus_per_node", "cpus_per_task", "mem", "nodes",
                                                                "constraint") if dict(request.origin).get(k))
                return SlurmError(f"sbatch rejects {what} ({reason}): no node offers {settings}; {hint}")
            return SlurmError(f"sbatch rejects {what} ({reason}): fix {request.where(key)}; {hint}")
    return SlurmError(f"sbatch rejects {what}: {reason}")


def sbatch_test_only(request: Request, job_name: str, array_size: int, what: str) -> None:
    """Let ``sbatch --test-only`` judge the exact script submitit will submit; nothing is queued."""
    from submitit.slurm.slurm import _make_sbatch_string  # the script text submitit itself writes

    params = request.executor_parameters()
    with tempfile.TemporaryDirectory(prefix="fashion-sbatch-") as tmp:
        script = Path(tmp) / "test.sh"
        script.write_text(_make_sbatch_string(command="true", folder=tmp, job_name=job_name,
                                              map_count=array_size if array_size > 1 else None, **params))
        try:
            res = subprocess.run(["sbatch", "--test-only", str(script)], capture_output=True, text=True,
                                 timeout=60, check=False, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise SlurmError(no_slurm_hint("`sbatch --test-only` got no answer in 60 s")) from None
    if res.returncode != 0:
        raise explain_rejection(res.stderr or res.stdout, request, what)


# ---------------------------------------------------------------------------------------------------------
# Launching a run
# ---------------------------------------------------------------------------------------------------------

def launch(todo, configs: dict, run_dir: Path, args, console, skipped: dict | None = None,
           before_submit=None) -> int:
    """Check, then submit every job (arrays where resources match) and the report job. ``skipped``: jobs
    the launcher set aside, with why (recorded in slurm.json); ``before_submit``: called once every check
    has passed, just before the first sbatch (--force moves old results aside there, never earlier)."""
    profile, profile_name = load_profile(getattr(args, "cluster", None))
    extras = sbatch_extras(profile, getattr(args, "sbatch", []) or [])
    flags = flag_values(args)

    requests = {job.name: resolve(job, profile, profile_name, flags, extras) for job in todo}
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
    for note, names in notes.items():
        console.print(f"[dim]{note} ({_names(names)})[/]", highlight=False)
    groups: dict[Request, list] = {}
    for job in todo:
        groups.setdefault(requests[job.name], []).append(job)

    run_name = run_dir.name
    for request, members in groups.items():
        sbatch_test_only(request, f"fashion-{run_name}", len(members), describe(members))
    report = None
    if not getattr(args, "no_aggregate", False):
        report, _ = cluster.fit(report_request(next(iter(groups)), profile))
        sbatch_test_only(report, f"fashion-{run_name}-report", 1, "the report job")
        check_report_options(profile.get("report", {}), profile_name)
    refuse_active(todo, run_dir)
    if before_submit is not None:
        before_submit()

    report_options = dict(profile.get("report", {}))
    if getattr(args, "classifier", None):  # the launcher's --classifier: the report measures with that model
        report_options["classifier"] = args.classifier
    submission = submit(groups, report, configs, run_dir, profile_name, skipped or {}, report_options)
    print_submission(console, submission, run_dir)
    return 0


def _names(names: list[str], most: int = 3) -> str:
    return ", ".join(names) if len(names) <= most else f"{', '.join(names[:most])}, ... {len(names)} jobs"


def check_report_options(options: dict, profile_name: str) -> None:
    """The profile's [report] table must be keyword arguments of ``fashion.report.aggregate``."""
    if not options:
        return
    import inspect

    from fashion.report import aggregate

    accepted = set(inspect.signature(aggregate).parameters) - {"run_dir", "console"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise SlurmError(f"[report] in {profile_name}: unknown option(s) {', '.join(unknown)}; "
                         f"fashion.report.aggregate takes {', '.join(sorted(accepted))}")


def describe(members: list) -> str:
    names = [j.name for j in members]
    return names[0] if len(names) == 1 else f"the array of {len(names)} jobs ({names[0]}, ...)"


def report_request(first: Request, profile: dict) -> Request:
    """The report job: CPU only, on the profile's CPU partition, else the training partition with no GPU."""
    origin = dict(first.origin)
    partition = profile.get("cpu_partition", first.partition)
    if "cpu_partition" in profile:
        origin["partition"] = f"cpu_partition = {partition!r}"
    return dataclasses.replace(first, partition=partition, gpus_per_node=0, nodes=1, mem=None,
                               constraint=None, array_parallelism=None, origin=tuple(origin.items()),
                               defaults=frozenset({"cpus_per_task", "time"}), **REPORT_RESOURCES)


ACTIVE_STATES = {"PENDING", "RUNNING", "REQUEUED", "SUSPENDED", "CONFIGURING", "COMPLETING", "RESIZING",
                 "REQUEUE_HOLD", "REQUEUE_FED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "STOPPED"}


def job_states(ids: list[str], problems: list[str] | None = None) -> dict[str, str]:
    """SLURM state of each job id ("45" or array task "45_3"): squeue for jobs still in the queue, sacct for
    the ones that left it; ids neither knows are left out, with the reason appended to ``problems``.

    squeue comes first because the accounting database learns of a job late: a pending job (a held one, or
    one waiting for its --begin time) can be missing from sacct for a long time.
    """
    problems = [] if problems is None else problems
    if not ids:
        return {}
    states = queued_states(ids)
    rest = [i for i in ids if i not in states]
    return {**states, **accounted_states(rest, problems)} if rest else states


def queued_states(ids: list[str]) -> dict[str, str]:
    """State of those ``ids`` that are in slurmctld's queue now (one line per array task); {} without squeue."""
    if shutil.which("squeue") is None:
        return {}
    try:  # every job of this user, not -j: squeue fails outright when one id has left the queue
        res = subprocess.run(["squeue", "--me", "-h", "-r", "-o", "%i|%T"], capture_output=True, text=True,
                             timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return {}
    if res.returncode != 0:
        return {}
    wanted = set(ids)
    rows = (line.split("|", 1) for line in res.stdout.splitlines() if "|" in line)
    return {job_id: state.strip() for job_id, state in rows if job_id in wanted}


def accounted_states(ids: list[str], problems: list[str]) -> dict[str, str]:
    """State of each id from the accounting database (sacct), which also knows the jobs that ended."""
    from submitit.slurm.slurm import SlurmInfoWatcher

    if shutil.which("sacct") is None:
        problems.append("sacct is not installed here")
        return {}
    masters = sorted({i.split("_")[0] for i in ids})
    try:
        res = subprocess.run(["sacct", "-P", "-X", "-j", ",".join(masters), "-o", "JobID,State,Start,End,Elapsed"],
                             capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        problems.append("sacct got no answer in 30 s")
        return {}
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["no message"])[-1]
        problems.append(f"{last} (SLURM_CONF={os.environ.get('SLURM_CONF', 'unset')})")
        return {}
    info = SlurmInfoWatcher().read_info(res.stdout)
    return {i: info[i]["State"].split()[0] for i in ids if i in info}


def latest_ids(run_dir: Path) -> dict[str, str]:
    """Each job's SLURM id ("123_4" for array task 4) in its latest submission recorded in slurm.json."""
    subs = (artifacts.read_json(Path(run_dir) / SLURM_FILE, {}) or {}).get("submissions", [])
    return {name: job_id for sub in subs for group in sub["groups"] for name, job_id in group["jobs"].items()}


def refuse_active(todo: list, run_dir: Path) -> None:
    """Two SLURM jobs training into one folder would corrupt it: refuse jobs still queued or running."""
    recorded = latest_ids(run_dir)
    ids = {job.name: recorded.get(job.name, "") for job in todo}
    states = job_states([i for i in ids.values() if i])
    active = [f"{name} (SLURM job {i}, {states[i]})" for name, i in ids.items() if states.get(i) in ACTIVE_STATES]
    if active:
        raise SlurmError(f"already queued or running in run {run_dir.name}: {', '.join(active)}. Wait for them "
                         f"(python launch.py --status {run_dir.name}), cancel them (--cancel {run_dir.name}), "
                         "or choose another --run")


def earlier_active(run_dir: Path) -> tuple[list[str], dict[str, str]]:
    """What earlier submissions to this run still have queued or running: the SLURM ids of training jobs
    (array masters: a dependency on one waits for all its tasks) and each report job with its state."""
    subs = (artifacts.read_json(Path(run_dir) / SLURM_FILE, {}) or {}).get("submissions", [])
    trained = [i for sub in subs for group in sub["groups"] for i in group["jobs"].values()]
    reports = [sub["report"]["slurm_id"] for sub in subs if sub.get("report")]
    states = job_states(trained + reports)
    active = sorted({i.split("_")[0] for i in trained if states.get(i) in ACTIVE_STATES}, key=int)
    return active, {i: states[i] for i in reports if states.get(i) in ACTIVE_STATES}


def hold_pending(ids: list[str]) -> list[str]:
    """Hold each job that is still pending; the ones held (a job that just started cannot be held)."""
    return [i for i in ids if subprocess.run(["scontrol", "hold", i], capture_output=True, timeout=60,
                                             check=False).returncode == 0]


def submit(groups: dict[Request, list], report: Request | None, configs: dict, run_dir: Path,
           profile_name: str, skipped: dict, report_options: dict | None = None) -> dict:
    """Submit the groups held, record ids and log paths, then release them. A run has one report, built
    after all of its jobs: the new report job waits for these and for every job of the run still active,
    and replaces the run's pending report job (two reports would write report/ at once)."""
    import submitit

    from jobs.runner import AggregateJob, TrainJob

    run_dir = run_dir.resolve()
    created = not run_dir.exists()
    folder = run_dir / SUBMITIT_DIR / "%j"
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
        for request, members in groups.items():
            executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=request.max_requeues,
                                              python=request.python)
            params = request.executor_parameters()
            # Held until every status.json names its SLURM id: a job must never start before its record.
            params["additional_parameters"]["hold"] = True
            executor.update_parameters(job_name=job_name, **params)
            try:
                with executor.batch():
                    group = {job.name: executor.submit(TrainJob(job.name, dataclasses.asdict(configs[job.name]),
                                                                str(runfolder.job_dir(run_dir, job.name))))
                             for job in members}
            except (subprocess.SubprocessError, submitit.core.utils.UncompletedJobError,
                    submitit.core.utils.FailedSubmissionError) as err:
                raise explain_rejection(str(err), request, describe(members)) from None
            handles.update(group)
            masters = sorted({h.job_id.split("_")[0] for h in group.values()})
            submitted_ids += masters
            record["groups"].append({"slurm_id": masters[0], "array": len(members) > 1,
                                     "jobs": {n: h.job_id for n, h in group.items()}, "request": request.summary()})
        if report is not None:
            dependency = "afterany:" + ":".join([*earlier, *submitted_ids])
            executor = submitit.SlurmExecutor(folder=folder, python=report.python)
            executor.update_parameters(job_name=f"{job_name}-report", dependency=dependency,
                                       **report.executor_parameters())
            try:
                handle = executor.submit(AggregateJob(str(run_dir), report_options))
            except (subprocess.SubprocessError, submitit.core.utils.UncompletedJobError) as err:
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


def cancel(ids: list[str]) -> None:
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=60, check=False)


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
        table.add_row(kind, _names(list(group["jobs"])), f"{r.get('partition')}: {r['gpus_per_node']} GPU x "
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
