"""EBGAN (Zhao et al. 2017): D is an autoencoder whose reconstruction error is the energy.

D pushes real energy down and fake energy up to a margin; G also pays a pull-away term that spreads
D's codes of a batch apart. The pull-away term uses per-row L2 norms (the reference's single L1 norm
over the matrix makes it a constant that does nothing).

D's decoder has no BatchNorm (the reference has one). D sees a batch of fakes on its own, and early fakes
are nearly identical: BatchNorm maps such a batch to one constant reconstruction whatever the image, so G
gets no gradient and collapses to a single pattern for good (seen with two seeds within 100 iterations,
with and without the pull-away term). Without it the samples are varied garments after one epoch.
The ReLU that followed that BatchNorm stays (AutoencoderDiscriminator in networks.py).
"""
from dataclasses import dataclass

import torch.nn.functional as F

from fashion.gans.base import GAN, GANConfig, register
from fashion.gans.losses import margin, pull_away
from fashion.gans.networks import AutoencoderDiscriminator


@dataclass
class EBGANConfig(GANConfig):
    margin: float = 1.0
    "Fake energies above the margin cost D nothing."
    pt_weight: float = 0.1
    "Weight of the pull-away term in G's loss."


@register
class EBGAN(GAN):
    config_class = EBGANConfig

    def build_discriminator(self):
        return AutoencoderDiscriminator(relu=True)

    def energy(self, x):
        # The target is detached, as in the reference: G lowers its energy only by making images D
        # reconstructs well. With the target attached, G would also get -(D(x) - x), a pull of every fake
        # toward its own reconstruction, which early in training is a blur of the data mean.
        recon, code = self.D(x)
        return F.mse_loss(recon, x.detach()), code

    def d_loss(self, real, fake, labels, latent, noise):
        real_energy, _ = self.energy(real)
        fake_energy, _ = self.energy(fake)
        # The margin applies to the energy of the whole (global) batch, whatever the number of ranks.
        return {"real": real_energy, "fake_margin": margin(self.global_mean(fake_energy), self.config.margin)}

    def g_loss(self, fake, labels, latent, noise):
        fake_energy, code = self.energy(fake)
        return {"energy": fake_energy, "pull_away": self.config.pt_weight * pull_away(self.gather(code))}
