"""The run report: metrics for finished models, reasons for everything else, stable files, a page that renders."""
import dataclasses
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from rich.console import Console

import jobs
from helpers import benchmark, copy_job, final_entry, fit_tiny
from fashion import artifacts, measure, runfolder
from fashion.classify.networks import ConvClassifier, save_classifier
from fashion.data import load_fashion
from fashion.evaluator import read_metadata
from fashion.measure import Stamp, Yardstick
from fashion.report import aggregate

SUMMARIES = ("summary.md", "summary.csv", "summary.json", "index.html")
CHROMIUM = shutil.which("chromium")


def run_aggregate(run_dir, **options):
    out = io.StringIO()
    code = aggregate(run_dir, console=Console(file=out, width=220), **options)
    return code, out.getvalue()


def summary_rows(run_dir) -> dict[str, dict]:
    data = json.loads((run_dir / "report" / "summary.json").read_text())
    return {row["job"]: row for row in data["rows"]}


def write_classifier(run_dir):
    """A finished classify/cnn job folder (a job with no generated images; its model.pt a --classifier)."""
    torch.manual_seed(0)
    save_classifier(run_dir / "classify/cnn/model.pt", ConvClassifier().eval(), "cnn", test_accuracy=0.5)
    artifacts.write_status(run_dir / "classify/cnn", "completed", epoch=1, epochs=1)


def forget_measurements(job_dir):
    """The job folder as a run older than the evaluator left it: no stamped numbers in its metrics.json."""
    kept = {k: v for k, v in json.loads((job_dir / "metrics.json").read_text()).items()
            if k not in ("quality", "fid_curve")}
    artifacts.write_json(job_dir / "metrics.json", kept)


@pytest.fixture(scope="module")
def trained_cgan(trained_job, module_data) -> Path:
    """The session's trained gan/cgan (two steps; conftest's trained_job), its data set where this module's
    loaders look: a finished job folder to copy into runs."""
    return trained_job.folder


@pytest.fixture(scope="module")
def partial_run(trained_cgan, tmp_path_factory):
    """A run caught mid-way: one finished GAN, one running, one failed, one diverged, an unknown folder."""
    run = tmp_path_factory.mktemp("outputs") / "partial"
    copy_job(trained_cgan, run / "gan/cgan")
    write_classifier(run)
    artifacts.write_status(run / "gan/wgan", "running", epoch=1, epochs=5, step=3, steps=10)
    artifacts.write_status(run / "gan/lsgan", "failed", error="RuntimeError: CUDA out of memory")
    log = run / ".submitit/gan/lsgan/123_0_log.err"
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"log line {i}\n" for i in range(100)) + "RuntimeError: CUDA out of memory\n")
    artifacts.write_status(run / "gan/ebgan", "diverged", epoch=2, epochs=5, reason="non-finite D")
    artifacts.write_status(run / "gan/renamed", "completed", epoch=1, epochs=1)
    (run / "gan/dragan").mkdir()
    (run / "gan/dragan/status.json").write_text('{"state": "runn')  # cut short by a full disk
    code, printed = run_aggregate(run)
    return run, code, printed


def test_a_finished_generator_gets_every_metric(partial_run):
    run, code, _ = partial_run
    row = summary_rows(run)["gan/cgan"]
    assert code == 0
    for key in ("fid", "kid", "precision", "recall", "density", "coverage", "is", "cond_acc"):
        assert isinstance(row[key], float), key
    assert row["state"] == "completed" and row["epochs"] == "1/1"
    assert "D" in row["final_terms"] and row["s_per_epoch"] > 0


def test_the_real_vs_real_floor_is_below_a_barely_trained_gan(partial_run):
    run, _, _ = partial_run
    rows = summary_rows(run)
    assert rows["real: train vs test"]["fid"] < rows["gan/cgan"]["fid"]
    assert rows["noise: uniform pixels"]["state"] == "reference"


def test_the_report_shows_the_numbers_the_job_measured_itself_with_their_stamp(partial_run):
    run, _, _ = partial_run
    entry = final_entry(json.loads((run / "gan/cgan/metrics.json").read_text())["quality"])
    row = summary_rows(run)["gan/cgan"]
    assert row["fid"] == pytest.approx(entry["values"]["fid"], rel=1e-5)
    stamp = Stamp.of(entry["stamp"])
    assert row["stamp"] == stamp.key and stamp.evaluator == read_metadata()["name"]
    assert stamp.fake == 256 and stamp.real == 256 and stamp.reference == "test"  # the tiny fake test split


