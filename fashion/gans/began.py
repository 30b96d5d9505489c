"""BEGAN (Berthelot et al. 2017): autoencoder D, L1 reconstruction losses, equilibrium control.

k balances how much D pushes fake losses up; it moves toward gamma * L_real = L_fake at rate lambda_k.
The convergence measure M = L_real + |gamma * L_real - L_fake| is logged. gamma defaults to the
paper's 0.75 (the reference PyTorch code uses 1, where k only rises).
"""
from dataclasses import dataclass

import torch

from fashion.gans.base import GAN, GANConfig, register
from fashion.gans.networks import AutoencoderDiscriminator


@dataclass
class BEGANConfig(GANConfig):
    gamma: float = 0.75
    "Diversity ratio: target of L_fake / L_real."
    lambda_k: float = 0.001
    "Learning rate of the equilibrium variable k."


@register
class BEGAN(GAN):
    config_class = BEGANConfig

    def __init__(self, config, accelerator, data):
        super().__init__(config, accelerator, data)
        self.k = torch.zeros((), device=self.device)  # stays on device: no host sync per step

    def build_discriminator(self):
        return AutoencoderDiscriminator()

    def reconstruction_loss(self, x):
        return (self.D(x)[0] - x).abs().mean()

    def d_loss(self, real, fake, labels, latent):
        return {"real": self.reconstruction_loss(real), "fake": -self.k * self.reconstruction_loss(fake)}

    def g_loss(self, fake, labels, latent):
        return {"recon": self.reconstruction_loss(fake)}

    def after_g_step(self, d_terms, g_terms):
        real, fake = d_terms["real"], g_terms["recon"]
        # Average over ranks so every process keeps the same k (rank-local k would silently drift apart).
        balance = self.acc.reduce(self.config.gamma * real - fake, reduction="mean")
        self.k = (self.k + self.config.lambda_k * balance).clamp(0.0, 1.0)
        return {"k": self.k.clone(), "M": real + balance.abs()}

    def state_dict(self):
        return {**super().state_dict(), "k": self.k.cpu()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.k = state["k"].to(self.device)
