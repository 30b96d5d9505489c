"""The coloured dataset's palette and the colorization GAN's step, grids and scores."""
import pytest
import torch

import jobs
from helpers import tiny
from fashion.colorize.networks import set_bn_momentum
from fashion.colorize.palette import (colourise, dominant_hue, grey_of, item_colours, load_coloured,
                                      nearest_palette_class)
from fashion.colorize.task import ColorizeTask, colour_scores
from fashion.data import load_fashion
from fashion.task import Noise
from fashion.training import fit


def grey_batch(n=40, seed=0):
    gen = torch.Generator().manual_seed(seed)
    grey = torch.randint(0, 256, (n, 1, 28, 28), generator=gen, dtype=torch.uint8)
    grey[:, :, :4] = 0  # a black background band
    return grey, torch.arange(n) % 10


def test_colouring_is_deterministic_and_the_seed_moves_the_jitter():
    grey, labels = grey_batch()
    first = colourise(grey, labels, hue_jitter=8.0, seed=3)
    assert torch.equal(first, colourise(grey, labels, hue_jitter=8.0, seed=3))
    assert not torch.equal(first, colourise(grey, labels, hue_jitter=8.0, seed=4))


def test_coloured_images_are_uint8_rgb_with_the_grey_image_as_brightest_channel():
    grey, labels = grey_batch()
    colour = colourise(grey, labels)
    assert colour.shape == (40, 3, 28, 28) and colour.dtype == torch.uint8
    assert torch.equal(grey_of(colour), grey)


def test_background_stays_black_and_garment_pixels_get_colour():
    grey, labels = grey_batch()
    colour = colourise(grey, labels)
    assert (colour[:, :, :4] == 0).all()
    assert (colour.amax(1) > colour.amin(1))[grey[:, 0] > 50].all(), "bright pixels should not be grey"


def test_every_item_keeps_its_class_colour_despite_the_jitter():
    grey, labels = grey_batch(200)
    assert torch.equal(nearest_palette_class(dominant_hue(colourise(grey, labels, hue_jitter=14.0))), labels)


def test_without_jitter_a_class_is_a_single_colour():
    labels = torch.tensor([3, 3, 3, 7])
    colours = item_colours(labels, hue_jitter=0.0)
    assert torch.equal(colours[0], colours[1]) and torch.equal(colours[0], colours[2])
    assert not torch.equal(colours[0], colours[3])
    assert colours.max(1).values.eq(1.0).all()


def test_a_jitter_that_could_swap_class_colours_is_refused():
    with pytest.raises(ValueError, match="hue_jitter=20"):
        item_colours(torch.tensor([0]), hue_jitter=20)


def test_dataset_colours_train_and_test_and_keeps_the_test_split_held_out(fake_fashion_dir):
    grey, coloured = load_fashion(), load_coloured()
    assert torch.equal(grey_of(coloured.train.images), grey.train.images)
    assert torch.equal(grey_of(coloured.test.images), grey.test.images)
    assert torch.equal(coloured.test.labels, grey.test.labels)


def test_keras_momentum_point_nine_keeps_ninety_percent_of_the_running_mean():
    bn = torch.nn.BatchNorm2d(1)
    set_bn_momentum(bn, 0.9)
    bn.train()(torch.full((4, 1, 2, 2), 10.0))
    assert bn.running_mean.item() == pytest.approx(0.9 * 0.0 + 0.1 * 10.0)


def test_scores_of_the_ground_truth_and_of_a_wrong_colouring():
    grey, labels = grey_batch(20)
    truth = colourise(grey, labels)
    perfect = colour_scores(truth, truth, labels)
    assert perfect["mean_colour_error"] == 0 and perfect["colour_class_accuracy"] == 1
    shifted = colour_scores(colourise(grey, (labels + 1) % 10), truth, labels)
    assert shifted["colour_class_accuracy"] == 0 and shifted["mean_colour_error"] > 10


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def test_one_step_gives_finite_losses_and_moves_both_networks(task_factory):
    task = task_factory("colorize/dcgan", width=8)
    g0, d0 = snapshot(task.nets["G"]), snapshot(task.nets["D"])
    terms = task.train_step(task.data.train.images[:16], task.data.train.labels[:16], Noise("cpu", 0))
    assert {"D.real", "D.fake", "G.adv", "G.l1"} <= set(terms)
    assert all(torch.isfinite(v) for v in terms.values()), terms
    for before, net in ((g0, task.nets["G"]), (d0, task.nets["D"])):
        assert any(not torch.equal(b, p) for b, p in zip(before, net.parameters()))


def test_generator_maps_grey_to_rgb_in_tanh_range(task_factory):
    task = task_factory("colorize/dcgan", width=8)
    out = task.nets["G"](torch.rand(5, 1, 28, 28) * 2 - 1)
    assert out.shape == (5, 3, 28, 28) and out.abs().max() <= 1


def test_training_writes_grey_generated_truth_grids_and_test_scores(fake_fashion_dir, tmp_path):
    config = tiny(jobs.get("colorize/dcgan").make_config(), width=8, epochs=1, epoch_eval_images=64)
    metrics = fit(ColorizeTask, config, tmp_path, "colorize/dcgan")
    assert (tmp_path / "samples" / "epoch_001.png").is_file() and (tmp_path / "samples.gif").is_file()
    scores = metrics["test"]
    assert scores["images"] == 128 and scores["colour_class_accuracy_of_ground_truth"] == 1.0
    assert 0 < scores["psnr"] < 100 and 0 <= scores["colour_class_accuracy"] <= 1
    assert metrics["final"]["test_psnr"] > 0
