"""DRAGAN (Kodali et al. 2017): GAN loss plus a gradient penalty on noisy perturbations of real data.

The penalty is taken on D's logits, not on the sigmoid (the reference's choice squashes the gradient).
D uses LayerNorm where the reference has BatchNorm, for the reason WGAN-GP's critic does (wgan_gp.py): the
penalty is a per-sample gradient norm, and BatchNorm makes each sample's output depend on the whole batch.
"""
from dataclasses import dataclass

from fashion.gans.base import GAN, GANConfig, noise_like, register
from fashion.gans.losses import bce, gradient_penalty
from fashion.gans.networks import Discriminator


@dataclass
class DRAGANConfig(GANConfig):
    gp_weight: float = 0.25
    "lambda: weight of the gradient penalty."
    perturb: float = 0.5
    "Perturbations are x + perturb * std(x) * U[0, 1)."


@register
class DRAGAN(GAN):
    config_class = DRAGANConfig

    eager_nets = ("D",)  # its penalty differentiates D twice

    def build_discriminator(self):
        return Discriminator(norm="layer")

    def d_loss(self, real, fake, labels, latent, noise):
        std = self.gather(real).std()  # of the global batch, whatever the number of ranks
        perturbed = real + self.config.perturb * std * noise_like(noise, real, per_sample=False)
        alpha = noise_like(noise, real)
        between = real + alpha * (perturbed - real)
        return {"real": bce(self.D(real), 1.0), "fake": bce(self.D(fake), 0.0),
                "gp": self.config.gp_weight * gradient_penalty(self.D, between, scale=self.grad_scale())}

    def g_loss(self, fake, labels, latent, noise):
        return {"adv": bce(self.D(fake), 1.0)}
