"""The coloured Fashion-MNIST: every class dyed its own colour, shaded by the original grey intensity.

Palette (HSV hue in degrees, saturation; the HSV value is always 1, so the brightest channel is 255):

    class         colour                          hue  saturation
    T-shirt/top   pink                            320  0.70
    Trouser       denim blue                      235  0.80
    Pullover      violet                          275  0.75
    Dress         red                               0  0.90
    Coat          teal                            170  0.85
    Sandal        golden yellow                    55  0.90
    Shirt         sky blue                        200  0.70
    Sneaker       lime green                       90  0.85
    Bag           green                           130  0.80
    Ankle boot    brown (orange at full grey)      28  0.85

A pixel of grey level g (0..255) of an item whose colour is c (RGB in [0, 1]) becomes round(g * c).
Hence the black background (g = 0) stays black, mid-grey pixels give the darker shade (28 degrees at
g ~ 150 is brown), and since max(c) = 1 the brightest channel equals g exactly: the grey input is recovered
losslessly as the per-pixel maximum over channels (:func:`grey_of`), so the dataset stores only RGB.

Per-item hue jitter: each item's hue moves by a uniform offset in [-hue_jitter, +hue_jitter] degrees
(default 8), drawn from NumPy's PCG64 seeded with ``seed`` in the order train (60k) then test (10k), so the
colour is not a pure lookup table. The palette hues are at least 30 degrees apart, so with a jitter below
15 degrees the nearest palette hue of every item is still its class colour (the colour-class accuracy
metric relies on this).
"""
from __future__ import annotations

import numpy as np
import torch

from fashion.data import CLASSES, Dataset, Split, load_fashion

PALETTE: tuple[tuple[str, str, float, float], ...] = (  # (class, colour name, hue in degrees, saturation)
    ("T-shirt/top", "pink", 320.0, 0.70),
    ("Trouser", "denim blue", 235.0, 0.80),
    ("Pullover", "violet", 275.0, 0.75),
    ("Dress", "red", 0.0, 0.90),
    ("Coat", "teal", 170.0, 0.85),
    ("Sandal", "golden yellow", 55.0, 0.90),
    ("Shirt", "sky blue", 200.0, 0.70),
    ("Sneaker", "lime green", 90.0, 0.85),
    ("Bag", "green", 130.0, 0.80),
    ("Ankle boot", "brown", 28.0, 0.85),
)
assert tuple(row[0] for row in PALETTE) == CLASSES
HUES = torch.tensor([row[2] for row in PALETTE])
SATURATIONS = torch.tensor([row[3] for row in PALETTE])
MAX_JITTER = 15.0  # half the smallest gap between palette hues


def item_colours(labels: torch.Tensor, hue_jitter: float = 8.0, seed: int = 0) -> torch.Tensor:
    """Each item's RGB colour in [0, 1] (N, 3): its class hue plus a seeded jitter; max channel exactly 1."""
    from matplotlib.colors import hsv_to_rgb

    if not 0 <= hue_jitter < MAX_JITTER:
        raise ValueError(f"hue_jitter={hue_jitter}: use 0 <= jitter < {MAX_JITTER} degrees, or items could take "
                         "another class's colour")
    labels = labels.cpu()
    offsets = np.random.default_rng(seed).uniform(-hue_jitter, hue_jitter, size=len(labels))
    hue = (HUES[labels].double().numpy() + offsets) % 360.0
    hsv = np.stack([hue / 360.0, SATURATIONS[labels].double().numpy(), np.ones(len(labels))], 1)
    return torch.from_numpy(hsv_to_rgb(hsv))


def colourise(grey: torch.Tensor, labels: torch.Tensor, hue_jitter: float = 8.0, seed: int = 0,
              chunk: int = 10000) -> torch.Tensor:
    """Grey uint8 (N, 1, H, W) -> coloured uint8 (N, 3, H, W), deterministic for a given seed."""
    if grey.dtype != torch.uint8 or grey.dim() != 4 or grey.shape[1] != 1:
        raise ValueError(f"expected grey uint8 images (N, 1, H, W), got {tuple(grey.shape)} {grey.dtype}")
    colours = item_colours(labels, hue_jitter, seed)
    out = torch.empty(len(grey), 3, *grey.shape[2:], dtype=torch.uint8)
    for start in range(0, len(grey), chunk):  # float64 intermediates for 70k images would need 1.3 GB
        g = grey[start:start + chunk].cpu().double()
        out[start:start + chunk] = (g * colours[start:start + chunk, :, None, None]).round().to(torch.uint8)
    return out


def grey_of(colour: torch.Tensor) -> torch.Tensor:
    """The generator's input: the exact original grey image (N, 1, H, W) of coloured uint8 images."""
    return colour.amax(1, keepdim=True)


def load_coloured(data_dir=None, download: bool = False, hue_jitter: float = 8.0, seed: int = 0) -> Dataset:
    """All 70k Fashion-MNIST images coloured in one seeded pass; Fashion-MNIST's test split stays held out."""
    grey = load_fashion(data_dir, download)
    images = torch.cat([grey.train.images, grey.test.images])
    labels = torch.cat([grey.train.labels, grey.test.labels])
    colour = colourise(images, labels, hue_jitter, seed)
    n = len(grey.train)
    return Dataset(Split(colour[:n], grey.train.labels), Split(colour[n:], grey.test.labels))


def dominant_hue(images: torch.Tensor, min_value: float = 0.15) -> torch.Tensor:
    """Per image, the circular mean hue in degrees of pixels at least ``min_value`` bright, weighted by
    saturation x value; NaN for an image with no coloured pixel. Images: uint8 (N, 3, H, W)."""
    from matplotlib.colors import rgb_to_hsv

    hsv = torch.from_numpy(rgb_to_hsv(images.cpu().permute(0, 2, 3, 1).float().div(255).numpy()))
    hue, sat, val = hsv.unbind(-1)
    weight = (sat * val * (val >= min_value)).flatten(1)
    angle = hue.flatten(1) * 2 * torch.pi
    x, y = (weight * angle.cos()).sum(1), (weight * angle.sin()).sum(1)
    degrees = torch.rad2deg(torch.atan2(y, x)) % 360.0
    return torch.where(weight.sum(1) > 0, degrees, torch.full_like(degrees, float("nan")))


def nearest_palette_class(hue: torch.Tensor) -> torch.Tensor:
    """The class whose palette hue is circularly nearest to each hue; -1 where the hue is NaN."""
    gap = (hue[:, None] - HUES[None, :]).abs() % 360.0
    nearest = torch.minimum(gap, 360.0 - gap).argmin(1)
    return torch.where(hue.isnan(), torch.full_like(nearest, -1), nearest)
