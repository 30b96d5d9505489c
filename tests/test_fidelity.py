"""The GANs keep the reference's meaning: EBGAN's decoder and energy, BEGAN's learning-rate decay, fp32 by
default, and a gradient penalty that survives fp16's loss scaling."""
import csv

import pytest
import torch

import jobs
from helpers import Interrupted, crashing, tiny
from fashion.checkpoint import load_checkpoint
from fashion.gans import REGISTRY
from fashion.gans.losses import gradient_penalty
from fashion.runtime import resolve_precision
from fashion.training import fit


def affine_rank_of_reconstructions(task, n=80):
    images = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        recon = task.D(images)[0].flatten(1).double()
    return torch.linalg.matrix_rank(recon - recon.mean(0), rtol=1e-6).item()


def test_ebgan_reconstructions_are_not_confined_to_the_32_dimensional_code_subspace(task_factory):
    # The reference decoder has a ReLU after its FC layer; without it code -> image is affine.
    assert affine_rank_of_reconstructions(task_factory("gan/ebgan")) > 32


def test_began_keeps_the_reference_linear_decoder(task_factory):
    assert affine_rank_of_reconstructions(task_factory("gan/began")) <= 32


def test_ebgan_generator_energy_reaches_the_image_only_through_d_reconstruction(task_factory):
    task = task_factory("gan/ebgan")
    with torch.no_grad():  # D now reconstructs every image as the same constant: no path through D
        task.D.decode.weight.zero_()
        task.D.decode.bias.fill_(0.3)
    fake = (torch.rand(8, 1, 28, 28) * 2 - 1).requires_grad_(True)
    task.g_loss(fake, None, None, None)["energy"].backward()
    assert fake.grad.abs().max().item() == 0.0


def test_began_halves_both_learning_rates_after_an_epoch_whose_mean_m_did_not_improve(task_factory):
    task = task_factory("gan/began")
    lrs = lambda: [g["lr"] for opt in task.opts.values() for g in opt.param_groups]
    assert task.after_epoch(1, {"M": 0.30}) == {"lr_g": 2e-4, "lr_d": 2e-4} and lrs() == [2e-4, 2e-4]
    task.after_epoch(2, {"M": 0.25})  # improved: unchanged
    assert lrs() == [2e-4, 2e-4]
    task.after_epoch(3, {"M": 0.28})  # worse than the best (0.25), though better than nothing else
    assert lrs() == [1e-4, 1e-4]
    for epoch in range(4, 9):
        task.after_epoch(epoch, {"M": 0.26})
    assert lrs() == [2e-5, 2e-5]  # the floor


def test_began_learning_rate_decay_is_logged_and_resumes_exactly(fake_fashion_dir, tmp_path):
    # One step per epoch: M is then noisy enough to not improve at some epochs (it always fell with 3).
    config = tiny(jobs.get("gan/began").make_config(), epochs=4, limit_batches=1, snapshot_every=0)
    fit(REGISTRY["began"], config, tmp_path / "straight", "gan/began")
    with pytest.raises(Interrupted):  # dies in epoch 3, after the decisions of epochs 1 and 2
        fit(crashing(REGISTRY["began"], after_steps=2), config, tmp_path / "resumed", "gan/began")
    fit(REGISTRY["began"], config, tmp_path / "resumed", "gan/began")
    rows = list(csv.DictReader((tmp_path / "straight/history.csv").open()))
    lr = [float(r["lr_g"]) for r in rows]
    assert lr[0] == 2e-4 and min(lr) < 2e-4, f"no decay in this run ({lr}): the test needs one"
    for e in range(1, len(rows)):
        best = min(float(r["M"]) for r in rows[:e - 1]) if e > 1 else float("inf")
        decayed = float(rows[e - 1]["M"]) >= best
        assert lr[e] == pytest.approx(lr[e - 1] / 2 if decayed else lr[e - 1])
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    assert a["task"]["best_m"] == b["task"]["best_m"]
    for net in a["nets"]:
        assert all(torch.equal(t, b["nets"][net][k]) for k, t in a["nets"][net].items()), net
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in rows]
    assert strip(a["history"]) == strip(b["history"])


