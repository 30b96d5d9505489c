"""End-to-end tests against the real local SLURM cluster of slurm/testcluster/.

Start it first (as root) and export the variable it prints:

    slurm/testcluster/start.sh            # last line: export SLURM_CONF=/tmp/fashion-slurm/slurm.conf
    export SLURM_CONF=/tmp/fashion-slurm/slurm.conf
    pytest -m slurm tests/cluster/test_local_cluster.py

The tests skip (with the reason) only when sbatch is not installed, SLURM_CONF
is not set, or the cluster does not answer (this folder's conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("cluster")]

JOB_TIMEOUT_S = 30  # per job; jobs here take ~1-3 s on the local cluster


def _run(*cmd: str, timeout: float = 15) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _executor(tmp_path, **params):
    import submitit

    executor = submitit.AutoExecutor(folder=tmp_path / "submitit")
    assert executor.cluster == "slurm"
    # SLURM sends the pre-timeout signal (USR2) up to a minute earlier than asked; with a 2-minute limit
    # and submitit's default 90 s warning, a job on a busy machine got it before it finished.
    executor.update_parameters(timeout_min=5, slurm_signal_delay_s=15, **params)
    return executor


def _wait(jobs, timeout: float = JOB_TIMEOUT_S) -> None:
    """Wait until all jobs are done; fail (and cancel them) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not all(job.done() for job in jobs):
        if time.monotonic() > deadline:
            for job in jobs:
                job.cancel(check=False)
            pytest.fail(f"jobs {[j.job_id for j in jobs]} not done after {timeout}s")
        time.sleep(0.5)


def _sacct(job_id: str, field: str, timeout: float = 15) -> str:
    """`sacct` FIELD of a job once it has reached a final state (polls: the
    controller forwards states to slurmdbd asynchronously)."""
    deadline = time.monotonic() + timeout
    value = ""
    while time.monotonic() < deadline:
        res = _run("sacct", "-n", "-X", "-P", "-j", str(job_id), "-o", f"State,{field}")
        line = res.stdout.strip().splitlines()[0] if res.stdout.strip() else ""
        if line:
            state, value = line.split("|", 1)
            if state not in ("PENDING", "RUNNING", "REQUEUED", "COMPLETING"):
                return value
        time.sleep(0.5)
    return value


def test_sinfo_lists_cpu_and_gpu_partitions() -> None:
    res = _run("sinfo", "-h", "-o", "%P")
    assert res.returncode == 0, res.stderr
    partitions = {p.rstrip("*") for p in res.stdout.split()}
    assert {"cpu", "gpu"} <= partitions


def test_gpu_job_result_and_sacct_completed(tmp_path) -> None:
    def work(a: int, b: int) -> dict:
        return {"sum": a + b, "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}

    executor = _executor(tmp_path, slurm_partition="gpu", gpus_per_node=1)
    job = executor.submit(work, 2, 3)
    _wait([job])
    result = job.result()
    assert result["sum"] == 5
    assert result["cuda"] is not None  # the fake GPU gres was allocated
    assert _sacct(job.job_id, "State") == "COMPLETED"


def test_map_array_all_complete(tmp_path) -> None:
    def square(x: int) -> int:
        return x * x

    executor = _executor(tmp_path, slurm_partition="cpu", slurm_array_parallelism=3)
    jobs = executor.map_array(square, [1, 2, 3])
    assert len(jobs) == 3
    _wait(jobs)
    assert [job.result() for job in jobs] == [1, 4, 9]
    for job in jobs:
        assert _sacct(job.job_id, "State") == "COMPLETED"


def test_unknown_partition_is_rejected(tmp_path) -> None:
    partition = f"nope{uuid.uuid4().hex[:6]}"
    executor = _executor(tmp_path, slurm_partition=partition)
    with pytest.raises(Exception) as excinfo:
        executor.submit(int, 1)
    assert partition in str(excinfo.value)


def test_accounts_enforced(tmp_path) -> None:
    # a real account works and is recorded ...
    executor = _executor(tmp_path, slurm_account="testacct")
    job = executor.submit(int, 7)
    _wait([job])
    assert job.result() == 7
    assert _sacct(job.job_id, "Account") == "testacct"
    # ... a bogus one is rejected at submission time
    bogus = _executor(tmp_path, slurm_account="no_such_account")
    with pytest.raises(Exception, match="(?i)invalid account"):
        bogus.submit(int, 1)
