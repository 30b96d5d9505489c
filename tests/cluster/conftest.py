"""Fixtures of the tests against the real local SLURM cluster of slurm/testcluster/: they need it started and
SLURM_CONF exported (``.ci/run`` does both), and skip, saying why, only when sbatch is not installed or the
cluster does not answer. The helpers these tests import are in cluster_helpers.py."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from cluster_helpers import run_launcher
from slurm import queue


@pytest.fixture(scope="module")
def cluster():
    if shutil.which("sbatch") is None:
        pytest.skip("sbatch not installed (slurm/testcluster/install.sh)")
    conf = os.environ.get("SLURM_CONF")
    if not conf or not os.path.isfile(conf):
        pytest.skip(f"SLURM_CONF={conf or 'unset'}: start the cluster with slurm/testcluster/start.sh and export "
                    "the line it prints")
    try:
        res = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.skip(f"SLURM cluster at SLURM_CONF={conf} does not answer (sinfo timed out)")
    if res.returncode != 0:
        pytest.skip(f"SLURM cluster at SLURM_CONF={conf} does not answer: {res.stderr.strip()}")


@pytest.fixture
def run(tmp_path, fake_fashion_dir, cluster):
    """Launch into a fresh outputs tree with the tiny fake data; the jobs run niced (shared test machines)."""
    profile = tmp_path / "test.toml"
    profile.write_text(f'python = "nice -n 10 {sys.executable}"\ncpus_per_task = 1\n')
    outputs = tmp_path / "outputs"

    def launch(*args: str) -> subprocess.CompletedProcess:
        return run_launcher(*args, "--outputs", str(outputs), "--cluster", str(profile),
                            "--data-dir", str(fake_fashion_dir))

    def launch_ok(*args: str) -> subprocess.CompletedProcess:
        """Launch, and fail the test with the launcher's output unless it exits 0."""
        result = launch(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    launch.ok = launch_ok
    launch.outputs, launch.data_dir, launch.profile = outputs, str(fake_fashion_dir), profile
    yield launch
    for path in outputs.glob(f"*/{queue.SLURM_FILE}"):  # leave nothing queued behind a failed test
        ids = [i for s in json.loads(path.read_text())["submissions"]
               for i in [*(g["slurm_id"] for g in s["groups"]), (s["report"] or {}).get("slurm_id")] if i]
        queue.cancel(ids)
