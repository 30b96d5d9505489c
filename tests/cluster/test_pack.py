"""``--pack N``: several catalogue jobs trained side by side in one allocation, each with its own folder,
status and checkpoint; locally here, then on the real local cluster (see tests/cluster/conftest.py)."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

import launch
from cluster_helpers import a_job, run_launcher, submitted, wait_until_ended
from slurm.requests import SlurmError, packed, resolve
from slurm.submit import units

TINY = ("--epochs", "1", "--limit-batches", "2", "--batch-size", "16", "--no-aggregate")


def status(run_dir: Path, name: str) -> dict:
    return json.loads((run_dir / name / "status.json").read_text())


def test_a_pack_asks_for_its_members_cpus_and_memory_together_and_their_time():
    member = resolve(a_job(), {}, "", {}, {})
    pack = packed(member, 3)
    assert (pack.cpus_per_task, pack.mem, pack.time, pack.gpus_per_node) == (12, "49152M", member.time, 1)
    assert {"cpus_per_task", "mem"} <= pack.lowerable  # lowered to what a node has, not refused


def test_jobs_are_packed_n_at_a_time_and_the_last_pack_takes_the_rest():
    members = [a_job(f"gan/{n}") for n in ("gan", "lsgan", "wgan")]
    chunks = units(resolve(members[0], {}, "", {}, {}), members, 2)
    assert [[j.name for j in unit] for unit, _ in chunks] == [["gan/gan", "gan/lsgan"], ["gan/wgan"]]
    assert [request.cpus_per_task for _, request in chunks] == [8, 4]


def test_jobs_of_several_gpus_or_nodes_are_not_packed():
    member = resolve(a_job(gpus_per_node=2), {}, "", {}, {})
    with pytest.raises(SlurmError, match="only jobs of one node and at most one GPU"):
        units(member, [a_job(gpus_per_node=2)] * 2, 2)


@pytest.mark.slow
def test_local_pack_trains_its_jobs_at_the_same_time(tmp_path, fake_fashion_dir, capsys):
    code = launch.main(["gan/gan", "gan/lsgan", "--local", "--pack", "2", *TINY, "--outputs", str(tmp_path)])
    assert code == 0, capsys.readouterr().out
    one, two = status(tmp_path / "default", "gan/gan"), status(tmp_path / "default", "gan/lsgan")
    assert one["state"] == two["state"] == "completed"
    assert one["pid"] != two["pid"]
    # Side by side: each started training before the other finished (one after another, they could not).
    assert one["started"] < two["finished"] and two["started"] < one["finished"]


@pytest.mark.slow
def test_local_pack_member_that_fails_leaves_the_other_completed(tmp_path, fake_fashion_dir, capsys):
    code = launch.main(["gan/gan", "gan/lsgan", "--local", "--pack", "2", *TINY, "--outputs", str(tmp_path),
                        "--set", "gan/lsgan:data_dir=/nonexistent", "--no-data-check"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert status(tmp_path / "default", "gan/gan")["state"] == "completed"
    failed = status(tmp_path / "default", "gan/lsgan")
    assert failed["state"] == "failed" and "/nonexistent" in failed["error"]
    assert "gan/lsgan failed" in out


@pytest.mark.slurm
@pytest.mark.slow
def test_a_pack_is_one_slurm_job_whose_members_keep_their_own_folders(run):
    run.ok("gan/gan", "gan/lsgan", "--partition", "gpu", "--pack", "2", *TINY, "--run", "pack")
    group = submitted(run.outputs / "pack")["groups"][0]
    (pack_id, members), = group["packs"].items()
    assert members == ["gan/gan", "gan/lsgan"] and group["jobs"] == {"gan/gan": pack_id, "gan/lsgan": pack_id}
    assert group["request"]["cpus_per_task"] == 2  # the test profile's 1 CPU per job, twice
    assert wait_until_ended([pack_id], timeout=600)[pack_id]["State"] == "COMPLETED"
    for name in members:
        assert status(run.outputs / "pack", name)["state"] == "completed"
        config = json.loads((run.outputs / "pack" / name / "config.json").read_text())
        assert config["slurm_job_id"] == pack_id and config["threads"] == 1  # its share of the pack's CPUs


@pytest.mark.slurm
@pytest.mark.slow
def test_a_failing_pack_member_leaves_the_other_completed_and_status_shows_each(run):
    run.ok("gan/gan", "gan/lsgan", "--partition", "gpu", "--pack", "2", *TINY, "--run", "packfail",
           "--set", "gan/lsgan:data_dir=/nonexistent", "--no-data-check")
    pack_id = submitted(run.outputs / "packfail")["groups"][0]["jobs"]["gan/gan"]
    assert wait_until_ended([pack_id], timeout=600)[pack_id]["State"] == "FAILED"  # SLURM sees the failure
    assert status(run.outputs / "packfail", "gan/gan")["state"] == "completed"
    assert status(run.outputs / "packfail", "gan/lsgan")["state"] == "failed"
    shown = run_launcher("--status", "packfail", "--outputs", str(run.outputs))
    rows = {line.split()[1]: line for line in shown.stdout.splitlines() if "gan/" in line and "│" in line}
    assert "completed" in rows["gan/gan"] and "failed" in rows["gan/lsgan"], shown.stdout
    assert pack_id in rows["gan/gan"] and pack_id in rows["gan/lsgan"]


@pytest.mark.slurm
@pytest.mark.slow
def test_a_preempted_pack_requeues_and_each_member_resumes(run):
    budget = ("gan/gan", "gan/lsgan", "--partition", "gpu", "--pack", "2", "--epochs", "6", "--limit-batches", "3",
              "--no-aggregate", "--run", "packpre")
    run.ok(*budget)
    run_dir = run.outputs / "packpre"
    pack_id = submitted(run_dir)["groups"][0]["jobs"]["gan/gan"]
    deadline = time.monotonic() + 300
    while not all(status(run_dir, n).get("epoch", 0) >= 2 and (run_dir / n / "checkpoint.pt").exists()
                  for n in ("gan/gan", "gan/lsgan")):
        assert time.monotonic() < deadline, "the members never finished their second epoch"
        time.sleep(0.2)
    # SLURM's warning before a time limit or on preemption: submitit stops the members and requeues the pack.
    subprocess.run(["scancel", "--signal=USR2", pack_id], check=True, timeout=30)

    assert wait_until_ended([pack_id], timeout=900)[pack_id]["State"] == "COMPLETED"
    history = subprocess.run(["sacct", "-n", "-P", "-X", "-D", "-j", pack_id, "-o", "State"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert "REQUEUED" in history, history
    log = Path(status(run_dir, "gan/gan")["log_out"]).read_text()
    for name in ("gan/gan", "gan/lsgan"):
        assert f"[{name}] resuming after epoch" in log, log
        assert status(run_dir, name)["state"] == "completed" and status(run_dir, name)["epoch"] == 6
