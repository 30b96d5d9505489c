"""The VAE family: the loss terms, the conditioning path, the latent analyses and the ablation catalogue."""
import json
import re

import pytest
import torch
from torch.distributions import Normal, kl_divergence

import jobs
from helpers import tiny
from fashion.checkpoint import load_checkpoint
from fashion.classify.networks import DenseClassifier, save_classifier
from fashion.data import CLASSES
from fashion.task import ConfigError, Noise
from fashion.training import fit
from fashion.vae import VAE, ConditionalVAE, VAEConfig, gaussian_kl, reconstruction_loss
from fashion.vae.analysis import (epochs_shown, first_of_each_class, firsts_per_class, interpolate,
                                  manifold_latents, most_varied_dims, parse_pair, traversal_latents)


def small(job, **changes):
    """A tiny config with a small batch: these tests check behaviour, not speed."""
    return tiny(job.make_config(), **{"batch_size": 32, **changes})


@pytest.fixture
def task_factory(task_factory):
    """conftest's task_factory with :func:`small`'s batch."""
    return lambda job_name, **changes: task_factory(job_name, **{"batch_size": 32, **changes})


def train(task, steps, seed=0):
    data, noise = task.data.train, Noise(task.device, seed)
    for step in range(steps):
        index = torch.arange(step * 32, step * 32 + 32) % len(data)
        task.train_step(data.images[index], data.labels[index], noise)


