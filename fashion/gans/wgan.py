"""WGAN (Arjovsky et al. 2017): critic estimates the Wasserstein distance; Lipschitz by weight clipping."""
from dataclasses import dataclass

import torch

from fashion.gans.base import GAN, GANConfig, register
from fashion.gans.losses import wasserstein


@dataclass
class WGANConfig(GANConfig):
    n_critic: int = 5
    "Critic steps per generator step."
    clip: float = 0.01
    "Critic weights are clipped to [-clip, clip] after every critic step."


@register
class WGAN(GAN):
    config_class = WGANConfig

    def d_loss(self, real, fake, labels, latent, noise):
        return {"real": wasserstein(self.D(real), real=True), "fake": wasserstein(self.D(fake), real=False)}

    def g_loss(self, fake, labels, latent, noise):
        return {"adv": wasserstein(self.D(fake), real=True)}

    @torch.no_grad()
    def after_d_step(self):
        for p in self.D.parameters():
            p.clamp_(-self.config.clip, self.config.clip)