def test_unfinished_and_unknown_jobs_are_listed_with_reasons_and_no_metrics(partial_run):
    run, _, _ = partial_run
    rows = summary_rows(run)
    expected = {"gan/wgan": "running (epoch 2 of 5, step 3/10)", "gan/lsgan": "failed: RuntimeError: CUDA out of memory",
                "gan/ebgan": "diverged at epoch 2 (non-finite D)", "gan/renamed": "no eval_samples.pt",
                "gan/dragan": "status.json: corrupt JSON",
                "classify/cnn": "generates no images"}
    for name, reason in expected.items():
        assert reason in rows[name]["note"], name
        assert rows[name].get("fid") is None, name
    assert rows["gan/wgan"]["state"] == "running" and rows["gan/wgan"]["epochs"] == "1/5"


def test_a_failed_job_shows_the_tail_of_its_log_on_the_page(partial_run):
    run, _, _ = partial_run
    page = (run / "report/index.html").read_text()
    assert "log line 99" in page and "CUDA out of memory" in page
    assert "log line 10\n" not in page  # only the tail


def test_the_terminal_table_names_every_job(partial_run):
    _, _, printed = partial_run
    for name in ("gan/cgan", "gan/wgan", "gan/lsgan", "gan/ebgan", "classify/cnn", "real: train vs test"):
        assert name in printed
    assert "index.html" in printed


def test_each_training_snapshot_is_a_point_of_the_fid_curve(partial_run):
    run, _, _ = partial_run
    curves = json.loads((run / "report/summary.json").read_text())["fid_over_epochs"]
    assert list(curves) == ["gan/cgan"]  # the only finished generator that kept snapshots
    (epoch, fid), = curves["gan/cgan"]
    assert epoch == 1 and fid > summary_rows(run)["real: train vs test"]["fid"]
    assert (run / "report/fid_curves.png").stat().st_size > 0
    assert 'src="fid_curves.png"' in (run / "report/index.html").read_text()


def test_the_summary_files_hold_the_same_rows(partial_run):
    run, _, _ = partial_run
    names = list(summary_rows(run))
    csv_names = [line.split(",")[0] for line in (run / "report/summary.csv").read_text().splitlines()[1:]]
    md = (run / "report/summary.md").read_text()
    assert csv_names == names
    assert all(f"| {name} |" in md for name in names)


