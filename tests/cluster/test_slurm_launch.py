"""The SLURM launcher: its pure parts here, then the CLI against the real local cluster of slurm/testcluster/.

The cluster tests (marked ``slurm``) use the cluster of this folder's conftest.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import torch

from cluster_helpers import a_job, run_launcher, sacct, submitted, wait_until_ended
from helpers import ROOT
from slurm import checks, queue, requests
from slurm.checks import Cluster, Node, Partition
from slurm.requests import SlurmError, SlurmFlags


# ---------------------------------------------------------------------------------------------------------
# Without a cluster
# ---------------------------------------------------------------------------------------------------------

def flags(**given):
    return requests.flag_values(SlurmFlags(**given))


def test_flags_override_the_profile_which_overrides_the_job_defaults():
    profile = {"partition": "big", "time": 60, "mem": "8G", "account": "lab"}
    request = requests.resolve(a_job(), profile, "mine.toml", flags(time=15, gpus_per_node=2), {})
    assert (request.partition, request.account, request.mem) == ("big", "lab", "8G")  # profile
    assert (request.time, request.gpus_per_node) == (15, 2)  # flags
    assert (request.cpus_per_task, request.nodes) == (4, 1)  # job defaults
    assert request.tasks_per_node == 2 and request.world_size == 2
    assert request.where("time") == "--time 15" and request.where("mem") == "mem = '8G' in mine.toml"


def test_a_job_with_no_gpu_goes_to_the_profile_cpu_partition_as_one_task():
    profile = {"partition": "gpu", "cpu_partition": "cpu"}
    request = requests.resolve(a_job(gpus_per_node=0), profile, "p.toml", {}, {})
    assert (request.partition, request.tasks_per_node) == ("cpu", 1)
    assert "gpus_per_node" not in request.executor_parameters()
    forced = requests.resolve(a_job(gpus_per_node=0), profile, "p.toml", flags(partition="gpu"), {})
    assert forced.partition == "gpu"


def test_jobs_with_equal_requests_compare_equal_whatever_their_origin():
    one = requests.resolve(a_job("gan/gan"), {}, "", {}, {})
    two = requests.resolve(a_job("gan/wgan"), {}, "", {}, {})
    other = requests.resolve(a_job("gan/wgan", timeout_min=30), {}, "", {}, {})
    assert one == two and hash(one) == hash(two) and one != other


def test_profile_keys_are_checked(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('partition = "gpu"\npartiton = "cpu"\n')
    with pytest.raises(SlurmError, match="unknown key 'partiton'.*valid keys: partition"):
        requests.load_profile(str(path))
    path.write_text('time = "2h"\n')
    with pytest.raises(SlurmError, match="time = '2h' should be a TOML int"):
        requests.load_profile(str(path))
    with pytest.raises(SlurmError, match="profiles: .*local"):
        requests.load_profile("no-such-cluster")


def test_shipped_profiles_load():
    for path in sorted(requests.PROFILES_DIR.glob("*.toml")):
        profile, _ = requests.load_profile(str(path))
        requests.resolve(a_job(), profile, path.name, {}, requests.sbatch_extras(profile, []))


def test_report_options_must_be_arguments_of_aggregate():
    checks.check_report_options({"classifier": "/x/model.pt"}, "mine.toml")
    with pytest.raises(SlurmError, match=r"\[report\] in mine.toml: unknown option\(s\) n_samples"):
        checks.check_report_options({"n_samples": 1000}, "mine.toml")
    with pytest.raises(SlurmError, match=r"classifier = 3 should be a TOML string"):
        checks.check_report_options({"classifier": 3}, "mine.toml")
    assert checks.check_report_options({"rank_by": "best"}, "mine.toml").rank_by == "best"
    with pytest.raises(SlurmError, match=r"rank_by = 'worst'; choose one of 'final', 'best'"):
        checks.check_report_options({"rank_by": "worst"}, "mine.toml")


def test_sbatch_extras_cannot_bypass_the_checked_flags():
    assert requests.sbatch_extras({"sbatch": {"mail-type": "END"}}, ["--begin=now+1hour", "requeue"]) == {
        "mail-type": "END", "begin": "now+1hour", "requeue": True}
    with pytest.raises(SlurmError, match="--partition"):
        requests.sbatch_extras({}, ["partition=gpu"])
    with pytest.raises(SlurmError, match="--gpus-per-node"):
        requests.sbatch_extras({}, ["gres=gpu:2"])
    for short, flag in (("t", "--time"), ("N", "--nodes"), ("c", "--cpus-per-task"), ("C", "--constraint"),
                        ("x", "--exclude"), ("p", "--partition")):
        with pytest.raises(SlurmError, match=f"own flag {flag} "):
            requests.sbatch_extras({"sbatch": {short: "1"}}, [])
    with pytest.raises(SlurmError, match="sets --dependency itself"):
        requests.sbatch_extras({}, ["dependency=afterok:1"])


def test_the_example_profile_documents_every_profile_key():
    example = tomllib.loads((requests.PROFILES_DIR / "example.toml").read_text())
    assert set(example) == set(requests.PROFILE_KEYS)


def test_the_sbatch_options_checked_first_are_those_submitit_writes_into_the_job_script(tmp_path, monkeypatch):
    import shlex

    import submitit

    bin_dir = tmp_path / "bin"  # an sbatch that accepts anything: submitit writes the script, nothing is queued
    bin_dir.mkdir()
    for tool, line in (("sbatch", "echo Submitted batch job 42"), ("srun", "exit 0")):
        (bin_dir / tool).write_text(f"#!/bin/sh\n{line}\n")
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    profile = {"partition": "gpu", "account": "lab", "qos": "normal", "constraint": "a100|h100",
               "exclude": "n[1-2]", "array_parallelism": 4}
    request = requests.resolve(a_job(gpus_per_node=2), profile, "p.toml", {}, {"mail-type": "END", "requeue": True})
    executor = submitit.SlurmExecutor(folder=tmp_path / "submitit")
    executor.update_parameters(job_name="fashion-x", **request.executor_parameters())
    script = executor.submit(print).paths.submission_file.read_text()
    written = {shlex.split(line)[1] for line in script.splitlines() if line.startswith("#SBATCH")}
    # What sbatch_test_only gives separately, or what does not change whether sbatch accepts the job.
    apart = ("--job-name", "--output", "--error", "--open-mode", "--signal", "--wckey")
    assert set(request.sbatch_options()) == {w for w in written if not w.startswith(apart)}


def test_one_row_in_the_option_table_is_all_a_new_option_needs(tmp_path):
    profile = tmp_path / "mine.toml"
    profile.write_text('comment = "from the profile"\n')
    script = f"""
