"""infoGAN (Chen et al. 2016): G gets structured codes (10-way categorical + 2 continuous) besides z,
and D's extra heads must recover them from the image (mutual-information loss).

D's columns: 0 = real/fake logit, 1..2 = continuous codes, 3..12 = categorical logits (the reference
read its logit from column 1, the first continuous code). The info loss trains D's heads on detached
fakes and G through D, instead of the reference's shared third optimiser.
"""
from dataclasses import dataclass

import torch

from fashion import artifacts
from fashion.data import NUM_CLASSES
from fashion.gans.base import GAN, GRID, GANConfig, one_hot, register
from fashion.gans.losses import bce, code_recovery
from fashion.gans.networks import Discriminator
from fashion.task import Noise

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
        return self.config.info_weight * code_recovery(out[:, 1 + CONTINUOUS:], out[:, 1:1 + CONTINUOUS],
                                                       category, continuous)

    def d_loss(self, real, fake, labels, latent, noise):
        out_fake = self.D(fake)
        return {"real": bce(self.D(real)[:, :1], 1.0), "fake": bce(out_fake[:, :1], 0.0),
                "info": self.info_loss(out_fake, latent)}

    def g_loss(self, fake, labels, latent, noise):
        out = self.D(fake)
        return {"adv": bce(out[:, :1], 1.0), "info": self.info_loss(out, latent)}

    def grid_latents(self, noise: Noise):
        """The reference's two pictures: the main grid (one z per row, categorical code c in column c,
        continuous codes 0) and ``c1c2`` (one z, code 0, c1 from -1 to 1 down the rows and c2 across the
        columns). Besides them, ``c1`` and ``c2`` sweep one continuous code across each row, with the
        categorical code of that row and the other continuous code at 0."""
        z_dim, n = self.config.z_dim, GRID * GRID
        z, categories = self.style_by_class(noise)
        zeros = torch.zeros(n, CONTINUOUS, device=self.device)
        grids = {"": torch.cat([z, one_hot(categories), zeros], 1)}
        same_z = noise.uniform(1, z_dim).expand(n, z_dim)
        steps = torch.linspace(-1, 1, GRID, device=self.device)
        rows = one_hot(torch.arange(NUM_CLASSES, device=self.device).repeat_interleave(GRID))
        for c in range(CONTINUOUS):
            codes = zeros.clone()
            codes[:, c] = steps.repeat(NUM_CLASSES)
            grids[f"c{c + 1}"] = torch.cat([same_z, rows, codes], 1)
        both = torch.stack([steps.repeat_interleave(GRID), steps.repeat(GRID)], 1)
        grids["c1c2"] = torch.cat([same_z, one_hot(torch.zeros(n, dtype=torch.long, device=self.device)), both], 1)
        return grids

    def latent_parts(self):
        """z, then the categorical code (supervised: the class asked for; else random, as it matches classes
        only up to a permutation), then the continuous codes: the order of ``latent``."""
        code = {"kind": "condition"} if self.config.supervised else {"kind": "onehot", "size": NUM_CLASSES}
        return [{"kind": "uniform", "size": self.config.z_dim, "low": 0.0, "high": 1.0}, code,
                {"kind": "uniform", "size": CONTINUOUS, "low": -1.0, "high": 1.0}]

    def finish(self, out):
        """Each sweep over the epochs, animated like samples.gif."""
        for name in self.fixed_grids:
            if name:
                frames = sorted((out / "sweeps").glob(f"{name}_epoch_*.png"))
                artifacts.make_gif(frames, out / f"sweeps_{name}.gif")
        return super().finish(out)

    @property
    def conditional(self):
        """Supervised, the categorical code is the class, asked for as cgan's condition is."""
        return self.config.supervised

    @property
    def label_kind(self):
        """What metric_samples' labels mean: the class when supervised, else the unsupervised code, which
        matches classes only up to a permutation."""
        return "class" if self.config.supervised else "code"

    def metric_samples(self, n, noise):
        asked = noise.randint(NUM_CLASSES, n) if self.config.supervised else torch.zeros(n, dtype=torch.long,
                                                                                         device=self.device)
        latent = self.latent(asked, noise)
        return (self.generate(latent) + 1) / 2, self.codes(latent)[0]
