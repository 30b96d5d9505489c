"""A private two-node SLURM cluster that these tests start and stop themselves (slurm/testcluster/, other ports,
its own state dir): what needs a daemon killed, or two nodes, without touching the cluster other tests use.

Needs root and the SLURM packages (slurm/testcluster/install.sh); skips, saying why, without them. Starting it
takes ~15 s (a fresh accounting database), stopping it ~2 s.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cloudpickle
import pytest
import torch

from cluster_helpers import TERMINAL
from helpers import ROOT

pytestmark = pytest.mark.slurm
CLUSTER_DIR = ROOT / "slurm" / "testcluster"

# The job function below runs in the SLURM job, which cannot import tests/: ship this module by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def free_base_port() -> int:
    """Ports P..P+3 and P+11 (the second node's slurmd) free on 127.0.0.1: the test cluster's own helper."""
    spec = importlib.util.spec_from_file_location("free_ports", CLUSTER_DIR / "free_ports.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.free_base_port((0, 1, 2, 3, 11))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two nodes ("HOST-n1", "HOST-n2": names that need not resolve) on this host; in this module, in place of
    conftest's shared cluster."""
    if os.geteuid() != 0:
        pytest.skip("slurm/testcluster/start.sh runs the daemons as root")
    missing = [d for d in ("slurmctld", "slurmd", "slurmdbd", "mariadbd", "munged")
               if not shutil.which(d) and not os.path.exists(f"/usr/sbin/{d}")]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (slurm/testcluster/install.sh)")
    state = tmp_path_factory.mktemp("slurm")
    base = free_base_port()
    # three placeholder GPUs a node: a 2-node x 1-GPU job and a 1-node x 2-GPU job run side by side
    env = {**os.environ, "FASHION_SLURM_NODES": "2", "FASHION_SLURM_GPUS": "3", "FASHION_SLURM_CTLD_PORT": str(base),
           "FASHION_SLURM_SLURMD_PORT": str(base + 1), "FASHION_SLURM_DBD_PORT": str(base + 2),
           "FASHION_SLURM_MYSQL_PORT": str(base + 3), "SLURM_CONF": str(state / "slurm.conf")}
    started = subprocess.run(["bash", str(CLUSTER_DIR / "start.sh"), str(state)], env=env, capture_output=True,
                             text=True, timeout=180)
    assert started.returncode == 0, started.stderr
    yield SimpleNamespace(state=state, env=env, conf=env["SLURM_CONF"])
    subprocess.run(["bash", str(CLUSTER_DIR / "stop.sh"), "--wipe", str(state)], env=env, capture_output=True,
                   timeout=120)


def slurm(cluster, *cmd: str) -> str:
    return subprocess.run(cmd, env=cluster.env, capture_output=True, text=True, timeout=30, check=True).stdout


def wait_for_state(cluster, job_id: str, states: set[str], timeout: float) -> str:
    """The job's state once it is one of ``states`` (squeue while queued, then sacct)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queued = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], env=cluster.env, capture_output=True,
                                text=True, timeout=30).stdout.split()
        state = queued[0] if queued else (slurm(cluster, "sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State")
                                          .split() or [""])[0]
        if state in states:
            return state
        time.sleep(0.5)
    subprocess.run(["scancel", job_id], env=cluster.env, capture_output=True, timeout=30)
    pytest.fail(f"job {job_id} still {state or 'unknown'} after {timeout:.0f} s (wanted {sorted(states)})")


def daemon_pid(cluster, name: str) -> int:
    return int((cluster.state / "run" / f"{name}.pid").read_text())


def test_the_nodes_are_two_on_one_host(cluster):
    assert slurm(cluster, "sinfo", "-h", "-N", "-p", "gpu", "-o", "%N %T %G").split("\n")[:2] == [
        f"{socket.gethostname().split('.')[0]}-n{i} idle gpu:3" for i in (1, 2)]


def test_start_after_a_controller_crash_starts_only_the_controller_and_the_running_job_completes(
        cluster, tmp_path):
    trace = tmp_path / "trace"
    job_id = slurm(cluster, "sbatch", "--parsable", "-p", "cpu", "-o", "/dev/null", "--wrap",
                   f"echo started >> {trace}; sleep 12; echo finished >> {trace}").strip()
    wait_for_state(cluster, job_id, {"RUNNING"}, timeout=60)
    # slurmctld writes a job's start to its state files lazily; a crash before that makes it forget the
    # start and run the job again. A job update is written at once: crash after it, as a real one would.
    saved = (cluster.state / "ctld" / "job_state").stat().st_mtime
    slurm(cluster, "scontrol", "update", f"jobid={job_id}", "comment=running")
    deadline = time.monotonic() + 10
    while (cluster.state / "ctld" / "job_state").stat().st_mtime == saved:
        assert time.monotonic() < deadline, "slurmctld never saved its job state"
        time.sleep(0.2)
    slurmds = {p.name.removesuffix(".pid"): daemon_pid(cluster, p.name.removesuffix(".pid"))
               for p in (cluster.state / "run").glob("slurmd.*.pid") if not p.name.endswith(".own.pid")}
    assert len(slurmds) == 2, slurmds
    ctld = daemon_pid(cluster, "slurmctld")
    os.kill(ctld, 9)
    while Path(f"/proc/{ctld}").exists() and Path(f"/proc/{ctld}/stat").read_text().split()[2] != "Z":
        time.sleep(0.1)

    restarted = subprocess.run(["bash", str(CLUSTER_DIR / "start.sh"), str(cluster.state)], env=cluster.env,
                               capture_output=True, text=True, timeout=180)
    assert restarted.returncode == 0, restarted.stderr
    assert "started slurmctld" in restarted.stderr and "started slurmd" not in restarted.stderr, restarted.stderr
    assert wait_for_state(cluster, job_id, TERMINAL, timeout=90) == "COMPLETED"
    assert trace.read_text() == "started\nfinished\n"  # one run, never killed
    assert {n: daemon_pid(cluster, n) for n in slurmds} == slurmds


def test_an_unresolvable_node_name_resolves_through_slurm(cluster, monkeypatch):
    from jobs.runner import rendezvous_address

    node = slurm(cluster, "sinfo", "-h", "-N", "-o", "%N").split()[0]
    try:
        socket.getaddrinfo(node, None)
        pytest.skip(f"node name {node} resolves on this machine: nothing for SLURM to resolve")
    except OSError:
        pass
    monkeypatch.setenv("SLURM_CONF", cluster.conf)
    assert rendezvous_address(node) == "127.0.0.1"
    assert rendezvous_address("localhost") == "localhost"  # a name that resolves is kept


def launch(cluster, outputs: Path, data_dir: Path, *args: str) -> str:
    """``launch.py ARGS`` into ``outputs`` on the private cluster; the SLURM id of its one job."""
    profile = outputs.parent / "test.toml"
    profile.write_text(f'python = "nice -n 10 {sys.executable}"\ncpus_per_task = 1\n')
    res = subprocess.run([sys.executable, str(ROOT / "launch.py"), "gan/gan", "--partition", "gpu", "--precision",
                          "no", "--epochs", "1", "--limit-batches", "2", "--batch-size", "16", "--no-aggregate",
                          "--outputs", str(outputs), "--cluster", str(profile), "--data-dir", str(data_dir), *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, env={**cluster.env, "COLUMNS": "200"})
    assert res.returncode == 0, res.stdout + res.stderr
    run = args[args.index("--run") + 1]
    record = json.loads((outputs / run / "slurm.json").read_text())["submissions"][-1]
    return record["groups"][0]["jobs"]["gan/gan"]


def parameters(job_dir: Path) -> dict[str, torch.Tensor]:
    """The trained weights; BatchNorm running statistics are left out: each rank keeps its own."""
    nets = torch.load(job_dir / "checkpoint.pt", map_location="cpu", weights_only=False)["nets"]
    return {f"{net}.{key}": value for net, state in nets.items() for key, value in state.items()
            if not key.endswith(("running_mean", "running_var", "num_batches_tracked"))}


@pytest.mark.slow
def test_a_job_on_two_nodes_trains_the_weights_of_two_processes_on_one(cluster, tmp_path, fake_fashion_dir):
    outputs = tmp_path / "outputs"
    ids = {"two-nodes": launch(cluster, outputs, fake_fashion_dir, "--nodes", "2", "--gpus-per-node", "1",
                               "--run", "two-nodes"),
           "one-node": launch(cluster, outputs, fake_fashion_dir, "--gpus-per-node", "2", "--run", "one-node")}
    for job_id in ids.values():
        assert wait_for_state(cluster, job_id, TERMINAL, timeout=600) == "COMPLETED"
    config = json.loads((outputs / "two-nodes" / "gan/gan" / "config.json").read_text())
    assert config["world_size"] == 2 and config["threads"] == 1
    nodes = slurm(cluster, "sacct", "-n", "-X", "-P", "-j", ids["two-nodes"], "-o", "NNodes").split()
    assert nodes == ["2"]
    two, one = parameters(outputs / "two-nodes" / "gan/gan"), parameters(outputs / "one-node" / "gan/gan")
    assert two.keys() == one.keys()
    for key in two:
        assert torch.equal(two[key], one[key]), f"{key} differs between 2 nodes x 1 and 1 node x 2 processes"


def _train_and_return_weights(name: str, config: dict, job_dir: str) -> dict:
    """The catalogue job as TrainJob runs it, returning this rank's weights once training has ended."""
    import jobs
    from fashion.training import fit
    from jobs.runner import _export_torch_distributed, _use_allocated_cpus

    assert _export_torch_distributed()
    _use_allocated_cpus()
    job, seen = jobs.get(name), {}

    class Recorded(job.task):
        def train_step(self, *args, **kwargs):
            terms = super().train_step(*args, **kwargs)
            seen.update({f"{n}.{k}": p.detach().cpu().clone() for n in self.nets
                         for k, p in self.unwrap(n).named_parameters()})
            return terms

    fit(Recorded, job.make_config(config), job_dir, name)
    return {"rank": int(os.environ["RANK"]), "weights": seen}


@pytest.mark.slow
def test_both_ranks_of_a_two_node_job_end_with_identical_weights(cluster, tmp_path, fake_fashion_dir, monkeypatch):
    import submitit

    monkeypatch.setenv("SLURM_CONF", cluster.conf)
    executor = submitit.SlurmExecutor(folder=tmp_path / "submitit", python=f"nice -n 10 {sys.executable}")
    executor.update_parameters(partition="gpu", nodes=2, ntasks_per_node=1, gpus_per_node=1, cpus_per_task=1,
                               time=10, signal_delay_s=30)
    config = {"epochs": 1, "limit_batches": 2, "batch_size": 16, "precision": "no", "cpu": True,
              "data_dir": str(fake_fashion_dir)}
    job = executor.submit(_train_and_return_weights, "gan/gan", config, str(tmp_path / "gan"))
    assert wait_for_state(cluster, job.job_id, TERMINAL, timeout=600) == "COMPLETED"
    rank0, rank1 = sorted(job.results(), key=lambda r: r["rank"])
    assert (rank0["rank"], rank1["rank"]) == (0, 1) and rank0["weights"]
    for key, value in rank0["weights"].items():
        assert torch.equal(value, rank1["weights"][key]), f"{key}: the ranks drifted apart"
