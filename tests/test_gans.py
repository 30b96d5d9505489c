"""Every registered GAN: one real training step on CPU, and the pieces that make each GAN itself."""
import pytest
import torch

from fashion.data import to_tanh_range
from fashion.gans import REGISTRY
from fashion.task import Noise


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def changed(before, module):
    return any(not torch.equal(b, p) for b, p in zip(before, module.parameters()))


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_one_step_gives_finite_losses_and_updates_the_right_network(name, task_factory):
    task = task_factory(f"gan/{name}")
    images, labels = task.data.train.images[:64], task.data.train.labels[:64]
    g0, d0 = snapshot(task.G), snapshot(task.D)
    terms = task.train_step(images, labels, Noise("cpu", 0))
    assert terms and all(torch.isfinite(v) for v in terms.values()), terms
    assert changed(d0, task.D), "the discriminator did not move"
    assert changed(g0, task.G) == (task.config.n_critic == 1), "G must move only on its own steps"
    for _ in range(task.config.n_critic - 1):
        terms = task.train_step(images, labels, Noise("cpu", 1))
    assert changed(g0, task.G) and "G" in terms


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_grids_and_metric_samples_are_images_in_range(name, task_factory):
    task = task_factory(f"gan/{name}")
    for latent in task.fixed_grids.values():
        assert task.generate(latent).shape == (100, 1, 28, 28)
    images, labels = task.metric_samples(30, Noise("cpu", 0))
    assert images.shape == (30, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    assert (labels is not None) == (task.conditional or name == "infogan")


def test_registry_holds_the_ten_reference_gans():
    assert sorted(REGISTRY) == ["acgan", "began", "cgan", "dragan", "ebgan", "gan", "infogan", "lsgan",
                                "wgan", "wgan_gp"]


def test_wgan_clips_every_critic_weight(task_factory):
    task = task_factory("gan/wgan")
    task.train_step(task.data.train.images[:64], task.data.train.labels[:64], Noise("cpu", 0))
    assert max(p.abs().max().item() for p in task.D.parameters()) <= task.config.clip + 1e-7


@pytest.mark.parametrize("name", ["wgan_gp", "dragan"])
def test_a_penalised_d_loss_draws_its_penalty_points_from_the_noise_it_is_given(name, task_factory):
    # No train_step has run: the hook reads no per-step state, and equal noise gives equal penalty points.
    task = task_factory(f"gan/{name}")
    real, fake = to_tanh_range(task.data.train.images[:8]), torch.rand(8, 1, 28, 28) * 2 - 1
    penalty = lambda seed: task.d_loss(real, fake, None, None, Noise("cpu", seed))["gp"]
    assert torch.equal(penalty(3), penalty(3)) and not torch.equal(penalty(3), penalty(4))


@pytest.mark.parametrize("name", ["ebgan", "began"])
def test_autoencoder_d_reconstructs_a_batch_of_identical_fakes_according_to_the_image(name, task_factory):
    # A collapsed generator's batch must still get an image-dependent energy, or G has no gradient to escape.
    task = task_factory(f"gan/{name}")
    shirt, boot = torch.full((8, 1, 28, 28), -0.5), torch.full((8, 1, 28, 28), 0.5)
    with torch.no_grad():
        recon_shirt, recon_boot = task.D(shirt)[0], task.D(boot)[0]
    assert not torch.allclose(recon_shirt, recon_boot, atol=1e-4)


def test_began_k_moves_toward_equilibrium_and_stays_in_unit_interval(task_factory):
    task = task_factory("gan/began", lambda_k=0.5)
    ks = []
    for step in range(4):
        terms = task.train_step(task.data.train.images[:64], task.data.train.labels[:64], Noise("cpu", step))
        ks.append(terms["k"].item())
        assert "M" in terms
    assert all(0.0 <= k <= 1.0 for k in ks) and len(set(ks)) > 1


def test_infogan_reads_real_fake_from_column_zero(task_factory):
    task = task_factory("gan/infogan")
    real = torch.zeros(4, 1, 28, 28)
    with torch.no_grad():
        task.D.fc[-1].bias.zero_()
        task.D.fc[-1].bias[0] = 50.0  # D now says "real" with certainty, and nothing else changes
    noise = Noise("cpu", 0)
    terms = task.d_loss(real, real, None, task.latent(torch.zeros(4, dtype=torch.long), noise), noise)
    assert terms["real"].item() < 1e-6 and terms["fake"].item() > 10


@pytest.mark.parametrize("name", ["cgan", "acgan", "infogan"])
def test_conditional_grid_is_the_references_one_class_per_column_one_z_per_row(task_factory, name):
    task = task_factory(f"gan/{name}")
    grid, z_dim = task.fixed_grids[""], task.config.z_dim
    classes = grid[:, z_dim:z_dim + 10].argmax(1).view(10, 10)
    assert (classes == torch.arange(10)[None, :]).all()
    z = grid[:, :z_dim].view(10, 10, z_dim)
    assert (z == z[:, :1]).all() and len({tuple(row[0].tolist()) for row in z}) == 10


def test_infogan_draws_the_references_two_code_sweep_besides_one_sweep_per_code(task_factory):
    task = task_factory("gan/infogan")
    assert list(task.fixed_grids) == ["", "c1", "c2", "c1c2"]
    z_dim, steps = task.config.z_dim, torch.linspace(-1, 1, 10)
    both = task.fixed_grids["c1c2"]
    codes = both[:, z_dim + 10:].view(10, 10, 2)
    assert torch.equal(codes[..., 0], steps[:, None].expand(10, 10))  # c1 down the rows
    assert torch.equal(codes[..., 1], steps[None, :].expand(10, 10))  # c2 across the columns
    assert (both[:, z_dim:z_dim + 10].argmax(1) == 0).all() and (both[:, :z_dim] == both[:1, :z_dim]).all()
    c1 = task.fixed_grids["c1"][:, z_dim:].view(10, 10, 12)
    assert (c1[..., :10].argmax(-1) == torch.arange(10)[:, None]).all()  # a categorical code per row
    assert torch.equal(c1[..., 10], steps[None, :].expand(10, 10)) and (c1[..., 11] == 0).all()
