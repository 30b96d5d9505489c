"""The one yardstick: jobs measure themselves with the shipped evaluator, every number carries its stamp,
and the same job gives the same numbers."""
import dataclasses
import json

import pytest
import torch

import jobs
from helpers import data_at, final_entry, fit_tiny, tiny
from fashion import artifacts, measure, runfolder
from fashion.evaluator import EvaluatorError
from fashion.measure import Stamp, Yardstick
from fashion.training import fit

STAMP_FIELDS = {f.name for f in dataclasses.fields(Stamp)}


def train(folder, name="gan/gan", **changes):
    job = jobs.get(name)
    fit(job.task, tiny(job.make_config(), **changes), folder, job.name)
    return json.loads((folder / "metrics.json").read_text())


def test_a_generative_job_measures_itself_and_every_number_carries_its_stamp(fake_fashion_dir, tmp_path):
    measured = train(tmp_path / "job", epochs=2, snapshot_every=1)
    quality = final_entry(measured["quality"])
    (curve,) = measured["fid_curve"].values()
    assert set(quality["stamp"]) == STAMP_FIELDS == set(curve["stamp"]) and quality["stamp"]["checkpoint"] == "final"
    assert quality["stamp"]["fake"] == 256 and curve["stamp"]["fake"] == 2000  # eval_samples, snapshot_samples
    assert quality["epoch"] == 2 and [p["epoch"] for p in curve["points"]] == [1, 2]
    assert {"fid", "kid", "precision", "recall", "density", "coverage", "is"} <= set(quality["values"])
    assert measured["measure_seconds"] > 0
    assert json.loads((tmp_path / "job/status.json").read_text())["state"] == "completed"


def test_two_runs_of_the_same_seeded_job_give_identical_numbers(trained_job, tmp_path):
    first = json.loads((trained_job.folder / "metrics.json").read_text())
    with data_at(trained_job.data):
        second = train(tmp_path, trained_job.name)  # the same job again
    assert first["quality"] == second["quality"] and first["fid_curve"] == second["fid_curve"]


def test_a_job_killed_while_measuring_itself_measures_again_when_resumed(fake_fashion_dir, tmp_path, monkeypatch):
    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Yardstick, "measure", killed)
        with pytest.raises(KeyboardInterrupt):
            train(tmp_path)
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "interrupted" and "quality" not in json.loads((tmp_path / "metrics.json").read_text())
    measured = train(tmp_path)  # the same command again
    assert len(measured["quality"]) == 2 and measured["state"] == "completed"  # the final's and the best's
    assert not list(tmp_path.rglob(".*.tmp"))


def test_the_shipped_evaluator_and_a_classifier_are_different_stamps(fake_fashion_dir, tmp_path):
    from fashion.classify.networks import ConvClassifier, save_classifier
    from fashion.data import load_fashion

    test = load_fashion().test.images
    save_classifier(tmp_path / "model.pt", ConvClassifier().eval(), "cnn")
    shipped, other = Yardstick.shipped(test), Yardstick.classifier(tmp_path / "model.pt", test)
    assert shipped.stamp(100).key != other.stamp(100).key
    assert not shipped.measured(other.stamp(100)) and shipped.measured(shipped.stamp(7))


def test_loading_a_yardstick_leaves_the_callers_random_stream_alone(fake_fashion_dir, tmp_path):
    """A job seeds torch, loads its yardstick, then builds its networks: their initial weights must come from the
    seed alone, as before jobs measured themselves, and on every DDP rank (only the main one measures)."""
    from fashion.classify.networks import ConvClassifier, save_classifier
    from fashion.data import load_fashion

    test = load_fashion().test.images
    save_classifier(tmp_path / "model.pt", ConvClassifier().eval(), "cnn")
    for load in (lambda: Yardstick.shipped(test), lambda: Yardstick.classifier(tmp_path / "model.pt", test)):
        torch.manual_seed(0)
        expected = torch.rand(8)
        torch.manual_seed(0)
        load()
        assert torch.equal(torch.rand(8), expected)


