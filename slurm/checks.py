"""Asking the cluster before anything is queued: its partitions and nodes (``scontrol``), each request
checked against them, and ``sbatch --test-only`` on the request itself, its complaint turned into an error
naming the setting to fix.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from slurm.requests import Request, SlurmError, mem_mb, parse_minutes

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
            "with --local, or start the local test cluster: slurm/testcluster/start.sh, then "
            "export SLURM_CONF=/tmp/fashion-slurm/slurm.conf")


def _fields(line: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S*)", line))


def count_gpus(gres: str) -> int:
    """GPUs in a node's Gres field: "gpu:2", "gpu:a100:4(S:0-1)", "gpu:a100:2,gpu:v100:2", "(null)"."""
    return sum(int(n) for n in re.findall(r"\bgpu(?::[A-Za-z_][\w.-]*)?:(\d+)", gres))


class Cluster:
    """The partitions and nodes ``scontrol`` reports, and the checks of a request against them."""

    def __init__(self, partitions: list[Partition], nodes: list[Node], max_array_size: int | None = None):
        self.partitions = {p.name: p for p in partitions}
        self.nodes = nodes
        self.max_array_size = max_array_size
        "Jobs one array may hold (MaxArraySize); None: unknown."

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
        size = re.search(r"^MaxArraySize\s*=\s*(\d+)", slurm_command("scontrol", "show", "config"), re.M)
        return cls(partitions, nodes, int(size[1]) if size else None)

    def fit(self, request: Request) -> tuple[Request, list[str]]:
        """The request checked against the partition's nodes: a job's own defaults are lowered to what the
        nodes have (with a note); values the user set that no node can satisfy are errors naming them."""
        notes, changes = [], {}

        def too_big(key: str, wanted, limit, fixed, why: str):
            if key in request.lowerable:
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
    """Let ``sbatch --test-only`` judge the request (the options submitit will put in the script); nothing
    is queued."""
    cmd = ["sbatch", "--test-only", f"--job-name={job_name}", "--output=/dev/null", *request.sbatch_options()]
    if array_size > 1:
        cmd.append(f"--array=0-{array_size - 1}" + (f"%{request.array_parallelism}" if request.array_parallelism else ""))
    try:
        res = subprocess.run([*cmd, "--wrap", "true"], capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        raise SlurmError(no_slurm_hint("`sbatch --test-only` got no answer in 60 s")) from None
    if res.returncode != 0:
        raise explain_rejection(res.stderr or res.stdout, request, what)


def check_report_options(options: dict, profile_name: str):
    """The profile's [report] table as the report's typed options (``fashion.report.ReportOptions``)."""
    from fashion.report.aggregate import ReportOptions

    try:
        return ReportOptions.from_table(options, profile_name)
    except ValueError as err:
        raise SlurmError(str(err)) from None
