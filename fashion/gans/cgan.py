"""CGAN (Mirza & Osindero 2014): G gets z + one-hot class, D gets the image + 10 constant label planes."""
import torch

from fashion.data import NUM_CLASSES
from fashion.gans.base import GAN, one_hot, register
from fashion.gans.losses import bce
from fashion.gans.networks import Discriminator


def with_label_planes(images, labels):
    planes = one_hot(labels)[:, :, None, None].expand(-1, -1, *images.shape[2:])
    return torch.cat([images, planes.to(images.dtype)], 1)


@register
class CGAN(GAN):
    conditional = True

    def build_discriminator(self):
        return Discriminator(channels=1 + NUM_CLASSES)

    def d_loss(self, real, fake, labels, latent, noise):
        return {"real": bce(self.D(with_label_planes(real, labels)), 1.0),
                "fake": bce(self.D(with_label_planes(fake, labels)), 0.0)}

    def g_loss(self, fake, labels, latent, noise):
        return {"adv": bce(self.D(with_label_planes(fake, labels)), 1.0)}
