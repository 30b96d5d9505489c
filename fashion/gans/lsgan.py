"""LSGAN (Mao et al. 2017): least squares to targets 1 (real) and 0 (fake) instead of cross-entropy."""
from fashion.gans.base import GAN, register
from fashion.gans.losses import least_squares


@register
class LSGAN(GAN):
    def d_loss(self, real, fake, labels, latent, noise):
        return {"real": least_squares(self.D(real), 1.0), "fake": least_squares(self.D(fake), 0.0)}

    def g_loss(self, fake, labels, latent, noise):
        return {"adv": least_squares(self.D(fake), 1.0)}