# -- the loss ----------------------------------------------------------------------------------------
def test_kl_term_equals_the_closed_form_gaussian_kl():
    mean, logvar = torch.randn(6, 5), torch.randn(6, 5)
    expected = kl_divergence(Normal(mean, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(gaussian_kl(mean, logvar), expected, atol=1e-5)


def test_kl_of_a_unit_shift_is_half_a_nat_per_dimension():
    assert torch.allclose(gaussian_kl(torch.ones(2, 4), torch.zeros(2, 4)), torch.full((2,), 2.0))
    assert torch.equal(gaussian_kl(torch.zeros(1, 3), torch.zeros(1, 3)), torch.zeros(1))


def test_a_dimension_counts_as_informative_only_above_a_tenth_of_a_nat():
    from fashion.vae.analysis import informative_dims
    from fashion.vae.task import kl_per_dim

    # Means that vary a little (std 0.11 > active_dims' 0.01 variance) but a posterior at the prior's width.
    mean = torch.cat([torch.randn(1000, 1), 0.11 * torch.randn(1000, 1)], 1)
    kl = kl_per_dim(mean, torch.zeros(1000, 2)).mean(0)
    assert informative_dims(kl) == 1


def test_bce_reconstruction_is_the_bernoulli_negative_log_likelihood_summed_over_pixels():
    logits, target = torch.randn(3, 1, 4, 4), torch.rand(3, 1, 4, 4)
    p = torch.sigmoid(logits)
    expected = -(target * p.log() + (1 - target) * (1 - p).log()).flatten(1).sum(1)
    assert torch.allclose(reconstruction_loss("bce", logits, target), expected, atol=1e-4)


def test_mse_reconstruction_is_the_summed_squared_error_of_the_mean_image():
    logits, target = torch.randn(3, 1, 4, 4), torch.rand(3, 1, 4, 4)
    expected = (torch.sigmoid(logits) - target).pow(2).flatten(1).sum(1)
    assert torch.allclose(reconstruction_loss("mse", logits, target), expected)
    exact = torch.logit(target)
    assert reconstruction_loss("mse", exact, target).max() < 1e-10


def test_bad_vae_settings_are_rejected_with_the_allowed_values():
    with pytest.raises(ConfigError, match="bce, mse"):
        VAEConfig(recon_loss="l1").validate()
    with pytest.raises(ConfigError, match="mlp, conv, blocks"):
        VAEConfig(arch="resnet").validate()
    with pytest.raises(ConfigError, match="A:B"):
        VAEConfig(interpolate=("Pullover-Sneaker",)).validate()
    with pytest.raises(ConfigError, match="beta"):
        VAEConfig(beta=-1).validate()


@pytest.mark.parametrize("arch", ["mlp", "conv", "blocks"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 80, 60)])
def test_every_architecture_encodes_to_z_and_decodes_to_the_image_shape(arch, shape):
    config = VAEConfig(arch=arch, latent_dim=7, filters=(4, 8), hidden=(16,))
    vae = VAE(config, shape, cond_dim=3)
    x, cond = torch.rand(2, *shape), torch.rand(2, 3)
    mean, logvar = vae.encode(x, cond)
    assert mean.shape == logvar.shape == (2, 7)
    assert vae.decode(mean, cond).shape == (2, *shape)


# -- training ----------------------------------------------------------------------------------------
def test_test_set_negative_elbo_falls_during_a_short_training(task_factory):
    task = task_factory("vae/mlp")
    before = task.evaluate()[0]["test_neg_elbo"]
    train(task, 25)
    after = task.evaluate()[0]["test_neg_elbo"]
    assert after < before - 50, (before, after)


def test_reparameterisation_noise_comes_from_the_loop_noise_not_the_global_rng(task_factory):
    def trained_weights(global_seed, noise_seed):
        torch.manual_seed(0)
        task = task_factory("vae/conv-z5")
        torch.manual_seed(global_seed)
        train(task, 2, seed=noise_seed)
        return torch.cat([p.detach().flatten() for p in task.vae.parameters()])

    reference = trained_weights(global_seed=1, noise_seed=0)
    assert torch.equal(reference, trained_weights(global_seed=2, noise_seed=0))
    assert not torch.equal(reference, trained_weights(global_seed=1, noise_seed=1))


def test_beta_zero_trains_on_reconstruction_only_but_still_logs_the_kl(task_factory):
    task = task_factory("vae/conv-z20-nokl")
    data = task.data.train
    terms = task.train_step(data.images[:32], data.labels[:32], Noise(task.device, 0))
    assert terms["kl"] > 0 and torch.allclose(terms["loss"], terms["recon"])


def test_a_2d_job_writes_its_pictures_and_the_test_elbo_each_epoch(fake_fashion_dir, tmp_path):
    job = jobs.get("vae/conv-z2")
    config = small(job, epochs=2)
    fit(job.task, config, tmp_path, job.name)
    for name in job.task.expected_files + ("recon/epoch_002.png", "latent/epoch_002.png"):
        assert (tmp_path / name).is_file(), name
    assert sorted(load_checkpoint(tmp_path)["task"]["recon_rows"]) == [0, 1, 2]  # epoch 0: untrained
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_neg_elbo"] > 0 and metrics["test_active_dims"] <= 2
    assert metrics["test_informative_dims"] <= 2
    header = (tmp_path / "history.csv").read_text().splitlines()[0].split(",")
    assert {"loss", "recon", "kl", "test_loss", "test_recon", "test_kl", "test_neg_elbo"} <= set(header)


def test_a_resumed_run_equals_an_uninterrupted_one_reconstruction_rows_included(fake_fashion_dir, tmp_path):
    job = jobs.get("vae/mlp")
    fit(job.task, small(job, epochs=2), tmp_path / "straight", job.name)
    fit(job.task, small(job, epochs=1), tmp_path / "resumed", job.name)
    fit(job.task, small(job, epochs=2), tmp_path / "resumed", job.name)
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    for key, tensor in a["nets"]["vae"].items():
        assert torch.equal(tensor, b["nets"]["vae"][key]), key
    rows_a, rows_b = a["task"]["recon_rows"], b["task"]["recon_rows"]
    assert sorted(rows_b) == [0, 1, 2] and rows_b[0].shape == (10, 1, 28, 28)
    assert all(torch.equal(rows_a[e], rows_b[e]) for e in rows_a)


# -- the reconstruction figure (Hilbers' Fig. 4) -------------------------------------------------------
def test_reconstruction_rows_start_with_the_untrained_network_on_the_first_ten_test_images(task_factory):
    task = task_factory("vae/conv")
    untrained = task.reconstruct(task.encode_means(list(range(10))))
    assert task.recon_index == list(range(10)) and torch.equal(task.recon_rows[0], untrained)
    train(task, 3)
    assert not torch.equal(task.reconstruct(task.encode_means(task.recon_index)), untrained)
    assert list(task.recon_rows) == [0]  # training leaves the epoch-0 row as it was drawn


def test_a_checkpoint_that_reconstructed_other_images_restarts_the_figure(task_factory):
    task = task_factory("vae/mlp")
    row0 = task.recon_rows[0]
    task.load_state_dict({"recon_rows": [torch.zeros(10, 1, 28, 28, dtype=torch.uint8)]})  # no recon_index
    assert list(task.recon_rows) == [0] and torch.equal(task.recon_rows[0], row0)
    saved = {"recon_rows": {0: row0, 1: row0 // 2}, "recon_index": list(range(10))}
    task.load_state_dict(saved)
    assert sorted(task.recon_rows) == [0, 1]


def test_the_figure_shows_every_epoch_or_evenly_spaced_ones_from_epoch_0_to_the_last():
    assert epochs_shown([2, 0, 1]) == [0, 1, 2]
    shown = epochs_shown(range(31), most=15)
    assert len(shown) == 15 and shown[0] == 0 and shown[-1] == 30 and shown == sorted(shown)


# -- the latent traversal (the PyTorch recipe) and the data set's classes ------------------------------
def test_traversal_shifts_every_dimension_then_each_one_alone():
    mean, offsets = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([-0.5, 0.0, 3.0])
    walks = traversal_latents(mean, offsets, [0, 2])
    assert walks.shape == (3, 3, 3)
    assert torch.equal(walks[0, 2], mean + 3) and torch.equal(walks[0, 1], mean)
    assert torch.equal(walks[1, 0], torch.tensor([0.5, -2.0, 0.5]))
    assert torch.equal(walks[2, 2], torch.tensor([1.0, -2.0, 3.5]))


def test_a_large_latent_walks_the_dimensions_whose_means_vary_most_in_index_order():
    means = torch.randn(500, 6) * torch.tensor([0.1, 3.0, 0.2, 2.0, 1.0, 0.01])
    assert most_varied_dims(means, 3) == [1, 3, 4]
    assert most_varied_dims(means, 8) == list(range(6))


def test_traversal_steps_run_from_minus_half_to_three_by_quarters():
    from fashion.vae.task import TRAVERSAL_OFFSETS

    assert TRAVERSAL_OFFSETS[0] == -0.5 and TRAVERSAL_OFFSETS[-1] == 3.0
    assert all(b - a == 0.25 for a, b in zip(TRAVERSAL_OFFSETS, TRAVERSAL_OFFSETS[1:]))


def test_the_traversal_decodes_the_first_test_image_at_its_mean_where_the_shift_is_zero(task_factory):
    task = task_factory("vae/conv-z5")
    train(task, 3)
    _, means = task.evaluate()
    offsets = torch.tensor([0.0, 1.0])
    walks = traversal_latents(means[0], offsets, [0])
    images = task.decode01(walks.flatten(0, 1)).view(2, 2, 1, 28, 28)
    at_mean = task.decode01(means[:1])[0]
    assert torch.allclose(images[0, 0], at_mean) and torch.allclose(images[1, 0], at_mean)
    assert not torch.allclose(images[1, 1], at_mean)


def test_dataset_overview_takes_the_first_images_of_each_class_in_class_order():
    classes = torch.tensor([1, 0, 1, 1, 2, 0])
    assert firsts_per_class(classes, 2, 4) == [[1, 5], [0, 2], [4], []]


# -- conditioning ------------------------------------------------------------------------------------
def test_conditional_decoder_draws_the_asked_class(task_factory):
    task = task_factory("vae/cond")
    z = torch.randn(1, task.config.latent_dim).repeat(2, 1)
    images = task.decode01(z, task.asked(torch.tensor([7, 8])))
    assert not torch.allclose(images[0], images[1])


def test_conditional_samples_grid_has_one_class_per_row(task_factory):
    task = task_factory("vae/cond")
    assert torch.equal(task.grid_conditions.argmax(1), torch.arange(10))
    assert torch.equal(task.fixed_z.view(10, 10, -1)[0], task.fixed_z.view(10, 10, -1)[9])


def test_conditional_metric_samples_return_the_asked_classes(task_factory):
    task = task_factory("vae/cond")
    images, classes = task.metric_samples(12, Noise(task.device, 3))
    assert images.shape == (12, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    assert classes.shape == (12,) and classes.max() < 10
    assert task_factory("vae/mlp").metric_samples(4, Noise("cpu", 3))[1] is None


def test_a_classifier_checkpoint_turns_the_condition_into_class_probabilities(task_factory, tmp_path):
    path = save_classifier(tmp_path / "model.pt", DenseClassifier(), "dense")
    task = task_factory("vae/cond", classifier=str(path))
    x = task.data.train.images[:5].float() / 255
    cond = task.condition(x, task.data.train.labels[:5])
    assert torch.allclose(cond.sum(1), torch.ones(5)) and (cond < 1).all() and (cond > 0).all()
    with pytest.raises(ConfigError, match="classify/cnn"):
        jobs.get("vae/cond").make_config({"classifier": str(tmp_path / "missing.pt")})


# -- latent analyses ---------------------------------------------------------------------------------
def test_interpolation_runs_from_a_to_b_in_the_asked_number_of_steps():
    a, b = torch.zeros(3), torch.tensor([1.0, 2.0, 3.0])
    path = interpolate(a, b, 5)
    assert path.shape == (5, 3) and torch.equal(path[0], a) and torch.equal(path[-1], b)
    assert torch.allclose(path[2], (a + b) / 2)


def test_interpolation_and_arithmetic_pictures_have_the_documented_layout(task_factory):
    task = task_factory("vae/cond", interpolate=("Pullover:Sneaker", "3:4"), arithmetic=("Bag:0+1",))
    _, means = task.evaluate()
    rows = task.interpolation_rows(means)
    assert rows.shape == (2, 12, 1, 28, 28)
    first_pullover = int((task.data.test.labels == CLASSES.index("Pullover")).nonzero()[0])
    assert torch.equal(rows[0, 0], task.data.test.images[first_pullover].float() / 255)
    ((ends, originals, moved, title),) = task.arithmetic_panels(means)
    assert ends.shape == (2, 1, 28, 28) and originals.shape == moved.shape == (10, 1, 28, 28)
    assert title == "x + (a - b), a = Bag, b = 0+1"


def test_pair_specs_name_classes_or_test_images_and_reject_the_rest():
    classes = torch.tensor([0, 1, 1, 2])
    a, b, label = parse_pair("trouser:0+3", ("zero", "Trouser", "two"), classes)
    assert label == "" and parse_pair("legs=1:0", ("zero",), classes)[2] == "legs"
    assert a.single_class and a.indices == [1, 2] and not b.single_class and b.indices == [0, 3]
    means = torch.arange(4.0)[:, None]
    assert a.endpoint(means).item() == 1 and a.latent(means).item() == 1.5 and b.latent(means).item() == 1.5
    with pytest.raises(ConfigError, match="out of range"):
        parse_pair("0:9", ("zero",), classes)
    with pytest.raises(ConfigError, match="neither"):
        parse_pair("0:Hat", ("zero",), classes)


def test_shown_test_images_are_the_first_of_each_class_topped_up_in_order():
    assert first_of_each_class(torch.tensor([3, 1, 1, 0, 3]), 4) == [3, 1, 0, 2]
    assert first_of_each_class(torch.tensor([2, 0, 1]), 2) == [1, 2]


def test_manifold_grid_covers_the_prior_quantiles_with_positive_z2_on_top():
    grid = manifold_latents(4).view(4, 4, 2)
    assert torch.allclose(grid[0, 0], torch.tensor([-1.6449, 1.6449]), atol=1e-3)
    assert (grid[:, 1:, 0] > grid[:, :-1, 0]).all() and (grid[1:, :, 1] < grid[:-1, :, 1]).all()


# -- the catalogue -----------------------------------------------------------------------------------
NAME = re.compile(r"vae/(?P<arch>mlp|conv)(-z(?P<z>\d+))?(?P<mse>-mse)?(?P<kl>-nokl|-beta(?P<beta>\d+))?$")


@pytest.mark.parametrize("name", [n for n in jobs.CATALOGUE if NAME.match(n)])
def test_ablation_names_map_to_the_configs_they_claim(name):
    parts = NAME.match(name).groupdict()
    config = jobs.get(name).make_config()
    assert config.arch == parts["arch"]
    assert config.latent_dim == int(parts["z"] or 20)
    assert config.recon_loss == ("mse" if parts["mse"] else "bce")
    assert config.beta == (0.0 if parts["kl"] == "-nokl" else float(parts["beta"] or 1))
    reference = jobs.get(f"vae/{parts['arch']}").make_config()
    assert (config.filters, config.hidden, config.optimizer, config.lr, config.batch_size) == \
        (reference.filters, reference.hidden, reference.optimizer, reference.lr, reference.batch_size)


def test_the_ablation_grid_covers_each_choice_the_issue_asks_about():
    configs = [jobs.get(n).make_config() for n in jobs.CATALOGUE if NAME.match(n)]
    assert {c.latent_dim for c in configs} >= {2, 5, 10, 20, 50, 100}
    assert {c.recon_loss for c in configs} == {"bce", "mse"}
    assert {0.0, 1.0} < {c.beta for c in configs} and max(c.beta for c in configs) > 1
    assert {c.arch for c in configs} == {"mlp", "conv"}
    assert 12 <= len(configs) <= 16


def test_2d_ablations_declare_the_latent_map_and_manifold():
    for name in jobs.CATALOGUE:
        if NAME.match(name):
            has_plane = "manifold.png" in jobs.get(name).task.expected_files
            assert has_plane == (jobs.get(name).make_config().latent_dim == 2), name


def test_conditional_job_uses_the_write_up_settings():
    job = jobs.get("vae/cond")
    config = job.make_config()
    assert job.task is ConditionalVAE and "class_grid.png" in job.task.expected_files
    assert (config.arch, config.optimizer, config.latent_dim) == ("blocks", "rmsprop", 100)


# -- what docs/models.md says of the write-ups ------------------------------------------------------------
def test_vae_targets_are_in_the_sigmoid_range_not_the_recipes_minus_one_to_one(task_factory, monkeypatch):
    import fashion.vae.task as vae_task

    seen = []
    monkeypatch.setattr(vae_task, "reconstruction_loss", lambda kind, logits, target: seen.append(target)
                        or vae_task.F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1))
    task = task_factory("vae/mlp-z20-mse")
    images = torch.zeros(32, 1, 28, 28, dtype=torch.uint8)
    images[:, :, :14] = 255
    task.train_step(images, torch.zeros(32, dtype=torch.long), Noise(task.device, 0))
    assert seen[0].min() == 0 and seen[0].max() == 1  # black is 0, not the recipe's -1


def test_z_is_drawn_with_the_standard_deviation_whose_variance_the_kl_takes(task_factory):
    vae = task_factory("vae/mlp").vae
    x, eps = torch.rand(4, 1, 28, 28), torch.randn(4, 20)
    _, mean, logvar = vae(x, None, eps)
    expected = vae.decode(mean + eps * logvar.exp().sqrt())
    assert torch.allclose(vae(x, None, eps)[0], expected, atol=1e-5)


def test_the_conv_decoder_starts_from_the_encoders_last_map_not_mendezs_49_units():
    vae = VAE(jobs.get("vae/conv").make_config(), (1, 28, 28))
    first = vae.decoder.dense[0]
    assert (first.in_features, first.out_features) == (20, 64 * 7 * 7)


def test_the_blocks_encoder_pools_by_two_after_conv_batchnorm_relu():
    from torch import nn

    vae = VAE(jobs.get("vae/cond").make_config(), (1, 28, 28))
    kinds = [type(m) for m in vae.encoder.body]
    assert kinds[:4] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]
    assert {m.kernel_size for m in vae.encoder.body if isinstance(m, nn.MaxPool2d)} == {2}


def test_the_write_ups_training_lengths_differ_as_documented():
    conv, z2, mlp = (jobs.get(n).make_config() for n in ("vae/conv", "vae/conv-z2", "vae/mlp-z20-mse"))
    assert (conv.batch_size, conv.epochs) == (128, 30)  # Hilbers: 100 and 5
    assert z2.epochs == 30 and (mlp.epochs, mlp.recon_loss) == (30, "mse")  # Méndez's manifold: 50; the recipe: 10