def test_a_jobs_initial_weights_are_its_seeds_whatever_its_recorder_draws_first(fake_fashion_dir, tmp_path,
                                                                                   monkeypatch):
    """Only the main rank measures, and whatever it loads to measure with may draw random numbers: the networks
    of a seeded job must not depend on that."""
    from fashion.recorder import FolderRecorder

    fit_tiny("gan/gan", tmp_path / "plain")
    measure_against = FolderRecorder.measure_against
    monkeypatch.setattr(FolderRecorder, "measure_against",
                        lambda self, *args: (torch.rand(1000), measure_against(self, *args)))
    fit_tiny("gan/gan", tmp_path / "drawing")
    plain, drawing = (torch.load(tmp_path / name / "checkpoint.pt", weights_only=False)["nets"]
                      for name in ("plain", "drawing"))
    for net in plain:
        for key, value in plain[net].items():
            assert torch.equal(value, drawing[net][key]), (net, key)


def test_the_real_set_is_embedded_once_per_machine(fake_fashion_dir, tmp_path, monkeypatch):
    from fashion.data import load_fashion

    monkeypatch.setenv(measure.CACHE_ENV, str(tmp_path / "cache"))
    test = load_fashion().test.images
    fake = test[:64]
    first = Yardstick.shipped(test).measure(fake)
    embedded = []
    embed = Yardstick.embed
    monkeypatch.setattr(Yardstick, "embed", lambda self, images: embedded.append(len(images)) or embed(self, images))
    assert Yardstick.shipped(test).measure(fake) == first
    assert embedded == [64]  # the generated images only: the real set came from the cache


def test_a_damaged_evaluator_refuses_the_launch_naming_the_file_and_the_fix(fake_fashion_dir, tmp_path, monkeypatch,
                                                                          capsys):
    import fashion.evaluator
    import launch

    damaged = tmp_path / "weights" / fashion.evaluator.WEIGHTS.name
    damaged.parent.mkdir()
    damaged.write_bytes(b"not weights")
    (damaged.with_suffix(".json")).write_bytes(fashion.evaluator.METADATA.read_bytes())
    monkeypatch.setattr(fashion.evaluator, "WEIGHTS", damaged)
    monkeypatch.setenv("COLUMNS", "300")
    code = launch.main(["gan/gan", "--local", "--outputs", str(tmp_path / "out"), "--epochs", "1"])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 2 and str(damaged) in out and "git checkout -- fashion/evaluator/" in out
    assert not (tmp_path / "out").exists()
    with pytest.raises(EvaluatorError, match="does not match"):
        train(tmp_path / "job")


def test_measuring_a_folder_keeps_what_it_holds_under_the_same_stamp(trained_job, monkeypatch):
    from fashion.data import load_fashion

    measured = json.loads((trained_job.folder / "metrics.json").read_text())

    def must_not_run(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(Yardstick, "measure", must_not_run)
    monkeypatch.setattr(Yardstick, "fid", must_not_run)
    again = measure.measure_folder(trained_job.folder, Yardstick.shipped(load_fashion(trained_job.data).test.images),
                                   measured)
    assert again == {"quality": measured["quality"], "fid_curve": measured["fid_curve"]}


def test_a_snapshot_point_is_recorded_as_the_snapshot_is_written(fake_fashion_dir, tmp_path, monkeypatch):
    # Every point lands in metrics.json during training, so a job stopped later keeps its curve so far.
    seen = []
    write = artifacts.write_json

    def spy(path, obj):
        if path.name == runfolder.METRICS_FILE and "state" not in obj:
            seen.append([p["epoch"] for entry in obj["fid_curve"].values() for p in entry["points"]])
        return write(path, obj)

    monkeypatch.setattr(artifacts, "write_json", spy)
    train(tmp_path, epochs=3, snapshot_every=1)
    assert seen == [[1], [1, 2], [1, 2, 3]]


def test_prdc_from_torch_distances_equals_the_prdc_package():
    import contextlib
    import io

    from prdc import compute_prdc

    from fashion import metrics

    g = torch.Generator().manual_seed(0)
    for n, shift in ((500, 0.0), (700, 1.0)):
        real, fake = torch.randn(800, 16, generator=g), torch.randn(n, 16, generator=g) * 0.9 + shift
        with contextlib.redirect_stdout(io.StringIO()):
            expected = compute_prdc(real.numpy(), fake.numpy(), nearest_k=5)
        ours = metrics.prdc(metrics.Embedding(real, None), metrics.Embedding(fake, None), chunk=300)
        assert ours == pytest.approx({k: float(v) for k, v in expected.items()}, abs=1e-6)
