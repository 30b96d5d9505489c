"""The run folder's layout and formats, as fashion.runfolder names them and the training loop writes them."""
import csv
import json

import torch
from torch import nn

import jobs
from helpers import data_at, tiny
from fashion import artifacts, runfolder
from fashion.data import CLASSES
from fashion.task import Task, TrainConfig
from fashion.training import fit


class OneWeight(Task):
    """The smallest task: one weight, one loss term, no pictures and no metrics of its own."""

    def __init__(self, config, accelerator, data):
        super().__init__(config, accelerator, data)
        self.nets = {"w": nn.Linear(1, 1)}
        self.opts = {"w": torch.optim.SGD(self.nets["w"].parameters(), lr=0.01)}

    def train_step(self, images, labels, noise):
        x = images[:, :1, 0, :1].float() / 255
        return self.optimize("w", {"loss": self.nets["w"](x).pow(2).mean()})


def test_the_loops_own_columns_and_keys_are_the_ones_runfolder_names(fake_fashion_dir, tmp_path):
    fit(OneWeight, tiny(TrainConfig()), tmp_path / "job", "test/one")
    with open(tmp_path / "job" / runfolder.HISTORY_FILE, newline="") as f:
        columns = set(next(csv.reader(f)))
    assert columns == set(runfolder.BOOKKEEPING) | {"loss"}
    written = set(json.loads((tmp_path / "job" / runfolder.METRICS_FILE).read_text()))
    assert written <= runfolder.LOOP_KEYS
    assert runfolder.LOOP_KEYS - written <= {"gpu", "quality", "fid_curve", "measure_seconds", "selection",
                                             "selection_seconds"}  # gpu: CUDA only; the rest: measured jobs


def test_a_task_that_generates_nothing_leaves_no_evaluation_samples(fake_fashion_dir, tmp_path):
    fit(OneWeight, tiny(TrainConfig()), tmp_path / "job", "test/one")
    assert runfolder.read_eval_samples(tmp_path / "job") is None


def test_a_finished_generator_leaves_its_seeded_evaluation_samples_with_what_the_labels_mean(trained_job, tmp_path):
    with data_at(trained_job.data):  # the same job again
        fit(jobs.get(trained_job.name).task, trained_job.config, tmp_path / "again", trained_job.name)
    first, again = (runfolder.read_eval_samples(folder) for folder in (trained_job.folder, tmp_path / "again"))
    n = trained_job.config.eval_samples
    assert first.images.dtype == torch.uint8 and first.images.shape == (n, 1, 28, 28)
    assert first.labels.shape == (n,) and first.label_names == list(CLASSES) and first.label_kind == "class"
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert first.epoch == 1 and not list(trained_job.folder.glob(f".{runfolder.EVAL_FILE}*"))  # no temp file left


def test_an_unsupervised_code_is_kept_as_a_code(fake_fashion_dir, tmp_path):
    job = jobs.get("gan/infogan")
    fit(job.task, tiny(job.make_config(), eval_samples=16), tmp_path / "job", job.name)
    samples = runfolder.read_eval_samples(tmp_path / "job")
    assert samples.label_kind == "code" and samples.label_names[0] == "code 0"


def test_job_folders_are_found_by_name_without_the_report_or_hidden_folders(tmp_path):
    for name in ("gan/wgan_gp", "vae/conv-z2", "report/classifier", ".replaced/gan__gan-1"):
        artifacts.write_status(tmp_path / name, "completed")
    artifacts.write_json(tmp_path / "classify/cnn" / runfolder.CONFIG_FILE, {})  # started, no status yet
    assert runfolder.job_names(tmp_path) == ["classify/cnn", "gan/wgan_gp", "vae/conv-z2"]
    assert runfolder.job_names(tmp_path, (runfolder.STATUS_FILE,)) == ["gan/wgan_gp", "vae/conv-z2"]
    assert runfolder.job_dir(tmp_path, "gan/wgan_gp") == tmp_path / "gan" / "wgan_gp"


def test_the_log_tail_prefers_the_recorded_log_and_falls_back_to_the_traceback(tmp_path):
    log = tmp_path / "err.log"
    log.write_text("".join(f"line {i}\n" for i in range(50)))
    where, text = runfolder.log_tail(tmp_path, "gan/gan", {"log_err": str(log)}, lines=3)
    assert where == str(log) and text == "line 47\nline 48\nline 49"
    assert runfolder.log_tail(tmp_path, "gan/gan", {"traceback": "Boom"}) == (runfolder.STATUS_FILE, "Boom")


def test_a_snapshot_round_trips_as_uint8(tmp_path):
    path = runfolder.write_snapshot(tmp_path, 7, torch.rand(4, 1, 28, 28))
    epoch, images = runfolder.read_snapshot(path)
    assert path.name == "epoch_007.pt" and epoch == 7 and images.dtype == torch.uint8
    assert runfolder.snapshot_files(tmp_path) == [path]


def test_uint8_images_are_stored_as_they_are_not_scaled_twice(tmp_path):
    floats = torch.rand(4, 1, 28, 28)
    stored = runfolder.to_uint8(floats)
    assert torch.equal(runfolder.to_uint8(stored), stored)
    # the trainer hands its writer thread uint8 images: the file must hold those values, not a white mask
    _, images = runfolder.read_snapshot(runfolder.write_snapshot(tmp_path, 1, stored))
    assert torch.equal(images, stored) and images.unique().numel() > 2


def test_seeds_are_grouped_per_model_lowest_first_models_in_name_order():
    from fashion.runfolder import seeds_by_model

    names = ["gan/wgan.seed10", "gan/gan.seed2", "gan/wgan", "gan/gan", "gan/wgan.seed9", "classify/cnn"]
    assert seeds_by_model(names) == {"classify/cnn": ["classify/cnn"], "gan/gan": ["gan/gan", "gan/gan.seed2"],
                                     "gan/wgan": ["gan/wgan", "gan/wgan.seed9", "gan/wgan.seed10"]}


def test_the_contact_sheet_shows_the_lowest_seed_that_drew_samples_and_counts_every_seed():
    from fashion.report.page import first_seed

    sections = [{"job": "gan/gan.seed1", "samples": "b.png"}, {"job": "gan/gan", "samples": None},
                {"job": "gan/gan.seed2", "samples": "c.png"}, {"job": "gan/wgan"}]
    assert first_seed(sections) == [{"job": "gan/gan.seed1", "samples": "b.png", "seed": 1, "seeds": 3}]


def test_sample_frames_are_in_epoch_order_past_epoch_999(tmp_path):
    (tmp_path / "samples").mkdir()
    for epoch in (1000, 2, 999):
        (tmp_path / "samples" / f"epoch_{epoch:03d}.png").write_bytes(b"")
    assert [p.name for p in runfolder.sample_frames(tmp_path)] == ["epoch_002.png", "epoch_999.png", "epoch_1000.png"]
