"""Hostile input: every bad command or damaged file is refused or contained, and finished results never change.

Each row of CASES is a command run against a run folder holding one completed and one partly trained job,
with the expected exit code, a fragment of the message, and where (if anywhere) the outputs tree may change:
a checksum of everything else is taken before and after.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import jobs
import launch
from helpers import ROOT, TrainedJob, copy_job, make_fake_fashion
from fashion import artifacts
from fashion.checkpoint import ChangedSettings
from jobs import preflight

BASE = ["--epochs", "3", "--batch-size", "16", "--limit-batches", "2", "--run", "done"]
SETTINGS = {"epochs": "3", "batch_size": "16", "limit_batches": "2"}


def tree_checksum(root: Path, ignore: tuple[str, ...] = ()) -> dict[str, str]:
    """Every file under ``root`` (except lock files and those under an ``ignore`` prefix): content hash, mode."""
    sums = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and path.name != artifacts.LOCK_FILE and not any(rel.startswith(p) for p in ignore):
            sums[rel] = f"{hashlib.sha256(path.read_bytes()).hexdigest()} {oct(path.stat().st_mode)}"
    return sums


def write_job(folder: Path, name: str, state: str, epoch: int) -> None:
    """A job folder as training leaves it (the checkpoint's contents do not matter to the launcher)."""
    config = dataclasses.asdict(jobs.get(name).make_config(SETTINGS))
    artifacts.write_json(folder / "config.json", {"job": name, "config": config})
    artifacts.write_bytes(folder / "checkpoint.pt", b"weights")
    artifacts.write_text(folder / "history.csv", "epoch,loss\n" + "".join(f"{e},0.5\n" for e in range(1, epoch + 1)))
    artifacts.write_json(folder / "metrics.json", {"job": name, "epochs": epoch})
    artifacts.write_status(folder, state, job=name, epoch=epoch, epochs=3)


@pytest.fixture
def outputs(tmp_path, fake_fashion_dir):
    """outputs/done: gan/gan completed (3 epochs), gan/lsgan interrupted after epoch 1."""
    root = tmp_path / "outputs"
    write_job(root / "done" / "gan" / "gan", "gan/gan", "completed", 3)
    write_job(root / "done" / "gan" / "lsgan", "gan/lsgan", "interrupted", 1)
    return root


def corrupt_status(root):
    (root / "done" / "gan" / "gan" / "status.json").write_text('{"state": "compl')


def current_report(root):
    """The run's report as --aggregate leaves it, up to date with its jobs (what --publish needs)."""
    rows = [{"job": "gan/gan", "state": "completed", "epochs_done": 3},
            {"job": "gan/lsgan", "state": "interrupted", "epochs_done": 1}]
    artifacts.write_json(root / "done" / "report" / "summary.json", {"rows": rows})


def swept_report(root):
    """outputs/done as a sweep whose report picked its best trials by the final generator's FID."""
    artifacts.write_json(root / "done" / "sweep.json", {"seed": 0, "models": {"gan/gan": {
        "space": ["lr_g=1e-4,2e-4"], "trials": {"g00": {"lr_g": 1e-4}, "g01": {"lr_g": 2e-4}}}}})
    trial = {"trial": "g00", "best": True, "fid": {"n": 1, "mean": 20.0}, "stamp": "s"}
    artifacts.write_json(root / "done" / "report" / "summary.json", {"rows": [], "sweep": {
        "rank_by": "final", "models": {"gan/gan": {"space": ["lr_g=1e-4,2e-4"], "trials": [trial]}}}})


def hold_lock(root):
    return artifacts.JobLock(root / "done" / "gan" / "lsgan").acquire()


def no_data(root):
    os.environ["FASHION_MNIST_DIR"] = str(root.parent / "nowhere")


def truncated_data(root):
    folder = Path(os.environ["FASHION_MNIST_DIR"])
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))


@dataclass
class Case:
    what: str
    argv: list[str]
    code: int
    message: str
    may_change: tuple[str, ...] = ()
    setup: object = None
    extra_out: str = ""  # a second fragment
    absent: str = ""  # a fragment the output must not hold (a decision announced before a refusal)


