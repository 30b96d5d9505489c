"""infoGAN (Chen et al. 2016): G gets structured codes (10-way categorical + 2 continuous) besides z,
and D's extra heads must recover them from the image (mutual-information loss).

D's columns: 0 = real/fake logit, 1..2 = continuous codes, 3..12 = categorical logits (the reference
read its logit from column 1, the first continuous code). The info loss trains D's heads on detached
fakes and G through D, instead of the reference's shared third optimiser.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fashion import artifacts
from fashion.data import NUM_CLASSES
from fashion.gans.base import GAN, GRID, GANConfig, bce, one_hot, register
from fashion.gans.networks import Discriminator
from fashion.training import Noise

CONTINUOUS = 2


@dataclass
class InfoGANConfig(GANConfig):
    info_weight: float = 1.0
    "Weight of the code-recovery (mutual information) loss."
    supervised: bool = False
    "Use the real labels as the categorical code (the reference's SUPERVISED switch)."


@register
class InfoGAN(GAN):
    config_class = InfoGANConfig

    @property
    def latent_dim(self):
        return self.config.z_dim + NUM_CLASSES + CONTINUOUS

    def build_discriminator(self):
        return Discriminator(outputs=1 + CONTINUOUS + NUM_CLASSES)

    def latent(self, labels, noise):
        n = len(labels)
        category = labels if self.config.supervised else noise.randint(NUM_CLASSES, n)
        return torch.cat([noise.uniform(n, self.config.z_dim), one_hot(category),
                          noise.uniform(n, CONTINUOUS, low=-1.0, high=1.0)], 1)

    def codes(self, latent):
        z = self.config.z_dim
        return latent[:, z:z + NUM_CLASSES].argmax(1), latent[:, z + NUM_CLASSES:]

    def info_loss(self, out, latent):
        category, continuous = self.codes(latent)
        return self.config.info_weight * (F.cross_entropy(out[:, 1 + CONTINUOUS:], category)
                                          + F.mse_loss(out[:, 1:1 + CONTINUOUS], continuous))

    def d_loss(self, real, fake, labels, latent):
        out_fake = self.D(fake)
        return {"real": bce(self.D(real)[:, :1], 1.0), "fake": bce(out_fake[:, :1], 0.0),
                "info": self.info_loss(out_fake, latent)}

    def g_loss(self, fake, labels, latent):
        out = self.D(fake)
        return {"adv": bce(out[:, :1], 1.0), "info": self.info_loss(out, latent)}

    def grid_latents(self, noise: Noise):
        """Rows = categorical code; main grid varies z along a row, sweeps vary one continuous code."""
        z_dim = self.config.z_dim
        rows = one_hot(torch.arange(NUM_CLASSES, device=self.device).repeat_interleave(GRID))
        z = noise.uniform(GRID, z_dim).repeat(NUM_CLASSES, 1)
        grids = {"": torch.cat([z, rows, torch.zeros(len(rows), CONTINUOUS, device=self.device)], 1)}
        same_z = noise.uniform(1, z_dim).expand(len(rows), z_dim)
        sweep = torch.linspace(-1, 1, GRID, device=self.device).repeat(NUM_CLASSES)
        for c in range(CONTINUOUS):
            codes = torch.zeros(len(rows), CONTINUOUS, device=self.device)
            codes[:, c] = sweep
            grids[f"c{c + 1}"] = torch.cat([same_z, rows, codes], 1)
        return grids

    def latent_parts(self):
        """z, then a random categorical code (it matches classes only up to a permutation), then the
        continuous codes: the order of ``latent``."""
        return [{"kind": "uniform", "size": self.config.z_dim, "low": 0.0, "high": 1.0},
                {"kind": "onehot", "size": NUM_CLASSES},
                {"kind": "uniform", "size": CONTINUOUS, "low": -1.0, "high": 1.0}]

    def finish(self, out):
        """Each continuous code's sweep over the epochs, animated like samples.gif."""
        for c in range(CONTINUOUS):
            frames = sorted((out / "sweeps").glob(f"c{c + 1}_epoch_*.png"))
            artifacts.make_gif(frames, out / f"sweeps_c{c + 1}.gif")
        return super().finish(out)

    label_kind = "code"
    "metric_samples returns the categorical code, which matches classes only up to a permutation."

    def metric_samples(self, n, noise):
        latent = self.latent(torch.zeros(n, dtype=torch.long, device=self.device), noise)
        return (self.generate(latent) + 1) / 2, self.codes(latent)[0]
