"""GAN (Goodfellow et al. 2014): sigmoid cross-entropy, non-saturating generator loss."""
from fashion.gans.base import GAN, register
from fashion.gans.losses import bce


@register
class VanillaGAN(GAN):
    def d_loss(self, real, fake, labels, latent, noise):
        return {"real": bce(self.D(real), 1.0), "fake": bce(self.D(fake), 0.0)}

    def g_loss(self, fake, labels, latent, noise):
        return {"adv": bce(self.D(fake), 1.0)}
