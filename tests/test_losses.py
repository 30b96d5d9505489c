"""The GANs' loss arithmetic (fashion/gans/losses.py): known values on known inputs, and the fixes it keeps."""
import math

import pytest
import torch

from fashion.gans.losses import (bce, code_recovery, equilibrium, gradient_penalty, l1_reconstruction,
                                 least_squares, margin, pull_away, wasserstein)


def test_bce_of_an_undecided_logit_is_log_2_for_either_target():
    zeros = torch.zeros(5, 1)
    assert bce(zeros, 1.0).item() == pytest.approx(math.log(2)) == bce(zeros, 0.0).item()


def test_bce_charges_a_confident_logit_only_for_the_wrong_target():
    confident_real = torch.full((3, 1), 20.0)
    assert bce(confident_real, 1.0).item() < 1e-8 and bce(confident_real, 0.0).item() == pytest.approx(20.0)


def test_least_squares_is_the_mean_squared_distance_to_the_target():
    assert least_squares(torch.tensor([0.0, 0.5, 1.0, 3.0]), 1.0).item() == pytest.approx((1 + 0.25 + 0 + 4) / 4)


def test_wasserstein_rewards_high_scores_where_real_and_low_scores_where_fake():
    scores = torch.tensor([1.0, 2.0, 6.0])
    assert wasserstein(scores, real=True).item() == -3.0 and wasserstein(scores, real=False).item() == 3.0


def test_gradient_penalty_of_a_linear_critic_is_known():
    w = torch.tensor([3.0, 4.0])  # gradient norm 5 everywhere
    penalty = gradient_penalty(lambda x: x @ w, torch.randn(8, 2))
    assert penalty.item() == pytest.approx((5 - 1) ** 2)


def test_gradient_penalty_vanishes_where_the_gradient_norm_is_the_target():
    w = torch.tensor([3.0, 4.0])
    assert gradient_penalty(lambda x: x @ w, torch.randn(8, 2), target=5.0).item() == pytest.approx(0.0)


def test_margin_leaves_energies_above_it_free_and_charges_the_gap_below():
    assert margin(torch.tensor(1.5), 1.0).item() == 0.0 and margin(torch.tensor(0.25), 1.0).item() == 0.75


def test_pull_away_separates_identical_from_orthogonal_codes():
    assert pull_away(torch.ones(4, 8)).item() == pytest.approx(1.0)
    assert pull_away(torch.eye(4)).item() == pytest.approx(0.0)


def test_pull_away_ignores_the_length_of_each_code():
    # Per-row L2 norms: only directions count (the reference's one L1 norm over the matrix made it a constant).
    codes = torch.randn(6, 32, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([[0.1], [1.0], [3.0], [10.0], [0.5], [7.0]])
    assert pull_away(codes * lengths).item() == pytest.approx(pull_away(codes).item(), rel=1e-5)


def test_l1_reconstruction_is_the_mean_absolute_error():
    images = torch.zeros(2, 1, 2, 2)
    recon = torch.tensor([1.0, -1.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.5]).view(2, 1, 2, 2)
    assert l1_reconstruction(recon, images).item() == pytest.approx(3.0 / 8)


def test_code_recovery_is_cross_entropy_of_the_category_plus_mse_of_the_continuous_codes():
    undecided = torch.zeros(4, 10)  # cross-entropy log 10 whatever the category
    guess, truth = torch.zeros(4, 2), torch.full((4, 2), 0.5)
    loss = code_recovery(undecided, guess, torch.tensor([0, 3, 7, 9]), truth)
    assert loss.item() == pytest.approx(math.log(10) + 0.25)


def test_equilibrium_moves_k_toward_gamma_times_the_real_loss_and_measures_convergence():
    k, m = equilibrium(torch.tensor(0.5), torch.tensor(0.2), torch.tensor(0.1), gamma=0.75, lambda_k=0.1)
    balance = 0.75 * 0.2 - 0.1  # fakes reconstruct better than gamma * real: D must push them harder
    assert k.item() == pytest.approx(0.5 + 0.1 * balance) and m.item() == pytest.approx(0.2 + abs(balance))


def test_equilibrium_keeps_k_in_the_unit_interval():
    low, _ = equilibrium(torch.tensor(0.0), torch.tensor(0.0), torch.tensor(5.0), gamma=0.75, lambda_k=1.0)
    high, _ = equilibrium(torch.tensor(1.0), torch.tensor(5.0), torch.tensor(0.0), gamma=0.75, lambda_k=1.0)
    assert (low.item(), high.item()) == (0.0, 1.0)
