"""The best checkpoint: chosen on training images at each snapshot, kept as best_generator.pt through kills and
resumes, and measured on the test set under a stamp that says so."""
import json

import pytest
import torch

import jobs
from helpers import Interrupted, copy_job, crashing, final_entry, tiny
from fashion import measure, selection
from fashion.checkpoint import load_checkpoint
from fashion.measure import Stamp
from fashion.recorder import FolderRecorder
from fashion.training import fit

TRAIN_FID = {1: 5.0, 2: 3.0, 3: 4.0}
"The selection set's FID of each epoch's snapshot, forced: epoch 2 is the best, the final (3) is not."


@pytest.fixture(scope="module", autouse=True)
def forced_choice():
    """Each snapshot's FID on the training images is TRAIN_FID's, whatever the tiny jobs draw."""
    score = selection.Selection.score

    def forced(self, epoch, images):
        self.ruler.fid = lambda images: TRAIN_FID[epoch]
        return score(self, epoch, images)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(selection.Selection, "score", forced)
        yield


def train(folder, task=None, **changes):
    job = jobs.get("gan/gan")
    config = tiny(job.make_config(), **{"epochs": 3, "snapshot_every": 1, "snapshot_samples": 64, **changes})
    return fit(task or job.task, config, folder, job.name)


def best_weights(folder) -> dict:
    return torch.load(folder / selection.BEST_FILE, weights_only=True)["state_dict"]


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def straight(module_data, tmp_path_factory):
    """gan/gan trained 3 tiny epochs without a stop; tests copy it, or train beside it."""
    folder = tmp_path_factory.mktemp("straight") / "gan/gan"
    train(folder)
    return folder


def test_a_job_keeps_its_best_snapshots_generator_chosen_on_training_images(straight):
    metrics = json.loads((straight / "metrics.json").read_text())
    chosen = metrics["selection"]
    assert chosen["split"] == "train" and chosen["best"]["epoch"] == 2 and chosen["best"]["fid"] == 3.0
    assert [p["epoch"] for p in chosen["points"]] == [1, 2, 3] and metrics["selection_seconds"] >= 0
    kept = torch.load(straight / selection.BEST_FILE, weights_only=True)
    assert kept["selected"]["epoch"] == 2 and kept["selected"]["on"] == "train"
    assert not same(kept["state_dict"], torch.load(straight / "generator.pt", weights_only=True)["state_dict"])
    final = final_entry(metrics["quality"])
    (best,) = [e for e in metrics["quality"].values() if e["stamp"]["checkpoint"] == "best"]
    assert best["stamp"]["selected_on"] == "train" and best["checkpoint_epoch"] == 2 and best["epoch"] == 3
    assert best["stamp"]["fake"] == final["stamp"]["fake"] == 256  # the final's sample count, noise and test set
    assert best["values"]["fid"] != final["values"]["fid"]  # another generator's samples
    assert Stamp.of(best["stamp"]).key == Stamp.of(final["stamp"]).key + " best@train"


def test_the_selection_set_is_training_images_and_never_the_test_set(module_data):
    from fashion.data import load_fashion

    data = load_fashion()
    yardstick = measure.Yardstick.shipped(data.test.images)
    chosen = selection.Selection(yardstick, data.train.images)
    assert chosen.record["data"] != yardstick.data and chosen.record["images"] == len(data.train.images)
    assert chosen.record["data"] == selection.Selection(yardstick, data.train.images).record["data"]  # fixed


def test_the_best_generator_survives_a_kill_and_a_resume(straight, tmp_path):
    resumed = tmp_path / "resumed"
    with pytest.raises(Interrupted):
        train(resumed, crashing(jobs.get("gan/gan").task, after_steps=4))  # dies in epoch 3, after the best
    assert load_checkpoint(resumed)["epoch"] == 2
    assert same(best_weights(resumed), load_checkpoint(resumed)["nets"]["G"])  # epoch 2's generator
    train(resumed)
    assert same(best_weights(resumed), best_weights(straight))
    a, b = (json.loads((folder / "metrics.json").read_text()) for folder in (straight, resumed))
    assert a["selection"] == b["selection"] and a["quality"] == b["quality"]


def test_a_best_generator_lost_by_a_kill_is_written_again_at_the_resume(straight, tmp_path, monkeypatch):
    """The kill between epoch 2's checkpoint (which names epoch 2 the best) and its best_generator.pt."""
    resumed = tmp_path / "resumed"
    keep = FolderRecorder._keep_best
    with monkeypatch.context() as patch:
        patch.setattr(FolderRecorder, "_keep_best",
                      lambda self, task: None if len(self.epochs) == 2 else keep(self, task))
        with pytest.raises(Interrupted):
            train(resumed, crashing(jobs.get("gan/gan").task, after_steps=4))
    assert torch.load(resumed / selection.BEST_FILE, weights_only=True)["selected"]["epoch"] == 1  # the lost write
    train(resumed)
    assert same(best_weights(resumed), best_weights(straight))


def test_a_fresh_start_forgets_an_earlier_attempts_best_generator(straight, tmp_path):
    again = tmp_path / "again"
    copy_job(straight, again, link=False)
    assert (again / selection.BEST_EVAL_FILE).exists()
    (again / "checkpoint.pt").unlink()  # as a user starting the job again by hand
    (again / "status.json").unlink()
    train(again, epochs=1)
    kept = torch.load(again / selection.BEST_FILE, weights_only=True)
    assert kept["selected"]["epoch"] == 1 and not (again / selection.BEST_EVAL_FILE).exists()


def test_numbers_stamped_before_the_best_checkpoint_read_as_the_final_generators():
    old = {"evaluator": "fashion-eval-v1", "sha256": "7db6f474d9aa", "fake": 10000, "real": 10000,
           "reference": "test", "data": "c867c93ff953", "protocol": 1}  # a metrics.json of an older run
    stamp = Stamp.of(old)
    assert (stamp.checkpoint, stamp.selected_on) == ("final", "")
    assert stamp.key == "fashion-eval-v1@7db6f474d9aa 10000v10000 test:c867c93ff953 p1"
