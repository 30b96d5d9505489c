"""The colorization GAN's networks: a small U-Net generator (grey -> RGB) and a pair discriminator.

pix2pix (Isola et al. 2017) at 28x28: the generator is an encoder-decoder of DCGAN blocks (strided 4x4
convs with BatchNorm and LeakyReLU down, transposed convs with BatchNorm and ReLU up) whose skip
connections carry the garment's outline straight to the decoder, so the decoder only has to choose the
colour. The discriminator is the GAN family's conv-conv-FC-FC net, fed the (grey, colour) pair as 4 channels.
"""
from __future__ import annotations

import torch
from torch import nn

from fashion.gans.networks import Discriminator, init_weights


def down(cin: int, cout: int, norm: bool = True) -> nn.Sequential:
    """4x4 stride-2 conv halving the size, BatchNorm, LeakyReLU(0.2)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout) if norm else nn.Identity(),
                         nn.LeakyReLU(0.2))


def up(cin: int, cout: int) -> nn.Sequential:
    """4x4 stride-2 transposed conv doubling the size, BatchNorm, ReLU."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.ReLU())


class ColorizeGenerator(nn.Module):
    """Grey (N, 1, 28, 28) in [-1, 1] -> colour (N, 3, 28, 28) in [-1, 1]; 28 -> 14 -> 7 -> 14 -> 28."""

    def __init__(self, width: int = 64):
        super().__init__()
        w = width
        self.enc1 = down(1, w, norm=False)  # pix2pix: no BatchNorm on the first layer
        self.enc2 = down(w, 2 * w)
        self.bottleneck = nn.Sequential(nn.Conv2d(2 * w, 2 * w, 3, 1, 1), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2))
        self.dec2 = up(4 * w, w)  # bottleneck + enc2 skip
        self.dec1 = up(2 * w, w // 2)  # dec2 + enc1 skip
        self.to_rgb = nn.Sequential(nn.Conv2d(w // 2 + 1, 3, 3, 1, 1), nn.Tanh())  # + the grey input itself
        init_weights(self)

    def forward(self, grey: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(grey)
        e2 = self.enc2(e1)
        d2 = self.dec2(torch.cat([self.bottleneck(e2), e2], 1))
        d1 = self.dec1(torch.cat([d2, e1], 1))
        return self.to_rgb(torch.cat([d1, grey], 1))


def pair_discriminator() -> Discriminator:
    """D(grey, colour): real pairs from the data, fake pairs with the generator's colouring."""
    return Discriminator(channels=1 + 3)


def set_bn_momentum(module: nn.Module, keras_momentum: float) -> None:
    """Apply a Keras-convention BatchNorm momentum (running = m * running + (1 - m) * batch).

    PyTorch weighs the other way round (running = (1 - m) * running + m * batch), so Keras 0.9 is torch 0.1.
    """
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.momentum = 1.0 - keras_momentum
