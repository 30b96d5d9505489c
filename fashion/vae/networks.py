"""The three encoder/decoder pairs a VAE job can pick (``arch``), written for any (C, H, W) image.

- ``mlp``: dense layers with ReLU (784-400-z in the original VAE paper), log-variance head.
- ``conv``: stride-2 convs then a stride-1 conv, a softplus standard-deviation head; the decoder goes
  dense -> (filters, H/4, W/4) -> stride-2 transposed convs -> a stride-1 transposed conv.
- ``blocks``: conv + BatchNorm + max-pool blocks, then selu dense layers (the conditional write-ups).

Every decoder returns logits; the sigmoid belongs to the loss (BCE with logits is the stable form).
The condition vector, when there is one, is appended to the encoder's flat features and to z.
"""
from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

ARCHS = ("mlp", "conv", "blocks")
HEADS = {"mlp": "logvar", "conv": "softplus", "blocks": "logvar"}


class GaussianHead(nn.Module):
    """Mean and log-variance of q(z|x). ``logvar`` predicts log sigma^2; ``softplus`` predicts sigma."""

    def __init__(self, features: int, latent: int, kind: str):
        super().__init__()
        self.kind = kind
        self.mean, self.scale = nn.Linear(features, latent), nn.Linear(features, latent)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw = self.scale(h)
        if self.kind == "logvar":
            return self.mean(h), raw
        # A small floor keeps log(sigma) finite when softplus underflows.
        return self.mean(h), 2 * torch.log(F.softplus(raw) + 1e-5)


def dense(widths: list[int], act: type[nn.Module], last_act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.Linear(a, b))
        if last_act or i < len(widths) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """image -> ``body`` -> flat features, [features, condition] -> dense layers -> (mean, log-variance)."""

    def __init__(self, body: nn.Module, shape, cond_dim: int, hidden, act, latent: int, head: str):
        super().__init__()
        self.body = body
        body.eval()  # measure the flat size without touching BatchNorm statistics
        with torch.no_grad():
            features = body(torch.zeros(1, *shape)).shape[1]
        body.train()
        self.dense = dense([features + cond_dim, *hidden], act)
        self.head = GaussianHead(([features + cond_dim, *hidden])[-1], latent, head)

    def forward(self, x, cond=None):
        h = self.body(x)
        if cond is not None:
            h = torch.cat([h, cond.to(h.dtype)], 1)
        return self.head(self.dense(h))


class Decoder(nn.Module):
    """[z, condition] -> dense layers -> ``image_net`` -> logits, centre-cropped to (H, W)."""

    def __init__(self, dense_net: nn.Module, image_net: nn.Module, shape):
        super().__init__()
        self.dense, self.image_net, self.shape = dense_net, image_net, tuple(shape)

    def forward(self, z, cond=None):
        h = z if cond is None else torch.cat([z, cond.to(z.dtype)], 1)
        out = self.image_net(self.dense(h))
        H, W = self.shape[1:]
        top, left = (out.shape[2] - H) // 2, (out.shape[3] - W) // 2
        return out[:, :, top: top + H, left: left + W]


def _start(shape, halvings: int) -> tuple[int, int]:
    """The decoder's first feature map: (H, W) / 2^halvings rounded up, so upsampling covers the image."""
    return math.ceil(shape[1] / 2 ** halvings), math.ceil(shape[2] / 2 ** halvings)


def build_mlp(shape, latent, cond_dim, filters, hidden):
    pixels = math.prod(shape)
    encoder = Encoder(nn.Flatten(), shape, cond_dim, hidden, nn.ReLU, latent, HEADS["mlp"])
    decoder = Decoder(dense([latent + cond_dim, *reversed(hidden), pixels], nn.ReLU, last_act=False),
                      nn.Unflatten(1, tuple(shape)), shape)
    return encoder, decoder


def build_conv(shape, latent, cond_dim, filters, hidden):
    channels, layers = shape[0], []
    for cin, cout in zip((channels, *filters), filters):
        layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.ReLU()]
    layers += [nn.Conv2d(filters[-1], filters[-1], 3, 1, 1), nn.ReLU(), nn.Flatten()]
    encoder = Encoder(nn.Sequential(*layers), shape, cond_dim, (), nn.ReLU, latent, HEADS["conv"])
    h0, w0 = _start(shape, len(filters))
    # The last transposed conv runs at full resolution: half the channels keep the decoder cheap.
    outs = (*reversed(filters[:-1]), max(filters[0] // 2, 1))
    up = []
    for cin, cout in zip(reversed(filters), outs):
        up += [nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1), nn.ReLU()]
    up.append(nn.ConvTranspose2d(outs[-1], channels, 3, 1, 1))
    decoder = Decoder(dense([latent + cond_dim, filters[-1] * h0 * w0], nn.ReLU),
                      nn.Sequential(nn.Unflatten(1, (filters[-1], h0, w0)), *up), shape)
    return encoder, decoder


def build_blocks(shape, latent, cond_dim, filters, hidden):
    channels, layers = shape[0], []
    for cin, cout in zip((channels, *filters), filters):
        layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]
    layers.append(nn.Flatten())
    encoder = Encoder(nn.Sequential(*layers), shape, cond_dim, hidden, nn.SELU, latent, HEADS["blocks"])
    h0, w0 = _start(shape, len(filters))
    up = []
    for cin, cout in zip(reversed(filters), reversed(filters[:-1])):
        up += [nn.Upsample(scale_factor=2), nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]
    up += [nn.Upsample(scale_factor=2), nn.Conv2d(filters[0], channels, 3, padding=1)]
    decoder = Decoder(dense([latent + cond_dim, *reversed(hidden), filters[-1] * h0 * w0], nn.SELU),
                      nn.Sequential(nn.Unflatten(1, (filters[-1], h0, w0)), *up), shape)
    return encoder, decoder


BUILDERS = {"mlp": build_mlp, "conv": build_conv, "blocks": build_blocks}


def build(arch: str, shape, latent: int, cond_dim: int, filters, hidden) -> tuple[Encoder, Decoder]:
    """Encoder and decoder of one architecture for images of ``shape`` (C, H, W)."""
    return BUILDERS[arch](tuple(shape), latent, cond_dim, tuple(filters), tuple(hidden))
