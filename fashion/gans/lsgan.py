"""LSGAN (Mao et al. 2017): least squares to targets 1 (real) and 0 (fake) instead of cross-entropy."""
import torch.nn.functional as F

from fashion.gans.base import GAN, register


def _mse_to(values, target):
    return F.mse_loss(values, values.new_full(values.shape, target))


@register
class LSGAN(GAN):
    def d_loss(self, real, fake, labels, latent):
        return {"real": _mse_to(self.D(real), 1.0), "fake": _mse_to(self.D(fake), 0.0)}

    def g_loss(self, fake, labels, latent):
        return {"adv": _mse_to(self.D(fake), 1.0)}
