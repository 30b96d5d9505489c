"""``--publish RUN``: a compact copy of a run's results that says what ran and whether it was full length."""
import dataclasses
import hashlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest
from PIL import Image
from rich.console import Console

import jobs
from helpers import copy_job, data_at, fit_tiny
from fashion import artifacts
from fashion.classify.networks import ConvClassifier, save_classifier
from fashion.report import aggregate
from fashion.report.publish import PublishError, publish, spread

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 2


def catalogue(**changes) -> dict[str, dict]:
    """What a full-length job is, per model: the catalogue's configs, with ``changes`` applied to all."""
    return {job.name: {**dataclasses.asdict(job.make_config()), **changes} for job in jobs.CATALOGUE.values()}


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def build_report(run: Path) -> None:
    assert aggregate(run, console=Console(file=io.StringIO())) == 0


@pytest.fixture(scope="module")
def run(trained_job, tmp_path_factory) -> Path:
    """gan/cgan from seeds 0 and 1 for two tiny epochs, a classifier job, and the run's report. Seed 0 is the
    session's trained job resumed for its second epoch (resuming is exact: tests/test_training.py)."""
    run = tmp_path_factory.mktemp("outputs") / "study"
    copy_job(trained_job.folder, run / "gan/cgan", link=False)  # trained further: a copy, not links
    with data_at(trained_job.data):
        for name in ("gan/cgan", "gan/cgan.seed1"):
            fit_tiny(name, run / name, epochs=EPOCHS)
        save_classifier(run / "classify/cnn/model.pt", ConvClassifier().eval(), "cnn", test_accuracy=0.5)
        artifacts.write_json(run / "classify/cnn/metrics.json", {
            "job": "classify/cnn", "state": "completed", "epochs": EPOCHS, "test_accuracy": 0.5,
            "fgsm": {"epsilon": [0.0, 0.05], "accuracy_garment_pixels": [0.5, 0.25], "accuracy_all_pixels": [0.5, 0.2]}})
        artifacts.write_status(run / "classify/cnn", "completed", epoch=EPOCHS, epochs=EPOCHS)
        build_report(run)
    return run


@pytest.fixture(scope="module")
def published(run, tmp_path_factory):
    dest = tmp_path_factory.mktemp("repo") / "results"
    return dest, publish(run, dest, catalogue())


def test_the_publication_holds_the_reports_tables_and_its_own_pictures(run, published):
    dest, settings = published
    for name in ("summary.md", "summary.csv", "summary.json", "models.csv", "fid_curves.png"):
        assert (dest / name).read_bytes() == (run / "report" / name).read_bytes(), name
    with Image.open(dest / "contact_sheet.png") as sheet:  # a 256-colour PNG, big enough to see the grids
        assert sheet.mode == "P" and min(sheet.size) > 300
    frames = iio.imread(dest / "gifs/gan_cgan.gif", index=None)
    assert frames.shape[0] == EPOCHS  # one frame per epoch of seed 0
    assert settings["gifs"] == {"gan/cgan": "gifs/gan_cgan.gif"} and settings["contact_sheet"] == "contact_sheet.png"
    assert not any(p.name.startswith(".") for p in dest.parent.iterdir())  # the building folder is gone


def test_the_settings_say_what_ran(published):
    dest, _ = published
    settings = json.loads((dest / "settings.json").read_text())
    job = settings["jobs"]["gan/cgan.seed1"]
    assert settings["seeds"]["gan/cgan"] == [0, 1] and job["seed"] == 1 and job["state"] == "completed"
    assert job["epochs_done"] == EPOCHS and job["batch_size"] == 16 and job["device"] == "cpu"
    assert settings["git"] and all(len(sha) >= 7 for sha in settings["git"])
    assert settings["epochs"] == f"{EPOCHS} of 50 (2 jobs); {EPOCHS} of 15 (1 job)"  # the GANs and the classifier
    assert "gan/gan" in settings["not_run"] and "gan/cgan" not in settings["not_run"]
    assert settings["published"].endswith("UTC") and settings["trained"][0].endswith("UTC")


def test_a_run_shorter_than_the_catalogue_is_labelled_partial_everywhere(published):
    dest, settings = published
    reasons = settings["jobs"]["gan/cgan"]["partial"]
    assert settings["partial"] is True
    assert f"{EPOCHS} of 50 epochs" in reasons and "limit_batches=2 (full: no limit)" in reasons
    assert "train_subset=256 (full: no limit)" in reasons
    readme = (dest / "README.md").read_text()
    assert readme.splitlines()[2].startswith("**PARTIAL**: ") and f"{EPOCHS} of 50 epochs (2 jobs)" in readme
    assert f"{EPOCHS} of 15 epochs (classify/cnn)" in readme  # a reason of one job names it
    assert f"classify/cnn: {EPOCHS} of 15 epochs" in settings["partial_reasons"]  # the classifier job too


def test_a_run_at_the_catalogues_budget_is_not_partial(run, tmp_path):
    full = catalogue(epochs=EPOCHS, limit_batches=2, train_subset=256)
    settings = publish(run, tmp_path / "results", full)
    assert settings["partial"] is False and settings["partial_reasons"] == []
    assert "PARTIAL" not in (tmp_path / "results/README.md").read_text()


