"""One report per run on the real local cluster: jobs launched into a run that still has jobs queued share
one report job, which starts after every one of them (see tests/cluster/conftest.py for the cluster)."""
from __future__ import annotations

import re
import subprocess

import pytest

from cluster_helpers import submitted, wait_until_ended
from slurm import queue


@pytest.mark.slurm
def test_jobs_launched_into_a_run_with_queued_jobs_share_one_report_after_all_of_them(run):
    # --begin keeps the jobs pending: the test needs them queued, not trained
    later = ("--partition", "gpu", "--run", "grow", "--sbatch", "begin=now+1hour")
    assert run("gan/gan", *later).returncode == 0
    first = submitted(run.outputs / "grow")
    added = run("gan/wgan", *later)
    assert added.returncode == 0, added.stdout + added.stderr
    second = submitted(run.outputs / "grow")

    old_report, new_report = first["report"]["slurm_id"], second["report"]["slurm_id"]
    assert wait_until_ended([old_report], timeout=60)[old_report]["State"] == "CANCELLED"
    launched = [name for record in (first, second) for group in record["groups"] for name in group["jobs"]]
    assert sorted(launched) == ["gan/gan", "gan/wgan"]
    training = {job_id.split("_")[0] for record in (first, second) for group in record["groups"]
                for job_id in group["jobs"].values()}
    shown = subprocess.run(["scontrol", "-o", "show", "job", new_report], capture_output=True, text=True,
                           timeout=30, check=True).stdout
    dependency = re.search(r"\bDependency=(\S+)", shown)[1]
    assert set(re.findall(r"(\d+)\(", dependency)) == training, dependency
    assert queue.job_states([new_report]) == {new_report: "PENDING"}
    assert second["report"]["replaces"] == [old_report] and f"replaces {old_report}" in added.stdout, added.stdout
