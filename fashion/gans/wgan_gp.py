"""WGAN-GP (Gulrajani et al. 2017): WGAN with a gradient penalty on random real-fake interpolates.

The reference keeps BatchNorm in the critic, but the penalty is a per-sample gradient norm and BatchNorm
makes each sample's output depend on the whole batch; following the paper, this critic uses LayerNorm
instead. DRAGAN's penalty is per sample too, and its D gets LayerNorm for the same reason.
"""
from dataclasses import dataclass

from fashion.gans.base import GAN, GANConfig, noise_like, register
from fashion.gans.losses import gradient_penalty, wasserstein
from fashion.gans.networks import Discriminator


@dataclass
class WGANGPConfig(GANConfig):
    n_critic: int = 5
    "Critic steps per generator step."
    gp_weight: float = 10.0
    "lambda: weight of the gradient penalty."


@register
class WGAN_GP(GAN):
    config_class = WGANGPConfig

    eager_nets = ("D",)  # its penalty differentiates D twice

    def build_discriminator(self):
        return Discriminator(norm="layer")

    def d_loss(self, real, fake, labels, latent, noise):
        alpha = noise_like(noise, real)
        between = alpha * real + (1 - alpha) * fake
        return {"real": wasserstein(self.D(real), real=True), "fake": wasserstein(self.D(fake), real=False),
                "gp": self.config.gp_weight * gradient_penalty(self.D, between, scale=self.grad_scale())}

    def g_loss(self, fake, labels, latent, noise):
        return {"adv": wasserstein(self.D(fake), real=True)}
