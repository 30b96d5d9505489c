"""Classifiers and FGSM: the attack's two variants, the training task, the saved feature extractor."""
import pytest
import torch

import jobs
from helpers import tiny
from fashion.classify.networks import ConvClassifier, DenseClassifier, load_classifier
from fashion.classify.task import ClassifierTask, accuracy, example_strengths, fgsm, fgsm_curve, shift_and_flip
from fashion.task import ConfigError, Noise
from fashion.training import fit


def garments(n=32, seed=0):
    """Float images in [0, 1] with a black background and a bright block, and random labels."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.zeros(n, 1, 28, 28)
    images[:, :, 6:22, 8:20] = torch.rand(n, 1, 16, 12, generator=gen) * 0.8 + 0.1
    return images, torch.randint(10, (n,), generator=gen)


def seeded_model(kind=DenseClassifier, **kwargs):
    torch.manual_seed(0)
    return kind(**kwargs).eval()


@pytest.mark.parametrize("garment_only", [False, True])
def test_fgsm_with_zero_epsilon_leaves_images_unchanged(garment_only):
    model, (images, labels) = seeded_model(), garments()
    assert torch.equal(fgsm(model, images, labels, 0.0, garment_only), images)


def test_fgsm_curve_at_zero_epsilon_is_the_clean_accuracy_for_both_variants():
    model, (images, labels) = seeded_model(ConvClassifier, width=4), garments(50)
    (row,) = fgsm_curve(model, images, labels, [0.0], batch=16)
    assert row["accuracy_all_pixels"] == row["accuracy_garment_pixels"] == accuracy(model, images, labels)


def test_fgsm_curve_matches_attacking_one_epsilon_at_a_time():
    model, (images, labels) = seeded_model(), garments(50)
    rows = fgsm_curve(model, images, labels, [0.05, 0.2], batch=16)
    for row in rows:
        for key, garment_only in (("accuracy_all_pixels", False), ("accuracy_garment_pixels", True)):
            attacked = fgsm(model, images, labels, row["epsilon"], garment_only)
            assert row[key] == pytest.approx(accuracy(model, attacked, labels))


def test_garment_only_fgsm_touches_only_non_zero_pixels():
    model, (images, labels) = seeded_model(ConvClassifier, width=4), garments()
    background = images == 0
    masked = fgsm(model, images, labels, 0.1, garment_only=True)
    assert torch.equal(masked[background], images[background])
    assert (masked != images)[~background].float().mean() > 0.5
    everywhere = fgsm(model, images, labels, 0.1)
    assert (everywhere != images)[background].any(), "the all-pixels variant should move the background"


def test_fgsm_moves_each_pixel_by_at_most_epsilon_and_stays_in_unit_range():
    model, (images, labels) = seeded_model(), garments()
    adversarial = fgsm(model, images, labels, 0.07)
    assert (adversarial - images).abs().max() <= 0.07 + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1


def test_fgsm_examples_show_the_write_ups_epsilons_where_measured_and_the_largest():
    assert example_strengths((0.0, 0.025, 0.05, 0.1, 0.25)) == [0.05, 0.1, 0.25]
    assert example_strengths((0.0, 0.1)) == [0.1]
    assert example_strengths((0.0, 0.02, 0.03, 0.2)) == [0.03, 0.2]  # none of the write-up's: middle and largest
    assert example_strengths((0.0,)) == []


def test_shift_and_flip_moves_a_pixel_at_most_two_places_or_mirrors_it():
    images = torch.zeros(64, 1, 28, 28)
    images[:, 0, 10, 5] = 1.0
    out = shift_and_flip(images, Noise("cpu", 0))
    assert out.shape == images.shape and torch.equal(out.sum((1, 2, 3)), images.sum((1, 2, 3)))
    rows, cols = (out[:, 0] == 1).nonzero()[:, 1:].unbind(1)
    assert ((rows - 10).abs() <= 2).all()
    assert (((cols - 5).abs() <= 2) | ((cols - 22).abs() <= 2)).all()
    assert ((cols - 22).abs() <= 2).any() and ((cols - 5).abs() <= 2).any()


def test_unknown_architecture_and_even_kernel_are_refused_by_name():
    with pytest.raises(ConfigError, match="arch='vgg'"):
        jobs.get("classify/cnn").make_config({"arch": "vgg"})
    with pytest.raises(ConfigError, match="kernel=4"):
        jobs.get("classify/cnn").make_config({"kernel": "4"})


def test_classifier_learns_the_fake_data_and_saves_a_loadable_model(fake_fashion_dir, tmp_path):
    config = tiny(jobs.get("classify/dense").make_config(), epochs=2, limit_batches=0, train_subset=0,
                  test_subset=0, fgsm_epsilons=(0.0, 0.25), train_eval_images=128)
    metrics = fit(ClassifierTask, config, tmp_path, "classify/dense")
    assert metrics["state"] == "completed"
    assert metrics["test_accuracy"] > 0.9
    fgsm_curve = metrics["fgsm"]
    assert fgsm_curve["accuracy_all_pixels"][0] == pytest.approx(metrics["test_accuracy"])
    assert fgsm_curve["accuracy_all_pixels"][1] < fgsm_curve["accuracy_all_pixels"][0]
    for name in ClassifierTask.expected_files:
        assert (tmp_path / name).is_file(), name
    model, info = load_classifier(tmp_path / "model.pt")
    assert info["test_accuracy"] == metrics["test_accuracy"]
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_a_narrow_cnn_with_small_kernels_round_trips_through_save_and_load(tmp_path):
    from fashion.classify.networks import save_classifier

    model = seeded_model(ConvClassifier, width=8, kernel=3)
    save_classifier(tmp_path / "model.pt", model, "cnn", test_accuracy=0.5)
    loaded, info = load_classifier(tmp_path / "model.pt")
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(loaded.features(x), model.features(x)) and info == {"test_accuracy": 0.5}


def test_cosine_schedule_starts_at_the_peak_and_ends_at_zero(task_factory):
    task = task_factory("classify/dense", epochs=2, limit_batches=3)
    lr = task.config.lr
    assert task.learning_rate() == lr
    task.iteration = task.total_steps // 2
    assert task.learning_rate() == pytest.approx(lr / 2)
    task.iteration = task.total_steps
    assert task.learning_rate() == pytest.approx(0.0)
    constant = task_factory("classify/dense", epochs=2, limit_batches=3, lr_schedule="constant")
    constant.iteration = task.total_steps
    assert constant.learning_rate() == lr