import json
from slurm import options
options.OPTIONS += (options.Option("comment", str, "a note sacct shows", sbatch=("comment",)),)
import jobs, launch
from types import SimpleNamespace
from slurm import requests

job = SimpleNamespace(name="gan/gan", resources=jobs.Resources())
profile, name = requests.load_profile({str(profile)!r})
flags = requests.flag_values(launch.slurm_flags(launch.build_parser().parse_args(["--comment", "from a flag"])))
by_profile = requests.resolve(job, profile, name, {{}}, {{}})
by_flag = requests.resolve(job, profile, name, flags, {{}})
try:
    requests.sbatch_extras({{}}, ["comment=x"])
except requests.SlurmError as err:
    refused = str(err)
print(json.dumps({{"help": launch.build_parser().format_help(), "by_profile": by_profile.executor_parameters(),
                  "by_flag": by_flag.sbatch_options(), "where": by_flag.where("comment"), "refused": refused}}))
"""
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    seen = json.loads(res.stdout)
    assert "--comment COMMENT" in seen["help"] and "a note sacct shows" in seen["help"]
    assert seen["by_profile"]["comment"] == "from the profile"
    assert "--comment=from a flag" in seen["by_flag"] and seen["where"] == "--comment from a flag"
    assert "own flag --comment" in seen["refused"]


def test_signal_comes_well_before_short_time_limits():
    assert requests.signal_delay_s(1) == 12
    assert requests.signal_delay_s(240) == 90
    assert all(requests.signal_delay_s(t) <= 0.25 * t * 60 for t in (1, 2, 5, 60))


def test_slurm_durations_memory_and_gres_are_read():
    assert [requests.parse_minutes(t) for t in ("UNLIMITED", "30", "2:00:00", "1-12:00:00", "10:30")] == [
        None, 30, 120, 2160, 11]
    assert [requests.mem_mb(m) for m in ("16G", "1500M", "2000", "1T")] == [16384, 1500, 2000, 1048576]
    assert [checks.count_gpus(g) for g in ("gpu:2", "gpu:a100:4(S:0-1)", "gpu:a100:2,gpu:v100:2", "(null)")] == [
        2, 4, 4, 0]
    with pytest.raises(SlurmError, match="16 GB.*like 16G"):
        requests.mem_mb("16 GB", "--mem 16 GB")


def small_cluster():
    return Cluster([Partition("cpu", True, "UP", None, None), Partition("gpu", False, "UP", 60, None)],
                   [Node("n1", cpus=8, mem_mb=16000, gpus=2, partitions=("cpu", "gpu"))])


def test_job_defaults_shrink_to_fit_the_nodes_but_what_the_user_asked_is_refused():
    fitted, notes = small_cluster().fit(requests.resolve(a_job(), {}, "", flags(partition="gpu"), {}))
    assert (fitted.mem, fitted.time) == ("16000M", 60)
    assert any("default mem=16G lowered to 16000M" in n for n in notes)
    with pytest.raises(SlurmError, match=r"--mem 20G: .*16000 MB"):
        small_cluster().fit(requests.resolve(a_job(), {}, "", flags(partition="gpu", mem="20G"), {}))
    with pytest.raises(SlurmError, match=r"--gpus-per-node 4: partition gpu's nodes have at most 2 GPUs"):
        small_cluster().fit(requests.resolve(a_job(), {}, "", flags(partition="gpu", gpus_per_node=4), {}))
    with pytest.raises(SlurmError, match=r"--cpus-per-task 6: 2 task\(s\) per node x 6 CPUs"):
        small_cluster().fit(requests.resolve(a_job(), {}, "", flags(gpus_per_node=2, cpus_per_task=6), {}))
    with pytest.raises(SlurmError, match=r"--partition nope: no such partition; partitions here: cpu, gpu"):
        small_cluster().fit(requests.resolve(a_job(), {}, "", flags(partition="nope"), {}))
    unnamed, _ = small_cluster().fit(requests.resolve(a_job(), {}, "", {}, {}))
    assert unnamed.partition == "cpu"  # the cluster's default


def test_sbatch_rejections_name_the_setting_to_fix():
    request = requests.resolve(a_job(), {"account": "lab"}, "mine.toml", flags(constraint="a100"), {})
    err = checks.explain_rejection(
        "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified",
        request, "gan/gan")
    assert "account = 'lab' in mine.toml" in str(err) and "sacctmgr" in str(err)
    err = checks.explain_rejection("allocation failure: Invalid feature specification", request, "gan/gan")
    assert "--constraint a100" in str(err)
    err = checks.explain_rejection("allocation failure: Requested node configuration is not available",
                                     request, "gan/gan")
    assert "gan/gan's default gpus_per_node=1" in str(err) and "--constraint a100" in str(err)


def test_without_slurm_the_error_suggests_local_or_the_test_cluster(tmp_path, fake_fashion_dir):
    bin_dir = tmp_path / "bin"  # this Python, and no SLURM client at all
    bin_dir.mkdir()
    res = run_launcher("gan/gan", "--outputs", str(tmp_path / "outputs"), "--epochs", "1",
                       env={"PATH": str(bin_dir)})
    assert res.returncode == 2, res.stdout + res.stderr
    assert "error:" in res.stdout and "--local" in res.stdout and "slurm/testcluster/start.sh" in res.stdout
    assert "Traceback" not in res.stdout + res.stderr
    assert not (tmp_path / "outputs").exists()


# ---------------------------------------------------------------------------------------------------------
# Against the local cluster
# ---------------------------------------------------------------------------------------------------------

def job_log(run_dir: Path, name: str) -> str:
    """A job's error and every task's log, for a failed assertion's message: a bare 'FAILED' explains nothing
    (a DDP job has one log per rank, and the rank that failed need not be rank 0)."""
    try:
        status = json.loads((run_dir / name / "status.json").read_text())
    except (OSError, ValueError) as error:
        status = {"error": f"no status.json for {name}: {error}"}
    parts = [str(status.get("error") or status.get("reason") or status.get("state"))]
    for log in sorted((run_dir / ".submitit").rglob("*_log.*")):
        tail = log.read_text(errors="replace").splitlines()[-40:]
        parts.append(f"--- {log.relative_to(run_dir)}\n" + "\n".join(tail))
    return "\n".join(parts)


@pytest.mark.slurm
@pytest.mark.slow
def test_every_catalogue_job_completes_and_the_report_starts_after_them(run):
    import jobs

    result = run.ok("--all", "--partition", "gpu", "--epochs", "1", "--limit-batches", "2", "--run", "all")
    run_dir = run.outputs / "all"
    record = submitted(run_dir)
    names = {n: i for g in record["groups"] for n, i in g["jobs"].items()}
    expected_skips = {name for name, job in jobs.CATALOGUE.items()
                      if job.unavailable and job.unavailable(job.make_config({"data_dir": run.data_dir}))}
    assert set(record["skipped"]) == expected_skips
    assert set(names) == set(jobs.CATALOGUE) - expected_skips
    for name in expected_skips:
        assert f"{name}: skipped" in result.stdout
    arrays = [g for g in record["groups"] if g["array"]]
    assert arrays and all(i.startswith(f"{g['slurm_id']}_") for g in arrays for i in g["jobs"].values())
    assert len(record["groups"]) < len(names)

    report_id = record["report"]["slurm_id"]
    assert record["report"]["dependency"] == "afterany:" + ":".join(g["slurm_id"] for g in record["groups"])
    rows = wait_until_ended(list(names.values()), timeout=1500)
    for name, job_id in names.items():
        assert rows[job_id]["State"] == "COMPLETED", (name, rows[job_id], job_log(run_dir, name))
        status = json.loads((run_dir / name / "status.json").read_text())
        assert status["state"] == "completed" and status["slurm_id"] == job_id

    status = run_launcher("--status", "all", "--outputs", str(run.outputs))
    assert status.returncode == 0 and status.stdout.count("COMPLETED") >= len(names), status.stdout

    deadline = time.monotonic() + 120
    while (report := sacct([report_id])[report_id])["State"] == "PENDING":
        assert time.monotonic() < deadline, f"the report job {report_id} never started"
        time.sleep(1.0)
    assert report["Start"] >= max(rows[i]["End"] for i in names.values())  # ISO times sort as text
    # Measuring every model takes minutes of CPU; the report's own tests check what it builds.
    queue.cancel([report_id])


@pytest.mark.slurm
@pytest.mark.slow
def test_two_gpus_train_one_job_as_two_ddp_processes(run):
    run.ok("gan/gan", "--partition", "gpu", "--gpus-per-node", "2", "--epochs", "1", "--limit-batches", "2",
           "--run", "ddp", "--no-aggregate")
    job_id = submitted(run.outputs / "ddp")["groups"][0]["jobs"]["gan/gan"]
    state = wait_until_ended([job_id], timeout=600)[job_id]["State"]
    assert state == "COMPLETED", job_log(run.outputs / "ddp", "gan/gan")
    config = json.loads((run.outputs / "ddp" / "gan/gan" / "config.json").read_text())
    assert config["world_size"] == 2 and config["slurm_job_id"] == job_id
    assert config["threads"] == 1  # the test profile's cpus_per_task, not every core of the node


def nets(run_dir: Path) -> dict:
    return torch.load(run_dir / "gan/gan" / "checkpoint.pt", map_location="cpu", weights_only=False)["nets"]


@pytest.mark.slurm
@pytest.mark.slow
def test_a_preempted_job_requeues_resumes_and_ends_with_the_weights_of_an_uninterrupted_one(run):
    budget = ("gan/gan", "--partition", "gpu", "--epochs", "6", "--limit-batches", "3", "--no-aggregate")
    for name in ("reference", "preempted"):
        run.ok(*budget, "--run", name)
    ids = {name: submitted(run.outputs / name)["groups"][0]["jobs"]["gan/gan"] for name in ("reference", "preempted")}
    folder = run.outputs / "preempted" / "gan/gan"

    deadline = time.monotonic() + 300
    while (json.loads((folder / "status.json").read_text()).get("epoch", 0) < 2 or not (folder / "checkpoint.pt").exists()):
        assert time.monotonic() < deadline, "the job never finished its second epoch"
        time.sleep(0.2)
    # What SLURM does on preemption with a grace time (and before a time limit: --signal): SIGUSR2 to the job.
    subprocess.run(["scancel", "--signal=USR2", ids["preempted"]], check=True, timeout=30)

    rows = wait_until_ended(list(ids.values()), timeout=600)
    logs = "\n".join(job_log(run.outputs / name, "gan/gan") for name in ids)
    assert {rows[i]["State"] for i in ids.values()} == {"COMPLETED"}, logs
    history = subprocess.run(["sacct", "-n", "-P", "-X", "-D", "-j", ids["preempted"], "-o", "State"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert "REQUEUED" in history, history
    status = json.loads((folder / "status.json").read_text())
    log = Path(status["log_out"]).read_text()
    assert "resuming after epoch" in log, log
    assert status["state"] == "completed" and status["epoch"] == 6
    reference, preempted = nets(run.outputs / "reference"), nets(run.outputs / "preempted")
    for net in reference:
        for key, tensor in reference[net].items():
            assert torch.equal(tensor, preempted[net][key]), f"{net}.{key} differs after the resume"


def status_of(folder: Path) -> dict:
    try:
        return json.loads((folder / "status.json").read_text())
    except (OSError, ValueError):  # not written yet, or being replaced
        return {}


@pytest.mark.slurm
@pytest.mark.slow
def test_a_job_that_times_out_more_often_than_its_requeues_allow_says_so(run):
    with run.profile.open("a") as profile:
        profile.write("max_requeues = 1\n")
    # Under 10 minutes every warning counts as a time-out for submitit (and SLURM_RESTART_COUNT as one more).
    run.ok("gan/gan", "--partition", "gpu", "--time", "5", "--epochs", "500", "--limit-batches", "2",
           "--run", "short", "--no-aggregate")
    job_id = submitted(run.outputs / "short")["groups"][0]["jobs"]["gan/gan"]
    folder = run.outputs / "short" / "gan/gan"
    log = Path(status_of(folder)["log_out"])
    for run_number in (1, 2):  # the first warning requeues the job, the second finds no requeue left
        deadline = time.monotonic() + 300
        # Warned once an epoch is saved (the requeued run resumes from it), the second time in the requeued run.
        while (status_of(folder).get("epoch", 0) < 1 or not (folder / "checkpoint.pt").exists()
               or (log.read_text() if log.exists() else "").count("resuming after epoch") < run_number - 1):
            assert time.monotonic() < deadline, f"run {run_number} never trained: {job_log(run.outputs / 'short', 'gan/gan')}"
            time.sleep(0.2)
        subprocess.run(["scancel", "--signal=USR2", job_id], check=True, timeout=30)
    assert wait_until_ended([job_id], timeout=300)[job_id]["State"] == "FAILED"
    error = status_of(folder)["error"]
    assert error.startswith("timed out 2 times, no requeues left") and "larger --time" in error, error


@pytest.mark.slurm
@pytest.mark.parametrize("flag, value, expected", [
    ("--partition", "nope", "--partition nope: no such partition; partitions here: cpu, gpu"),
    ("--account", "nope", "--account nope"),
    ("--gpus-per-node", "64", "--gpus-per-node 64: partition gpu's nodes have at most"),
    ("--cpus-per-task", "512", "--cpus-per-task 512"),
    ("--constraint", "nofeature", "--constraint nofeature"),
])
def test_impossible_requests_get_a_clear_error_and_nothing_is_written(run, flag, value, expected):
    args = ["gan/gan", "--epochs", "1", flag, value]
    result = run(*args) if flag == "--partition" else run(*args, "--partition", "gpu")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "error:" in result.stdout and expected in result.stdout, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert not run.outputs.exists()


@pytest.mark.slurm
def test_a_queued_job_is_not_submitted_twice_and_cancel_marks_it(run):
    later = ("gan/gan", "--partition", "gpu", "--run", "later", "--sbatch", "begin=now+1hour")
    assert run(*later).returncode == 0
    run_dir = run.outputs / "later"
    job_id = submitted(run_dir)["groups"][0]["jobs"]["gan/gan"]
    assert json.loads((run_dir / "gan/gan" / "status.json").read_text())["state"] == "queued"

    again = run(*later)
    assert again.returncode == 2 and f"SLURM job {job_id}, PENDING" in again.stdout, again.stdout

    cancelled = run_launcher("--cancel", "later", "--outputs", str(run.outputs))
    assert cancelled.returncode == 0 and job_id in cancelled.stdout, cancelled.stdout
    assert wait_until_ended([job_id], timeout=60)[job_id]["State"] == "CANCELLED"
    assert json.loads((run_dir / "gan/gan" / "status.json").read_text())["state"] == "cancelled"


@pytest.mark.slurm
@pytest.mark.slow
def test_each_seed_is_its_own_array_task_with_its_own_folder(run):
    run.ok("gan/gan", "--seeds", "2", "--partition", "gpu", "--epochs", "1", "--limit-batches", "2",
           "--run", "seeds", "--no-aggregate")
    (group,) = submitted(run.outputs / "seeds")["groups"]
    assert group["array"] and sorted(group["jobs"]) == ["gan/gan", "gan/gan.seed1"]
    assert sorted(group["jobs"].values()) == [f"{group['slurm_id']}_0", f"{group['slurm_id']}_1"]
    rows = wait_until_ended(list(group["jobs"].values()), timeout=600)
    for name, seed in (("gan/gan", 0), ("gan/gan.seed1", 1)):
        assert rows[group["jobs"][name]]["State"] == "COMPLETED", (name, rows)
        assert json.loads((run.outputs / "seeds" / name / "config.json").read_text())["config"]["seed"] == seed
    status = run_launcher("--status", "seeds", "--outputs", str(run.outputs))
    assert status.returncode == 0 and "gan/gan.seed1" in status.stdout and status.stdout.count("COMPLETED") == 2


def submitit_public_names() -> dict[str, set[str]]:
    """submitit's public surface (it has no ``__all__``): what its ``__init__`` exports, and ``helpers``."""
    import inspect

    import submitit

    def exported(module) -> set[str]:
        return {n for n, v in vars(module).items() if not n.startswith("_") and not inspect.ismodule(v)}

    return {"submitit": exported(submitit) | {"helpers"}, "submitit.helpers": exported(submitit.helpers)}


