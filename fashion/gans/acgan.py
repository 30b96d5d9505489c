"""ACGAN (Odena et al. 2017): D also classifies; both players are rewarded for the right class."""
import torch.nn.functional as F

from fashion.data import NUM_CLASSES
from fashion.gans.base import GAN, register
from fashion.gans.losses import bce
from fashion.gans.networks import Discriminator


@register
class ACGAN(GAN):
    conditional = True

    def build_discriminator(self):
        return Discriminator(outputs=1 + NUM_CLASSES)  # column 0: real/fake logit, 1..10: class logits

    def d_loss(self, real, fake, labels, latent, noise):
        out_real, out_fake = self.D(real), self.D(fake)
        return {"real": bce(out_real[:, :1], 1.0), "fake": bce(out_fake[:, :1], 0.0),
                "cls_real": F.cross_entropy(out_real[:, 1:], labels),
                "cls_fake": F.cross_entropy(out_fake[:, 1:], labels)}

    def g_loss(self, fake, labels, latent, noise):
        out = self.D(fake)
        return {"adv": bce(out[:, :1], 1.0), "cls": F.cross_entropy(out[:, 1:], labels)}