CASES = [
    # 1: dry runs never touch a real run, and cannot reach outside outputs/
    Case("dry run named like a finished run", ["gan/gan", "--dry-run", *BASE], 0, "pass", (".dry-run/",)),
    Case("dry run named with a path", ["gan/gan", "--dry-run", "--run", "/tmp/v"], 2, "plain folder name"),
    Case("run name climbing out", ["gan/gan", "--local", "--run", "../x"], 2, "plain folder name"),
    # 2: empty names are errors, never a launch
    Case("empty --status", ["--status", ""], 2, "not empty"),
    Case("blank --status", ["--status", "  "], 2, "not empty"),
    Case("empty --aggregate", ["--aggregate", ""], 2, "not empty"),
    Case("empty --cancel", ["--cancel", ""], 2, "not empty"),
    Case("empty --run", ["gan/gan", "--local", "--run", ""], 2, "not empty"),
    # 3: a resume with changed settings is refused, naming the keys and the way out
    Case("resume with another batch size", ["gan/lsgan", "--local", *BASE, "--batch-size", "32"], 2,
         "batch_size 16 -> 32", extra_out="--force"),
    Case("resume with another learning rate", ["gan/lsgan", "--local", *BASE, "--set", "lr_g=0.5"], 2,
         "lr_g 0.0002 -> 0.5"),
    Case("completed job launched again", ["gan/gan", "--local", *BASE], 0, "already completed"),
    Case("completed job with fewer epochs", ["gan/gan", "--local", *BASE, "--epochs", "2"], 0, "already completed"),
    # 4: a job another process trains is refused
    Case("job held by a live process", ["gan/lsgan", "--local", *BASE], 2, "in use by another process",
         setup=hold_lock),
    # 6: a corrupt status.json affects only its job
    Case("status of a run with a corrupt status.json", ["--status", "done"], 0, "corrupt", setup=corrupt_status,
         extra_out="status.json"),
    Case("launching a job whose status.json is corrupt", ["gan/gan", "--local", *BASE], 0, "corrupt, skipped",
         setup=corrupt_status, extra_out="--force"),
    # 8, 14: what would only fail inside the job is checked before anything starts
    Case("--nproc not dividing the batch", ["gan/lsgan", "--local", *BASE, "--nproc", "3"], 2, "split evenly"),
    Case("--pack 0", ["gan/lsgan", "--local", *BASE, "--pack", "0"], 2, "--pack 0: must be at least 1"),
    Case("--pack with DDP processes", ["gan/lsgan", "--local", *BASE, "--pack", "2", "--nproc", "2"], 2,
         "only jobs of one process, one GPU and one node"),
    Case("--pack with a multi-GPU SLURM request", ["gan/lsgan", *BASE, "--pack", "2", "--gpus-per-node", "2"], 2,
         "drop --pack"),
    Case("missing data, local", ["gan/lsgan", "--local", *BASE], 2, "IDX files", setup=no_data),
    Case("truncated data, local", ["gan/lsgan", "--local", *BASE], 2, "truncated", setup=truncated_data),
    Case("missing data, SLURM", ["gan/lsgan", *BASE, "--partition", "x"], 2, "--no-data-check", setup=no_data),
    Case("a --data-dir that does not exist", ["gan/lsgan", *BASE, "--data-dir", "/nonexistent"], 2, "/nonexistent"),
    # 9: settings
    Case("infinite learning rate", ["gan/gan", "--local", *BASE, "--set", "lr_g=inf"], 2, "finite"),
    Case("zero learning rate", ["vae/conv", "--local", *BASE, "--set", "lr=0"], 2, "must be positive"),
    Case("bad setting for a job not selected", ["gan/lsgan", "--local", *BASE, "--set", "gan/wgan_gp:gp_weight=x"],
         2, "gp_weight"),
    Case("outputs that cannot be written", ["gan/lsgan", "--local", *BASE, "--outputs", "/proc/fashion-out"], 2,
         "cannot write /proc/fashion-out"),
    # 11: --force checks everything before moving anything
    Case("--force with a bad SLURM request", ["gan/gan", *BASE, "--force", "--partition", "nope"], 2, "error"),
    # review fixes: every flag is checked before anything is decided, and bounds answer at once
    Case("--outputs naming a file", ["gan/gan", "--local", *BASE, "--outputs", "/proc/version"], 2, "not a folder"),
    Case("--outputs inside a file", ["--status", "done", "--outputs", "/proc/version/runs"], 2, "not a folder",
         extra_out="/proc/version is a file"),
    Case("--publish into a folder that cannot be made", ["--publish", "done", "--out", "/proc/fashion-results"], 2,
         "cannot publish to /proc/fashion-results", setup=current_report),
    Case("--seeds beyond the bound", ["gan/gan", "--seeds", "100000", "--plan"], 2, "at most 1000 seeds"),
    Case("seeds times jobs beyond the bound", ["--all", "--seeds", "1000", "--plan"], 2, "at most 10,000"),
    Case("--pack 0 on a job that would train on", ["gan/gan", "--local", *BASE, "--epochs", "5", "--pack", "0"], 2,
         "--pack 0: must be at least 1", absent="training on"),
    # sweeps: every bad space is refused before anything is written, naming the fix
    Case("--sweep of an unknown key", ["gan/gan", "--local", *BASE, "--sweep", "lr=1e-4,2e-4"], 2,
         "unknown setting 'lr' for gan/gan"),
    Case("--sweep of a key one model lacks", ["gan/*", "--plan", "--sweep", "gp_weight=1,10"], 2,
         "--sweep JOB:KEY"),
    Case("--sweep of a value of the wrong type", ["gan/gan", "--plan", "--sweep", "n_critic=1,two"], 2,
         "n_critic='two': expected int"),
    Case("--sweep with a float range for an integer", ["gan/gan", "--plan", "--sweep", "n_critic=uniform(1,5)",
                                                       "--trials", "2"], 2, "use int(A,B)"),
    Case("--sweep with an inverted range", ["gan/gan", "--plan", "--sweep", "lr_g=uniform(0.1,0.01)", "--trials", "2"],
         2, "inverted range"),
    Case("--sweep with an empty range", ["gan/gan", "--plan", "--sweep", "beta1=uniform(0.5,0.5)", "--trials", "2"], 2,
         "empty or inverted range"),
    Case("--sweep loguniform at 0", ["gan/gan", "--plan", "--sweep", "lr_g=loguniform(0,1)", "--trials", "2"], 2,
         "loguniform needs 0 < A < B"),
    Case("--sweep with an unknown distribution", ["gan/gan", "--plan", "--sweep", "lr_g=normal(0,1)", "--trials", "2"],
         2, "unknown distribution 'normal'"),
    Case("--sweep of the seed", ["gan/gan", "--plan", "--sweep", "seed=1,2"], 2, "use --seeds N"),
    Case("--sweep beyond the trial bound", ["gan/gan", "--plan", "--sweep", "lr_g=loguniform(1e-5,1e-2)",
                                            "--trials", "5000"], 2, "at most 1000 per model"),
    Case("--sweep and --set of one key", ["gan/gan", "--local", *BASE, "--sweep", "lr_g=1e-4,2e-4", "--set",
                                          "lr_g=1e-3"], 2, "drop one of them"),
    Case("--sweep for a model not selected", ["gan/gan", "--plan", "--sweep", "gan/wgan_gp:gp_weight=1,10"], 2,
         "gan/wgan_gp is not among the selected models"),
    Case("--sweep range without --trials", ["gan/gan", "--plan", "--sweep", "lr_g=loguniform(1e-5,1e-2)"], 2,
         "need --trials N"),
    Case("--trials without a range", ["gan/gan", "--plan", "--trials", "3"], 2, "nothing to draw"),
    Case("--trials 0", ["gan/gan", "--plan", "--sweep", "lr_g=loguniform(1e-5,1e-2)", "--trials", "0"], 2,
         "need --trials N"),
    Case("--sweep-space unknown", ["gan/gan", "--plan", "--sweep-space", "wide", "--trials", "2"], 2,
         "unknown; spaces: lucic"),
    Case("--sweep-space for a family it lacks", ["vae/conv", "--plan", "--sweep-space", "lucic", "--trials", "2"], 2,
         "no dimensions for vae/conv", extra_out="the space covers every model of gans"),
    Case("--sweep-seed negative", ["gan/gan", "--plan", "--sweep", "lr_g=1e-4,2e-4", "--sweep-seed", "-1"], 2,
         "seeds are 0 or more"),
    Case("a malformed --sweep", ["gan/gan", "--plan", "--sweep", "lr_g"], 2, "expected KEY=V1,V2"),
    Case("--best-of a run without a sweep", ["--best-of", "done", "--seeds", "3", "--plan"], 2, "holds no sweep"),
    Case("--best-of with job names", ["gan/gan", "--best-of", "done", "--seeds", "3"], 2, "picks the jobs"),
    Case("--best-of without --seeds", ["--best-of", "done", "--plan"], 2, "give the seeds"),
    Case("--best-of an unknown run", ["--best-of", "nope", "--seeds", "3"], 2, "no run 'nope'"),
    # --rank-by: with what builds a report or picks best trials, and as the sweep's report picked them
    Case("--rank-by with --status", ["--status", "done", "--rank-by", "best"], 2, "--rank-by best with --status",
         extra_out="drop one of them"),
    Case("--rank-by with --no-aggregate", ["gan/gan", "--local", *BASE, "--rank-by", "best", "--no-aggregate"], 2,
         "--rank-by chooses how a report ranks"),
    Case("--rank-by with --plan", ["gan/gan", "--plan", "--rank-by", "final"], 2, "--rank-by final with --plan"),
    Case("--best-of --rank-by other than its report's", ["--best-of", "done", "--rank-by", "best", "--seeds", "3",
                                                        "--plan"], 2, "picked the best trials by the final checkpoint",
         setup=swept_report, extra_out="--aggregate done --rank-by best"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.what for c in CASES])
