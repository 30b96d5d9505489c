"""The reference collection's 28x28 networks, written once for all ten GANs."""
from __future__ import annotations

import torch
from torch import nn

IMAGE = 28
FEATURES = 128 * (IMAGE // 4) ** 2  # 128 x 7 x 7


def init_weights(module: nn.Module) -> None:
    """N(0, 0.02) weights and zero bias for conv/deconv/linear layers, as in the reference."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _norm1d(kind: str, n: int) -> nn.Module:
    return {"batch": nn.BatchNorm1d(n), "layer": nn.LayerNorm(n), "none": nn.Identity()}[kind]


def _norm2d(kind: str, c: int, hw: int) -> nn.Module:
    return {"batch": nn.BatchNorm2d(c), "layer": nn.LayerNorm([c, hw, hw]), "none": nn.Identity()}[kind]


class Generator(nn.Module):
    """FC 1024 -> FC 128x7x7 -> deconv 64 -> deconv C, tanh output in [-1, 1]."""

    def __init__(self, input_dim: int, channels: int = 1):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(input_dim, 1024), nn.BatchNorm1d(1024), nn.ReLU(),
            nn.Linear(1024, FEATURES), nn.BatchNorm1d(FEATURES), nn.ReLU(),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.ConvTranspose2d(64, channels, 4, 2, 1), nn.Tanh(),
        )
        init_weights(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.fc(z).view(-1, 128, IMAGE // 4, IMAGE // 4))


class Discriminator(nn.Module):
    """conv 64 -> conv 128 -> FC 1024 -> FC ``outputs`` (raw logits / critic values / code heads)."""

    def __init__(self, channels: int = 1, outputs: int = 1, norm: str = "batch"):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(channels, 64, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(64, 128, 4, 2, 1), _norm2d(norm, 128, IMAGE // 4), nn.LeakyReLU(0.2),
        )
        self.fc = nn.Sequential(
            nn.Linear(FEATURES, 1024), _norm1d(norm, 1024), nn.LeakyReLU(0.2),
            nn.Linear(1024, outputs),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).flatten(1))


class AutoencoderDiscriminator(nn.Module):
    """EBGAN/BEGAN D: conv 64 -> 32-d code -> FC [-> ReLU] -> deconv; returns (reconstruction, code).

    No BatchNorm between code and decoder (the reference's EBGAN has one): fed a batch of near-identical
    fakes, it gives one constant reconstruction whatever the image, and G gets no gradient (ebgan.py).
    ``relu``: EBGAN's decoder keeps the reference's ReLU after the FC layer; without it code -> image is
    affine and every reconstruction lies in a 32-dimensional affine subspace. BEGAN's is linear, as there.
    """

    def __init__(self, channels: int = 1, code_dim: int = 32, relu: bool = False):
        super().__init__()
        hidden = 64 * (IMAGE // 2) ** 2
        self.encode = nn.Sequential(nn.Conv2d(channels, 64, 4, 2, 1), nn.ReLU(), nn.Flatten(),
                                    nn.Linear(hidden, code_dim))
        self.expand = nn.Linear(code_dim, hidden)
        self.expand_act = nn.ReLU() if relu else nn.Identity()
        self.decode = nn.ConvTranspose2d(64, channels, 4, 2, 1)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encode(x)
        return self.decode(self.expand_act(self.expand(code)).view(-1, 64, IMAGE // 2, IMAGE // 2)), code