def test_gradient_penalty_with_fp16_loss_scale_equals_the_unscaled_one():
    critic = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1))
    points = torch.randn(8, 6)
    weights = [p for name, p in critic.named_parameters() if name != "2.bias"]  # the last bias has no say
    plain = gradient_penalty(critic, points)
    plain_grads = torch.autograd.grad(plain, weights)
    scaled = gradient_penalty(critic, points, scale=65536.0)
    scaled_grads = torch.autograd.grad(scaled, weights)
    assert scaled.item() == pytest.approx(plain.item(), rel=1e-5)
    for a, b in zip(plain_grads, scaled_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_auto_precision_keeps_gans_in_fp32_even_where_bf16_is_available(name):
    assert resolve_precision("auto", cuda=True, auto=REGISTRY[name].auto_precision, bf16_supported=True) == "no"


def test_auto_precision_is_bf16_for_the_other_families_on_a_gpu_that_has_it():
    families = {job.task for job in jobs.CATALOGUE.values() if job.suite != "gans"}
    assert families and all(resolve_precision("auto", True, t.auto_precision, bf16_supported=True) == "bf16"
                            for t in families)
    assert resolve_precision("auto", False, "bf16") == "no"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_a_penalised_d_has_no_batchnorm_and_the_others_keep_the_references(name, task_factory):
    # A gradient penalty is a per-sample gradient norm; BatchNorm makes each sample's output depend on the batch.
    task = task_factory(f"gan/{name}")
    batchnorms = [m for m in task.D.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    penalised = hasattr(task.config, "gp_weight")
    autoencoder = name in ("ebgan", "began")  # their D never had BatchNorm where it would matter (networks.py)
    assert (not batchnorms) if penalised or autoencoder else len(batchnorms) == 2


def test_batchnorm_scale_starts_at_one_and_shift_at_zero(task_factory):
    # torch 0.4, which the reference ran on, drew the scale from U(0, 1); torch's own default since, and the
    # BatchNorm paper's, is the identity.
    task = task_factory("gan/gan")
    norms = [m for net in (task.G, task.D) for m in net.modules()
             if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    assert norms and all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in norms)


@pytest.mark.parametrize("name", ["gan", "wgan"])
def test_g_runs_once_per_iteration_so_its_batchnorm_statistics_move_once(name, task_factory):
    from fashion.task import Noise

    task = task_factory(f"gan/{name}")
    tracked = next(m for m in task.G.modules() if isinstance(m, torch.nn.BatchNorm1d)).num_batches_tracked
    for step in range(task.config.n_critic):
        task.train_step(task.data.train.images[:16], task.data.train.labels[:16], Noise("cpu", step))
    assert tracked.item() == task.config.n_critic  # the reference: one more on each G step (same z, same G)


def test_the_critic_schedule_counts_iterations_across_epochs(fake_fashion_dir, tmp_path):
    # Two epochs of 3 steps with 5 critic steps per G step: G steps at the 5th iteration overall, which the
    # reference's per-epoch counter (G at the 5th step of an epoch) would never reach.
    config = tiny(jobs.get("gan/wgan").make_config(), epochs=2, limit_batches=3, snapshot_every=0)
    fit(REGISTRY["wgan"], config, tmp_path, "gan/wgan")
    rows = list(csv.DictReader((tmp_path / "losses.csv").open()))
    assert [int(r["iteration"]) for r in rows if r.get("G")] == [5]


def test_supervised_infogan_samples_and_measures_every_class_it_asks_for(task_factory):
    from fashion.data import NUM_CLASSES
    from fashion.task import Noise

    task = task_factory("gan/infogan", supervised=True)
    images, labels = task.metric_samples(200, Noise("cpu", 0))
    assert task.label_kind == "class" and set(labels.tolist()) == set(range(NUM_CLASSES))
    unsupervised = task_factory("gan/infogan")
    assert unsupervised.label_kind == "code"
    assert task.generator_spec()["conditional"] and not unsupervised.generator_spec()["conditional"]
