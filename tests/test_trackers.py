"""Experiment trackers (config.log_with) through accelerate: what lands in the job folder, and bad names."""
import importlib.util

import pytest

import jobs
from helpers import tiny
from fashion.gans import REGISTRY
from fashion.trackers import TRACKER_DIR
from fashion.task import ConfigError
from fashion.training import fit


def event_files(job_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # The run's events sit in trackers/; a subfolder holds the hyperparameters.
    folder = min({p.parent for p in (job_dir / TRACKER_DIR).rglob("events.out.tfevents.*")}, key=lambda p: len(p.parts))
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard not installed")
def test_tensorboard_gets_every_step_loss_epoch_metrics_and_grids(fake_fashion_dir, tmp_path):
    config = tiny(jobs.get("gan/gan").make_config(), epochs=2, limit_batches=3, log_with="tensorboard")
    fit(REGISTRY["gan"], config, tmp_path, "gan/gan")
    events = event_files(tmp_path)
    tags = events.Tags()
    assert [e.step for e in events.Scalars("step/D")] == [1, 2, 3, 4, 5, 6]
    assert [e.step for e in events.Scalars("epoch/G")] == [3, 6]
    assert [e.step for e in events.Scalars("epoch/images_per_s")] == [3, 6]
    assert "samples" in tags["images"] and len(events.Images("samples")) == 2


def test_trackers_are_off_by_default(fake_fashion_dir, tmp_path):
    fit(REGISTRY["gan"], tiny(jobs.get("gan/gan").make_config()), tmp_path, "gan/gan")
    assert not (tmp_path / TRACKER_DIR).exists()


def test_unknown_tracker_is_a_config_error_listing_the_choices():
    with pytest.raises(ConfigError, match="choose from tensorboard, wandb"):
        jobs.get("gan/gan").make_config({"log_with": "tensorbored"})


@pytest.mark.skipif(importlib.util.find_spec("swanlab") is not None, reason="swanlab is installed here")
def test_tracker_without_its_package_is_a_config_error_saying_what_to_install():
    with pytest.raises(ConfigError, match="pip install swanlab"):
        jobs.get("gan/gan").make_config({"log_with": "swanlab"})
