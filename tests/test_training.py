"""The shared loop: exact resume, divergence, atomic outputs, and DDP keeping ranks identical."""
import json
import os

import pytest
import torch

import jobs
from helpers import Interrupted, crashing, tiny
from fashion import artifacts
from fashion.checkpoint import CheckpointError, load_checkpoint
from fashion.gans import REGISTRY
from fashion.training import fit


def gan_config(name="wgan_gp", **changes):
    return tiny(jobs.get(f"gan/{name}").make_config(), **{"epochs": 2, "limit_batches": 3, **changes})


@pytest.mark.parametrize("name", ["wgan_gp", "began"])
def test_resume_after_interrupt_equals_uninterrupted_run(name, fake_fashion_dir, tmp_path):
    config = gan_config(name)
    fit(REGISTRY[name], config, tmp_path / "straight", name)
    with pytest.raises(Interrupted):
        fit(crashing(REGISTRY[name], after_steps=4), config, tmp_path / "resumed", name)  # dies in epoch 2
    assert load_checkpoint(tmp_path / "resumed")["epoch"] == 1
    fit(REGISTRY[name], config, tmp_path / "resumed", name)
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    for net in a["nets"]:
        for key, tensor in a["nets"][net].items():
            assert torch.equal(tensor, b["nets"][net][key]), f"{net}.{key} differs after resume"
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in rows]
    assert strip(a["history"]) == strip(b["history"]) and a["steps"] == b["steps"]


def test_snapshots_keep_uint8_samples_every_n_epochs_and_at_the_last(fake_fashion_dir, tmp_path):
    fit(REGISTRY["cgan"], gan_config("cgan", epochs=3, snapshot_every=2, snapshot_samples=20), tmp_path, "gan/cgan")
    kept = sorted(p.name for p in (tmp_path / "snapshots").iterdir())
    assert kept == ["epoch_002.pt", "epoch_003.pt"]
    snapshot = torch.load(tmp_path / "snapshots/epoch_003.pt", weights_only=True)
    assert snapshot["epoch"] == 3 and snapshot["images"].dtype == torch.uint8
    assert snapshot["images"].shape == (20, 1, 28, 28) and snapshot["images"].max() > 0
    assert snapshot["images"].unique().numel() > 2  # grey levels, not a mask of 0 and 255


def test_snapshots_leave_training_untouched(fake_fashion_dir, tmp_path):
    fit(REGISTRY["cgan"], gan_config("cgan", snapshot_every=1), tmp_path / "with", "gan/cgan")
    fit(REGISTRY["cgan"], gan_config("cgan", snapshot_every=0), tmp_path / "without", "gan/cgan")
    assert not (tmp_path / "without/snapshots").exists()
    a, b = load_checkpoint(tmp_path / "with"), load_checkpoint(tmp_path / "without")
    for net in a["nets"]:
        assert all(torch.equal(t, b["nets"][net][k]) for k, t in a["nets"][net].items()), net


def test_a_job_that_generates_nothing_keeps_no_snapshots(fake_fashion_dir, tmp_path):
    job = jobs.get("classify/dense")
    fit(job.task, tiny(job.make_config(), snapshot_every=1), tmp_path, job.name)
    assert (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "snapshots").exists()


def test_every_artifact_is_written(fake_fashion_dir, tmp_path):
    fit(REGISTRY["infogan"], gan_config("infogan"), tmp_path, "gan/infogan")
    for name in ("config.json", "status.json", "history.csv", "losses.csv", "losses.png", "metrics.json",
                 "checkpoint.pt", "samples/epoch_001.png", "samples/epoch_002.png", "samples.gif",
                 "sweeps/c1_epoch_002.png", "sweeps/c2_epoch_002.png", "sweeps/c1c2_epoch_002.png", "sweeps_c1c2.gif"):
        assert (tmp_path / name).is_file(), name
    status = artifacts.read_status(tmp_path)
    assert status["state"] == "completed" and status["epoch"] == 2
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["images_per_s"] > 0 and "D" in metrics["final"]


def test_a_finished_job_is_not_trained_again(fake_fashion_dir, tmp_path):
    config = gan_config("gan")
    fit(REGISTRY["gan"], config, tmp_path, "gan/gan")
    before = (tmp_path / "checkpoint.pt").stat().st_mtime_ns
    fit(REGISTRY["gan"], config, tmp_path, "gan/gan")
    assert (tmp_path / "checkpoint.pt").stat().st_mtime_ns == before


def test_non_finite_loss_marks_the_job_diverged(fake_fashion_dir, tmp_path):
    class Exploding(REGISTRY["gan"]):
        def d_loss(self, real, fake, labels, latent, noise):
            terms = super().d_loss(real, fake, labels, latent, noise)
            terms["real"] = terms["real"] * float("nan")
            return terms

    metrics = fit(Exploding, gan_config("gan"), tmp_path, "gan/gan")
    status = artifacts.read_status(tmp_path)
    assert metrics["state"] == status["state"] == "diverged" and "non-finite" in status["reason"]
    assert (tmp_path / "history.csv").read_text().count("\n") == 2  # header + the epoch that diverged


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = artifacts.write_text(tmp_path / "result.json", "finished results")

    def broken(f):
        f.write(b"half a fi")
        raise OSError("disk full")

    with pytest.raises(OSError):
        artifacts.atomic_write(target, broken)
    assert target.read_text() == "finished results"
    assert os.listdir(tmp_path) == ["result.json"]


def test_corrupt_checkpoint_is_a_clear_error(fake_fashion_dir, tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="--force"):
        fit(REGISTRY["gan"], gan_config("gan"), tmp_path, "gan/gan")


def test_bf16_mixed_precision_trains_with_a_gradient_penalty(fake_fashion_dir, tmp_path):
    metrics = fit(REGISTRY["wgan_gp"], gan_config("wgan_gp", precision="bf16", epochs=1), tmp_path, "gan/wgan_gp")
    assert metrics["precision"] == "bf16" and metrics["state"] == "completed"
    assert all(v == v for v in metrics["final"].values())  # no NaN


def test_fp16_without_a_gpu_is_refused_with_the_alternative(fake_fashion_dir, tmp_path):
    from fashion.task import ConfigError

    with pytest.raises(ConfigError, match="use bf16 or no"):
        fit(REGISTRY["gan"], gan_config("gan", precision="fp16"), tmp_path, "gan/gan")
