"""The GANs' loss arithmetic as small pure functions of tensors (LynnHo's shape): no networks, no state.

A GAN file calls its networks and picks from here, so its loss reads as its idea in a few lines. This
module imports torch only: the colorizer (and anything else) gets ``bce`` without loading the ten GANs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Sigmoid cross-entropy of every logit to one target (1: real, 0: fake)."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def least_squares(scores: torch.Tensor, target: float) -> torch.Tensor:
    """LSGAN's mean squared distance of every score to one target."""
    return F.mse_loss(scores, scores.new_full(scores.shape, target))


def wasserstein(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """A critic's Wasserstein term: -E[score] for what should score high (real data for D, fakes for G),
    +E[score] for what should score low (fakes for D)."""
    return -scores.mean() if real else scores.mean()


def gradient_penalty(critic, points: torch.Tensor, target: float = 1.0, scale: float | None = None) -> torch.Tensor:
    """Mean of (||d critic / d x|| - target)^2 at ``points``, differentiable for the critic's update.

    ``scale``: fp16's loss scale. PyTorch's AMP recipe for penalties: differentiate the scaled output, so
    small fp16 gradients do not flush to zero, and divide the scale out again before taking the norm.
    """
    points = points.detach().requires_grad_(True)
    out = critic(points).sum()
    (grad,) = torch.autograd.grad(out * scale if scale else out, points, create_graph=True)
    if scale:
        grad = grad / scale
    # The norm runs in at least fp32 (autocast lists norm as an fp32 op; fp16/bf16 gradients are widened).
    grad = grad.to(torch.promote_types(grad.dtype, torch.float32))
    return (grad.flatten(1).norm(dim=1) - target).pow(2).mean()


def margin(energy: torch.Tensor, m: float) -> torch.Tensor:
    """EBGAN's hinge: an energy above the margin ``m`` costs nothing, below it costs m - energy."""
    return F.relu(m - energy)


def pull_away(codes: torch.Tensor) -> torch.Tensor:
    """EBGAN's pull-away term: mean squared cosine similarity between distinct rows (per-row L2 norms,
    ebgan.py says why)."""
    unit = F.normalize(codes.flatten(1), dim=1)
    similarity = unit @ unit.t()
    n = len(codes)
    return (similarity.pow(2).sum() - n) / (n * (n - 1))


def l1_reconstruction(recon: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """BEGAN's autoencoder loss: mean absolute error of the reconstruction."""
    return (recon - images).abs().mean()


def code_recovery(category_logits: torch.Tensor, continuous: torch.Tensor, category: torch.Tensor,
                  continuous_target: torch.Tensor) -> torch.Tensor:
    """infoGAN's mutual-information loss: cross-entropy of the categorical code plus MSE of the continuous ones."""
    return F.cross_entropy(category_logits, category) + F.mse_loss(continuous, continuous_target)


def equilibrium(k: torch.Tensor, real: torch.Tensor, fake: torch.Tensor, gamma: float,
                lambda_k: float) -> tuple[torch.Tensor, torch.Tensor]:
    """BEGAN's control step from the real and fake reconstruction losses: (next k in [0, 1], convergence M)."""
    balance = gamma * real - fake
    return (k + lambda_k * balance).clamp(0.0, 1.0), real + balance.abs()