def test_hostile_input_is_refused_or_contained(case, outputs, capsys, monkeypatch):
    monkeypatch.setenv("FASHION_MNIST_DIR", os.environ["FASHION_MNIST_DIR"])  # restored after setup edits it
    monkeypatch.setenv("COLUMNS", "300")
    held = case.setup(outputs) if case.setup else None
    before = tree_checksum(outputs, case.may_change)
    try:
        code = launch.main(["--outputs", str(outputs), *case.argv])
    finally:
        if held is not None:
            held.release()
    out = " ".join(capsys.readouterr().out.split())
    assert code == case.code, out
    assert case.message in out and case.extra_out in out, out
    assert not case.absent or case.absent not in out, out
    assert tree_checksum(outputs, case.may_change) == before


def test_an_unknown_rank_by_is_refused_naming_the_choices(outputs, capsys):
    with pytest.raises(SystemExit) as exit_:
        launch.main(["--aggregate", "done", "--outputs", str(outputs), "--rank-by", "worst"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "argument --rank-by: invalid choice: 'worst'" in err
    assert "final" in err.split("choose from")[1] and "best" in err.split("choose from")[1]


def test_force_replaces_a_job_with_a_corrupt_status(outputs):
    corrupt_status(outputs)
    todo, replace, _ = preflight.decide([jobs.get("gan/gan")], {"gan/gan": jobs.get("gan/gan").make_config(SETTINGS)},
                                     outputs / "done", force=True)
    assert [j.name for j in todo] == ["gan/gan"] and replace == ["gan/gan"]


def test_a_completed_job_with_more_epochs_is_trained_on(outputs):
    config = jobs.get("gan/gan").make_config({**SETTINGS, "epochs": "5"})
    todo, replace, notes = preflight.decide([jobs.get("gan/gan")], {"gan/gan": config}, outputs / "done", force=False)
    assert [j.name for j in todo] == ["gan/gan"] and replace == []
    assert any("training on to 5" in note for note in notes)


def test_a_failed_write_names_the_path_and_leaves_no_temp_file(tmp_path, monkeypatch):
    import errno

    def disk_full(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(artifacts.WriteError, match=f"cannot write {tmp_path / 'a.json'}: the disk is full"):
        artifacts.write_json(tmp_path / "a.json", {})
    assert list(tmp_path.iterdir()) == []


def test_a_job_out_of_requeues_says_it_timed_out_plainly(tmp_path, monkeypatch):
    from jobs.runner import TrainJob, failure

    artifacts.write_status(tmp_path, "running", epoch=4)
    job = TrainJob("gan/gan", None, str(tmp_path), max_requeues=3)
    err = RuntimeError("Job not requeued")  # what submitit raises in the job once it gives up
    monkeypatch.setenv("SLURM_RESTART_COUNT", "3")
    assert failure(err, job) == "RuntimeError: Job not requeued"  # no warning from SLURM: the job's own error
    job.checkpoint()  # SLURM's warning: submitit asks for a checkpoint, then requeues the job or gives up
    assert failure(err, job).startswith("timed out 4 times, no requeues left") and "after epoch 4" in failure(err, job)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "2")  # a requeue was left: this error is not the time-out's
    assert failure(err, job) == "RuntimeError: Job not requeued"
    assert not job.checkpoint().function.warned  # the requeued copy starts afresh


def test_the_report_flags_a_corrupt_history_and_missing_samples(outputs):
    from fashion.runfolder import read_job

    (outputs / "done" / "gan" / "gan" / "history.csv").write_bytes(b"\xff\xfe\x00garbage")
    errors = " ".join(read_job(outputs / "done", "gan/gan").errors)
    assert "history.csv: unreadable" in errors and "samples: missing" in errors


def test_summary_table_keeps_a_multi_line_error_on_its_row(tmp_path):
    from fashion.report.summary import write_summaries

    write_summaries(tmp_path, "r", {}, [{"job": "gan/gan", "state": "failed", "note": "Boom\nline two | x"}])
    rows = [line for line in (tmp_path / "summary.md").read_text().splitlines() if line.startswith("| gan/gan")]
    assert len(rows) == 1 and "Boom line two \\| x" in rows[0]


def test_outputs_honour_the_umask(tmp_path):
    script = ("import sys; from fashion import artifacts; "
              "artifacts.write_text(sys.argv[1], 'x'); import os; print(oct(os.stat(sys.argv[1]).st_mode & 0o777))")
    res = subprocess.run(["sh", "-c", f'umask 002 && exec "{sys.executable}" -c "{script}" {tmp_path / "f.txt"}'],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.stdout.strip() == "0o664", res.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file whatever its permissions")
def test_an_unreadable_data_file_is_not_called_corrupt(tmp_path):
    from fashion.data import DataError, read_idx

    path = make_fake_fashion(tmp_path / "d", 20, 20) / "t10k-labels-idx1-ubyte.gz"
    path.chmod(0)
    with pytest.raises(DataError, match="no permission"):
        read_idx(path)


# ---------------------------------------------------------------------------------------------------------
# The training loop's own defences (a SLURM requeue never passes the launcher)
# ---------------------------------------------------------------------------------------------------------

@pytest.fixture
def job(trained_job, tmp_path, monkeypatch) -> TrainedJob:
    """A copy of the session's trained job (conftest's trained_job), its data set where the loaders look."""
    monkeypatch.setenv("FASHION_MNIST_DIR", str(trained_job.data))
    copy_job(trained_job.folder, tmp_path / "job", link=False)  # resumed here: a copy, not links
    return trained_job._replace(folder=tmp_path / "job")


def test_fit_refuses_to_resume_with_changed_settings(job):
    from fashion.training import fit

    before = tree_checksum(job.folder)
    with pytest.raises(ChangedSettings, match="batch_size 16 -> 32"):
        fit(jobs.get(job.name).task, dataclasses.replace(job.config, batch_size=32), job.folder, job.name)
    assert tree_checksum(job.folder) == before


def test_fit_extends_with_more_epochs_records_it_and_removes_stale_temp_files(job):
    from fashion.training import fit

    stale = job.folder / ".checkpoint.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    fit(jobs.get(job.name).task, dataclasses.replace(job.config, epochs=2), job.folder, job.name)
    assert not stale.exists()
    status = artifacts.read_status(job.folder)
    assert status["state"] == "completed" and status["epoch"] == 2
    resumes = json.loads((job.folder / "config.json").read_text())["resumes"]
    assert resumes[-1]["after_epoch"] == 1 and resumes[-1]["changed"] == {"epochs": {"was": 1, "now": 2}}


def test_fit_refuses_a_job_folder_another_process_holds(job):
    from fashion.training import fit

    before = tree_checksum(job.folder)
    with artifacts.JobLock(job.folder):
        with pytest.raises(artifacts.JobBusy, match="in use by another process"):
            fit(jobs.get(job.name).task, dataclasses.replace(job.config, epochs=2), job.folder, job.name)
    assert tree_checksum(job.folder) == before


# ---------------------------------------------------------------------------------------------------------
# Signals: a --local run stops, is marked, and leaves nothing training headless
# ---------------------------------------------------------------------------------------------------------

def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (an exited orphan its new parent has not reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _gone(pid: int, within_s: float = 30.0) -> bool:
    """The trainer exits on its own soon after the launcher (it first marks the job, under load that can
    take a few seconds); still alive after ``within_s`` means it was left training headless."""
    deadline = time.monotonic() + within_s
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _ignore_sigint():  # what a shell does to `cmd &` in a script
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("sig, background", [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGTERM, True)],
                         ids=["SIGTERM", "SIGINT", "SIGTERM-started-in-background"])
def test_a_signal_stops_a_local_run_and_leaves_it_interrupted(sig, background, fake_fashion_dir, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "launch.py", "gan/gan", "--local", "--outputs", str(out), "--run", "r",
                             "--epochs", "500", "--batch-size", "16", "--set", "cpu=true", "--set", "snapshot_every=0",
                             "--no-aggregate"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"}, preexec_fn=_ignore_sigint if background else None)
    folder = out / "r" / "gan" / "gan"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = artifacts.read_status(folder)
        if status.get("state") == "running" and status.get("pid"):
            break
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the job never started")
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=60)
    status = artifacts.read_status(folder)
    assert proc.returncode == 130, output
    assert status["state"] == "interrupted" and status["interrupted"] > status["started"], status
    assert _gone(status["pid"]), "the trainer is still running"
    assert "resume" in output


def test_settings_that_leave_training_untouched_or_are_new_since_do_not_block_a_resume():
    from fashion.checkpoint import changed_settings

    saved = {"lr_g": 2e-4, "data_dir": "/a", "eval_samples": 10000, "log_with": ""}  # an older config: no photo_dir
    new = {"lr_g": 2e-4, "data_dir": "/b", "eval_samples": 500, "log_with": "tensorboard", "photo_dir": "/p"}
    refused, accepted = changed_settings(saved, new, epochs_done=1)
    assert refused == {} and set(accepted) == {"data_dir", "eval_samples", "log_with"}
    refused, _ = changed_settings(saved, {**new, "lr_g": 1e-3}, epochs_done=1)
    assert refused == {"lr_g": (2e-4, 1e-3)}


def test_a_tuple_setting_read_back_from_config_json_as_a_list_is_no_change():
    from fashion.checkpoint import changed_settings

    config = dataclasses.asdict(jobs.get("classify/cnn").make_config())
    saved = json.loads(json.dumps(config))  # what the launcher reads from config.json
    assert isinstance(config["fgsm_epsilons"], tuple) and isinstance(saved["fgsm_epsilons"], list)
    assert changed_settings(saved, config, epochs_done=1) == ({}, {})