def test_the_readme_links_every_file_it_names(published):
    dest, _ = published
    readme = (dest / "README.md").read_text()
    links = [part.split(")")[0] for part in readme.split("](")[1:]]
    assert {"contact_sheet.png", "fid_curves.png", "gifs/gan_cgan.gif", "summary.md", "settings.json",
            "classifiers_fgsm.png"} <= set(links)
    assert all((dest / link).is_file() for link in links), links
    assert "1. gan/cgan: FID" in readme and "Welch's t-test" in readme
    assert "| classify/cnn | 1 | 50.0% | 90% | not measured | 91% | 25.0% | 75% | not measured |" in readme


def test_only_real_changes_from_the_catalogue_are_listed(tmp_path):
    from fashion.report.publish import run_settings
    from fashion.runfolder import JobFolder

    job = JobFolder("classify/cnn", tmp_path, status={"state": "completed", "epoch": 15, "epochs": 15},
                    config={"config": {"epochs": 15, "fgsm_epsilons": [0.0, 0.1], "lr": 0.01, "seed": 3}})
    full = {"classify/cnn": {"epochs": 15, "fgsm_epsilons": (0.0, 0.1), "lr": 0.001, "seed": 0}}
    settings = run_settings("r", [job], {}, full)  # a tuple in the catalogue is a list in config.json: no change
    assert settings["changed_settings"] == {"lr=0.01 (catalogue: 0.001)": ["classify/cnn"]}
    assert settings["partial"] is False


def test_spread_keeps_the_first_and_last_frames_evenly():
    assert spread(list(range(50)), 8) == [0, 7, 14, 21, 28, 35, 42, 49]
    assert spread([1, 2, 3], 8) == [1, 2, 3]


def test_a_run_without_a_report_names_the_command_that_builds_it(run, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(run / "gan/cgan", bare / "gan/cgan")
    with pytest.raises(PublishError, match=r"no report yet: run `python launch.py --aggregate bare`"):
        publish(bare, tmp_path / "results", catalogue())
    assert not (tmp_path / "results").exists()


def test_a_report_older_than_its_jobs_is_refused(run, tmp_path):
    copy = tmp_path / "study"
    shutil.copytree(run, copy)
    artifacts.write_status(copy / "gan/cgan.seed1", "failed", epoch=1, epochs=EPOCHS, error="RuntimeError: boom")
    with pytest.raises(PublishError, match=r"older than its jobs \(gan/cgan.seed1 was completed at epoch 2, now "
                                           r"failed at epoch 1\).*--aggregate study"):
        publish(copy, tmp_path / "results", catalogue())
    build_report(copy)  # once the report is current, the failure is published as a reason
    settings = publish(copy, tmp_path / "results", catalogue(epochs=EPOCHS, limit_batches=2, train_subset=256))
    assert settings["partial_reasons"] == ["gan/cgan.seed1: failed, not completed", "gan/cgan.seed1: 1 of 2 epochs"]


def test_a_report_naming_a_job_that_was_moved_away_is_refused(run, tmp_path):
    copy = tmp_path / "study"
    shutil.copytree(run, copy)
    shutil.move(copy / "gan/cgan.seed1", copy / ".replaced")
    with pytest.raises(PublishError, match=r"gan/cgan.seed1 is in it but no longer in the run"):
        publish(copy, tmp_path / "results", catalogue())


def test_an_earlier_publication_is_replaced_only_with_force(run, published, tmp_path):
    dest = tmp_path / "results"
    shutil.copytree(published[0], dest)
    (dest / "settings.json").write_text(json.dumps({"run": "older", "published": "2026-01-01 00:00 UTC"}))
    before = tree(dest)
    with pytest.raises(PublishError, match=r"holds run 'older' published 2026-01-01.*add --force"):
        publish(run, dest, catalogue())
    assert tree(dest) == before
    publish(run, dest, catalogue(), force=True)
    assert json.loads((dest / "settings.json").read_text())["run"] == "study"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # the old one is gone, nothing hidden left


def test_a_folder_of_other_files_is_never_overwritten(run, tmp_path):
    dest = tmp_path / "docs"
    dest.mkdir()
    (dest / "notes.md").write_text("mine")
    for force in (False, True):
        with pytest.raises(PublishError, match="holds other files.*empty or new folder"):
            publish(run, dest, catalogue(), force=force)
    assert tree(dest) == {"notes.md": hashlib.sha256(b"mine").hexdigest()}


def test_publish_from_the_command_line_honours_the_umask(run, tmp_path):
    dest = tmp_path / "results"
    command = (f'umask 002 && exec "{sys.executable}" launch.py --publish {run.name} --outputs {run.parent} '
               f'--out {dest}')
    res = subprocess.run(["sh", "-c", command], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0 and "PARTIAL" in res.stdout, res.stdout + res.stderr
    modes = {oct(p.stat().st_mode & 0o777) for p in [dest, *dest.rglob("*")]}
    assert modes == {"0o775", "0o664"}
    again = subprocess.run([sys.executable, "launch.py", "--publish", run.name, "--outputs", str(run.parent),
                            "--out", str(dest)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert again.returncode == 2 and "add --force" in again.stdout


def test_jobs_record_whether_their_code_was_committed(tmp_path):
    from fashion.runtime import git_sha

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    git("init", "-q")
    (tmp_path / "code.py").write_text("a = 1\n")
    git("add", "code.py")
    git("commit", "-qm", "code")
    clean = git_sha(tmp_path)
    (tmp_path / "code.py").write_text("a = 2\n")
    assert len(clean) == 7 and git_sha(tmp_path) == f"{clean}-dirty"
    assert git_sha(tmp_path.parent / "not-a-checkout") == ""