def refuse_to_measure(monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("measured although every number was there under the stamp")

    monkeypatch.setattr(Yardstick, "measure", must_not_run)
    monkeypatch.setattr(Yardstick, "fid", must_not_run)


def test_aggregating_again_writes_identical_files_and_measures_nothing(partial_run, monkeypatch):
    run, _, _ = partial_run
    before = {name: (run / "report" / name).read_bytes() for name in SUMMARIES}
    refuse_to_measure(monkeypatch)
    code, _ = run_aggregate(run)
    assert code == 0
    assert {name: (run / "report" / name).read_bytes() for name in SUMMARIES} == before


def test_a_job_that_measured_itself_is_not_measured_by_the_report(trained_cgan, tmp_path, monkeypatch):
    run = tmp_path / "run"
    copy_job(trained_cgan, run / "gan/cgan")
    refuse_to_measure(monkeypatch)
    monkeypatch.setattr(Yardstick, "references", lambda *a: {})
    code, _ = run_aggregate(run)
    assert code == 0 and isinstance(summary_rows(run)["gan/cgan"]["fid"], float)


def count_measurements(monkeypatch) -> list:
    calls = []
    measure_images = Yardstick.measure
    monkeypatch.setattr(Yardstick, "measure", lambda *a, **k: calls.append(1) or measure_images(*a, **k))
    return calls


def test_an_older_run_is_measured_once_and_remembered(trained_cgan, tmp_path, monkeypatch):
    run = tmp_path / "run"
    copy_job(trained_cgan, run / "gan/cgan", link=False)
    forget_measurements(run / "gan/cgan")
    calls = count_measurements(monkeypatch)
    run_aggregate(run)
    run_aggregate(run)
    assert len(calls) == 1 and isinstance(summary_rows(run)["gan/cgan"]["fid"], float)
    assert measure.is_stamped(json.loads((run / "gan/cgan/metrics.json").read_text())["quality"])


def test_samples_of_a_later_epoch_are_measured_again(trained_cgan, tmp_path, monkeypatch):
    run = tmp_path / "run"
    copy_job(trained_cgan, run / "gan/cgan")
    calls = count_measurements(monkeypatch)
    samples = runfolder.read_eval_samples(run / "gan/cgan")  # as a job trained on to epoch 2 leaves them
    samples.images, samples.epoch = 255 - samples.images, 2
    runfolder.write_eval_samples(run / "gan/cgan", samples)
    artifacts.write_status(run / "gan/cgan", "completed", epoch=2, epochs=2)
    run_aggregate(run)
    assert len(calls) == 1


def test_another_protocol_measures_everything_again(trained_cgan, tmp_path, monkeypatch):
    run = tmp_path / "run"
    copy_job(trained_cgan, run / "gan/cgan")
    monkeypatch.setattr(measure, "PROTOCOL", measure.PROTOCOL + 1)
    monkeypatch.setenv(measure.CACHE_ENV, str(tmp_path / "cache"))
    calls = count_measurements(monkeypatch)
    run_aggregate(run)
    assert len(calls) == 3  # the job and both references
    assert summary_rows(run)["gan/cgan"]["stamp"].endswith(f"p{measure.PROTOCOL}")


def test_the_report_reads_the_evaluation_samples_and_never_the_checkpoint(trained_cgan, tmp_path):
    run = tmp_path / "run"
    copy_job(trained_cgan, run / "gan/cgan", link=False)
    forget_measurements(run / "gan/cgan")
    (run / "gan/cgan/checkpoint.pt").unlink()
    code, _ = run_aggregate(run)
    assert code == 0 and isinstance(summary_rows(run)["gan/cgan"]["fid"], float)


def test_a_damaged_evaluator_empties_the_quality_columns_naming_the_file_and_the_fix(trained_cgan, tmp_path,
                                                                                      monkeypatch):
    import fashion.evaluator

    damaged = tmp_path / "evaluator" / fashion.evaluator.WEIGHTS.name
    damaged.parent.mkdir()
    damaged.write_bytes(fashion.evaluator.WEIGHTS.read_bytes()[:-10])
    shutil.copy(fashion.evaluator.METADATA, damaged.with_suffix(".json"))
    monkeypatch.setattr(fashion.evaluator, "WEIGHTS", damaged)
    run = tmp_path / "run"
    copy_job(trained_cgan, run / "gan/cgan", link=False)
    forget_measurements(run / "gan/cgan")
    code, printed = run_aggregate(run)
    row = summary_rows(run)["gan/cgan"]
    assert code == 0 and row.get("fid") is None
    assert str(damaged) in row["note"] and "git checkout -- fashion/evaluator/" in row["note"]
    assert not any(r["state"] == "reference" for r in summary_rows(run).values())


def test_the_product_photos_folder_does_not_hide_fashion_mnist_from_the_report(trained_cgan, tmp_path):
    run = tmp_path / "run"
    copy_job(trained_cgan, run / "gan/cgan")
    product = jobs.get("vae/product-cond").make_config({"photo_dir": str(tmp_path / "photos")})
    artifacts.write_json(run / "vae/product-cond/config.json", {"config": dataclasses.asdict(product)})
    artifacts.write_status(run / "vae/product-cond", "failed", error="no photos")
    run_aggregate(run)
    assert isinstance(summary_rows(run)["gan/cgan"]["fid"], float)


def test_a_classifier_given_by_path_is_another_evaluator_with_its_own_stamp(trained_cgan, tmp_path):
    run = tmp_path / "run"
    copy_job(trained_cgan, run / "gan/cgan", link=False)
    write_classifier(tmp_path / "elsewhere")
    code, _ = run_aggregate(run, classifier=tmp_path / "elsewhere/classify/cnn/model.pt")
    data = json.loads((run / "report/summary.json").read_text())
    row = summary_rows(run)["gan/cgan"]
    assert code == 0 and "--classifier" in data["evaluator"] and isinstance(row["fid"], float)
    measured = json.loads((run / "gan/cgan/metrics.json").read_text())["quality"]
    assert Stamp.of(measured[row["stamp"]]["stamp"]).evaluator == "classifier"
    assert len(measured) == 4  # the job's own numbers (final and best) stay beside the classifier's


def test_a_job_shows_its_top_level_pictures_and_the_latest_of_each_series(tmp_path):
    from fashion.report.collect import final_samples, pictures
    from fashion.runfolder import read_job

    names = ["losses.png", "samples.gif", "fgsm.png", "notes.txt", "samples/epoch_999.png",
             "samples/epoch_1000.png", "sweeps/c1_epoch_001.png", "sweeps/c1_epoch_002.png",
             "sweeps/c2_epoch_002.png", "recon/epoch_003.png"]
    for name in names:
        (tmp_path / "gan/x" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "gan/x" / name).write_bytes(b"")
    job = read_job(tmp_path, "gan/x")
    shown = [p.relative_to(job.path).as_posix() for p in pictures(job)]
    assert shown == ["fgsm.png", "losses.png", "samples.gif", "recon/epoch_003.png", "samples/epoch_1000.png",
                     "sweeps/c1_epoch_002.png", "sweeps/c2_epoch_002.png"]
    assert final_samples(job).name == "epoch_1000.png"


def test_an_empty_run_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    code, printed = run_aggregate(tmp_path / "empty")
    assert code == 1 and "no job folders" in printed


# -- the page in a real browser ------------------------------------------------------------------
def chromium_dom(page: Path, profile: Path) -> str:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--dump-dom", "--virtual-time-budget=5000", page.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_the_page_renders_in_chromium_with_no_broken_pictures(partial_run, tmp_path):
    run, _, _ = partial_run
    dom = chromium_dom(run / "report/index.html", tmp_path / "profile")
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-loaded="yes"' in body
    assert 'data-broken-images="0"' in body, body
    assert int(re.search(r'data-images="(\d+)"', body).group(1)) >= 3  # samples, GIF, losses of gan/cgan
    table = dom[dom.index('id="summary-table"'):dom.index("</table>")]
    assert table.count("<tr") == 1 + len(summary_rows(run))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_clicking_a_header_sorts_the_table_numerically_with_empty_cells_last(partial_run, tmp_path):
    run, _, _ = partial_run
    click = ("<script>window.addEventListener('load', () => {"
             " document.querySelector('th[data-key=fid]').click();"
             " document.body.dataset.sortedJobs = Array.from(document.querySelectorAll('#summary-table tbody td.job'))"
             ".map(td => td.textContent.trim()).join('|'); });</script></body>")
    page = run / "report/sort-check.html"
    page.write_text((run / "report/index.html").read_text().replace("</body>", click))
    dom = chromium_dom(page, tmp_path / "profile")
    page.unlink()
    order = re.search(r'data-sorted-jobs="([^"]*)"', dom).group(1).split("|")
    fids = {name: row.get("fid") for name, row in summary_rows(run).items()}
    measured = sorted((v, k) for k, v in fids.items() if v is not None)
    assert order[:len(measured)] == [k for _, k in measured]
    assert all(fids[name] is None for name in order[len(measured):])


# -- several seeds of one model -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def seeded_run(trained_cgan, module_data, tmp_path_factory):
    """gan/cgan from seed 0 (the shared template) and seed 1 (trained here): one model, two seeds."""
    run = tmp_path_factory.mktemp("outputs") / "seeds"
    copy_job(trained_cgan, run / "gan/cgan")
    fit_tiny("gan/cgan.seed1", run / "gan/cgan.seed1")
    code, printed = run_aggregate(run)
    return run, code, printed


def test_seeds_of_a_model_are_summarised_together(seeded_run):
    run, code, _ = seeded_run
    data = json.loads((run / "report/summary.json").read_text())
    (model,) = [m for m in data["models"] if m["model"] == "gan/cgan"]
    rows = summary_rows(run)
    fid = model["numbers"]["fid"]
    assert code == 0 and model["seeds"] == [0, 1] and fid["n"] == 2
    assert fid["values"] == pytest.approx([rows["gan/cgan"]["fid"], rows["gan/cgan.seed1"]["fid"]], rel=1e-5)
    assert fid["mean"] == pytest.approx(sum(fid["values"]) / 2, rel=1e-5) and fid["std"] > 0
    assert fid["ci"][0] < fid["mean"] < fid["ci"][1]


def test_the_ranking_names_its_test_in_every_output(seeded_run):
    run, _, printed = seeded_run
    data = json.loads((run / "report/summary.json").read_text())
    assert data["fid_ranking"][0]["model"] == "gan/cgan" and data["fid_ranking"][0]["verdict"] == "first"
    md = (run / "report/summary.md").read_text()
    assert "## Models over seeds" in md and "Welch's t-test" in md and "| gan/cgan | 0, 1 |" in md
    assert "which differences are real" in printed and "models over seeds" in printed
    models_csv = (run / "report/models.csv").read_text().splitlines()
    assert any(line.startswith("gan/cgan,fid,2,") for line in models_csv)


def test_the_report_shows_the_final_and_the_best_checkpoint_side_by_side(seeded_run):
    run, _, _ = seeded_run
    data = json.loads((run / "report/summary.json").read_text())
    row = summary_rows(run)["gan/cgan"]
    # One epoch: its snapshot is the only one, so the best checkpoint is the final generator, with its numbers.
    assert row["best_epoch"] == 1 and row["best_fid"] == row["fid"]
    assert row["best"]["stamp"] == row["stamp"] + " best@train"
    (model,) = [m for m in data["models"] if m["model"] == "gan/cgan"]
    assert model["numbers"]["best_fid"]["values"] == model["numbers"]["fid"]["values"]
    assert data["rank_by"] == "final" and data["fid_ranking"][0]["stamp"] == row["stamp"]
    assert "FID best ckpt" in (run / "report/index.html").read_text()
    assert "FID best ckpt" in (run / "report/summary.md").read_text()


def test_the_page_shows_models_ranking_and_seed_0_on_the_contact_sheet(seeded_run):
    run, _, _ = seeded_run
    page = (run / "report/index.html").read_text()
    assert 'id="models-table"' in page and 'id="ranking-table"' in page
    assert "gan/cgan.seed1" in page  # its own row stays in the per-job table
    sheet = page[page.index('id="contact-sheet"'):page.index('id="fid-over-epochs"')]
    assert "../gan/cgan/samples/" in sheet and "gan/cgan.seed1" not in sheet and "seed 0 of 2" in sheet


def test_fid_curves_of_the_seeds_are_averaged_per_model(seeded_run):
    run, _, _ = seeded_run
    bands = json.loads((run / "report/summary.json").read_text())["fid_over_epochs_by_model"]
    (epoch, mean, low, high, seeds), = bands["gan/cgan"]
    # Two training steps leave both seeds' uint8 snapshots alike, so the range may be a point here.
    assert (epoch, seeds) == (1, 2) and low <= mean <= high


def test_a_model_with_two_of_three_seeds_diverged_is_never_first_and_shows_its_failures(tmp_path, module_data):
    run = tmp_path / "flaky"
    benchmark("collate").make_run(run, models=3, trials=0, seeds=3, yardstick=Yardstick.shipped(
        load_fashion().test.images))
    for job in ("gan/wgan.seed1", "gan/wgan.seed2"):
        artifacts.write_status(run / job, "diverged", epoch=3, epochs=10, reason="non-finite D")
    metrics = json.loads((run / "gan/wgan/metrics.json").read_text())
    for entry in metrics["quality"].values():
        entry["values"]["fid"] = 1.0  # its one survivor beats every seed of the others
    artifacts.write_json(run / "gan/wgan/metrics.json", metrics)
    code, _ = run_aggregate(run)
    data = json.loads((run / "report/summary.json").read_text())
    assert code == 0 and sorted(r["model"] for r in data["fid_ranking"]) == ["gan/gan", "gan/lsgan"]
    assert "gan/wgan: 1 completed seed with a fid (2 of 3 finished seeds failed: seed 1 diverged, seed 2 " \
           "diverged)" in data["not ranked"]
    (wgan,) = [m for m in data["models"] if m["model"] == "gan/wgan"]
    assert (wgan["failed"], wgan["finished"]) == (2, 3)
    assert "| gan/wgan | 0, 1, 2 (1 completed, 2 failed) | 2 of 3 |" in (run / "report/summary.md").read_text()


def test_single_snapshots_of_many_models_stay_on_their_epoch_and_inside_the_plot(tmp_path, monkeypatch):
    """A short run's snapshots are one point per model: side by side, but within a quarter epoch of theirs and
    all inside the axes (27 models once spread over a whole epoch and past the right edge)."""
    from fashion.report.aggregate import plot_fid_curves

    figures = []
    monkeypatch.setattr(artifacts, "save_figure", lambda fig, path, **_: figures.append(fig) or path)
    bands = {f"m{i:02d}": [{"epoch": 2, "mean": 10.0 + i, "min": 9.0 + i, "max": 11.0 + i, "n": 3}] for i in range(27)}
    plot_fid_curves(bands, tmp_path / "fid_curves.png", [2000])
    (ax,) = figures[0].axes
    xs = [x for line in ax.get_lines() for x in line.get_xdata()]
    left, right = ax.get_xlim()
    assert len(xs) == 27 and all(abs(x - 2) <= 0.25 and left < x < right for x in xs)
