"""Helpers the SLURM tests import (``from cluster_helpers import submitted``); their fixtures are in this
folder's conftest.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers import ROOT
from slurm import queue

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE"}


def a_job(name="gan/gan", **resources):
    import jobs

    base = jobs.Resources(gpus_per_node=1, nodes=1, cpus_per_task=4, mem_gb=16, timeout_min=240)
    return SimpleNamespace(name=name, resources=jobs.Resources(**{**base.__dict__, **resources}))


def run_launcher(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python launch.py ARGS`` as a user runs it."""
    return subprocess.run([sys.executable, str(ROOT / "launch.py"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200", **(env or {})})


def submitted(run_dir: Path) -> dict:
    return json.loads((run_dir / queue.SLURM_FILE).read_text())["submissions"][-1]


def sacct(ids: list[str], fields: str = "State,Start,End") -> dict[str, dict]:
    masters = sorted({i.split("_")[0] for i in ids})
    res = subprocess.run(["sacct", "-n", "-P", "-X", "-j", ",".join(masters), "-o", f"JobID,{fields}"],
                         capture_output=True, text=True, timeout=30, check=True)
    rows = {}
    for line in res.stdout.splitlines():
        job_id, *values = line.split("|")
        rows[job_id] = dict(zip(fields.split(","), values))
        rows[job_id]["State"] = rows[job_id]["State"].split()[0]
    return rows


def wait_until_ended(ids: list[str], timeout: float) -> dict[str, dict]:
    """sacct rows of the jobs once every one has ended; fails the test (they are cancelled) after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        rows = sacct(ids)
        if all(rows.get(i, {}).get("State") in TERMINAL for i in ids):
            return rows
        if time.monotonic() > deadline:
            queue.cancel(ids)
            pytest.fail(f"not ended after {timeout:.0f} s: {[(i, rows.get(i, {}).get('State')) for i in ids]}")
        time.sleep(1.0)