def private_submitit_uses(source: str) -> list[str]:
    """Every use of submitit in ``source`` that goes past its public surface: a module path such as
    ``submitit.core.utils.X`` (attributes or imports), or a private name anywhere along a chain."""
    import ast

    public = submitit_public_names()
    found, roots = [], {}  # roots: a local name -> the submitit module it is bound to
    tree = ast.parse(source)

    def check(path: list[str], line: int) -> None:
        module = "submitit.helpers" if path[1:2] == ["helpers"] else "submitit"
        rest = path[2:] if module == "submitit.helpers" else path[1:]
        if (rest and rest[0] not in public[module]) or any(p.startswith("_") for p in path[1:]):
            found.append(f"{line}: {'.'.join(path)}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "submitit":
                    check(alias.name.split("."), node.lineno)
                    roots[alias.asname or "submitit"] = alias.name.split(".") if alias.asname else ["submitit"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "submitit":
            for alias in node.names:
                check([*node.module.split("."), alias.name], node.lineno)
                roots[alias.asname or alias.name] = [*node.module.split("."), alias.name]
    inner = {id(n.value if isinstance(n, ast.Attribute) else n.func) for n in ast.walk(tree)
             if isinstance(n, (ast.Attribute, ast.Call))}  # parts of a longer chain, checked with it
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in inner:
            chain, base = [], node
            while isinstance(base, (ast.Attribute, ast.Call)):
                if isinstance(base, ast.Attribute):
                    chain.insert(0, base.attr)
                base = base.func if isinstance(base, ast.Call) else base.value
            if isinstance(base, ast.Name) and base.id in roots:
                check([*roots[base.id], *chain], node.lineno)
    return sorted(found, key=lambda use: int(use.split(":")[0]))


def test_the_checker_sees_module_paths_and_private_names_of_submitit():
    probe = ("import submitit\nfrom submitit.core.utils import FailedJobError\nimport submitit.core.job_environment\n"
             "from submitit import helpers as h\n"
             "def f(err):\n    return isinstance(err, submitit.core.utils.UncompletedJobError)\n"
             "x = submitit.JobEnvironment()._requeue\ny = h._checkpoint\nz = submitit.helpers.core.utils\n")
    assert [line.split(":")[0] for line in private_submitit_uses(probe)] == ["2", "3", "6", "7", "8", "9"]
    fine = ("import submitit\nfrom submitit import helpers\nfrom submitit.helpers import DelayedSubmission\n"
            "a = submitit.SlurmExecutor(folder='x').update_parameters\nb = submitit.helpers.Checkpointable\n"
            "c = helpers.TorchDistributedEnvironment().export()\n")
    assert private_submitit_uses(fine) == []


def test_the_slurm_layer_uses_only_the_public_api_of_submitit():
    paths = sorted((ROOT / "slurm").rglob("*.py")) + sorted((ROOT / "jobs").rglob("*.py")) + [ROOT / "launch.py"]
    private = {str(p.relative_to(ROOT)): found for p in paths if (found := private_submitit_uses(p.read_text()))}
    assert private == {}


def test_a_train_job_travels_with_its_typed_config_by_reference_to_the_installed_class():
    import cloudpickle

    import jobs
    from jobs.runner import TrainJob

    config = jobs.get("gan/wgan_gp").make_config({"gp_weight": "5"})
    data = cloudpickle.dumps(TrainJob("gan/wgan_gp", config, "/somewhere"))
    import pickletools

    names = {arg for _, arg, _ in pickletools.genops(data) if isinstance(arg, str)}
    assert {type(config).__module__, type(config).__qualname__} <= names  # imported by name on the node
    assert not any("skeleton_class" in name for name in names)  # not rebuilt from a pickled copy of the class
    assert cloudpickle.loads(data).config == config
