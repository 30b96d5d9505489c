"""The evaluation network: a small VGG-style Fashion-MNIST classifier whose feature layer is the space
every quality number of the suite (FID, KID, PRDC, the Inception-Score analogue) is measured in.

Feature layer: the 128-unit dense layer after its BatchNorm, *before* the ReLU. FID fits a Gaussian to
the features; a post-ReLU layer puts a point mass at exactly zero in many coordinates (a poor fit, and a
near-singular covariance), while the pre-activation, a sum over 2,048 inputs, is smooth and roughly
Gaussian per unit. 128 units keep even a 2,000-sample snapshot at 15x the dimension, so the covariance
that FID needs is well estimated.
"""
from __future__ import annotations

import torch
from torch import nn

from fashion.data import NUM_CLASSES

FEATURE_LAYER = "dense 128x4x4->128 + BatchNorm1d, before the ReLU (the input of the classification head)"


def _conv(cin: int, cout: int) -> list[nn.Module]:
    # No conv bias: the BatchNorm right after it has its own shift.
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class EvalNet(nn.Module):
    """VGG-style stages of 3x3 conv + BatchNorm + ReLU, each ending in a 2x2 max-pool (28 -> 14 -> 7 -> 4),
    then the dense feature layer and the head. The default: conv 32 | conv 64 | conv 128 x2 | dense 128.

    Inputs are floats in [0, 1] shaped (N, 1, 28, 28). ``features`` gives (N, feature_dim),
    ``head`` maps them to (N, 10) logits, and ``forward`` is the two in a row.
    """

    def __init__(self, width: int = 32, convs: tuple[int, ...] = (1, 1, 2), feature_dim: int = 128,
                 dropout: float = 0.3):
        super().__init__()
        convs = tuple(int(c) for c in convs)
        self.hparams = {"width": width, "convs": list(convs), "feature_dim": feature_dim, "dropout": dropout}
        layers, cin, side = [], 1, 28
        for stage, count in enumerate(convs):  # stage s: width * 2**s channels
            for _ in range(count):
                layers += _conv(cin, width * 2 ** stage)
                cin = width * 2 ** stage
            # ceil_mode: 7 -> 4 keeps the last row and column instead of dropping them.
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            side = -(-side // 2)
        self.body = nn.Sequential(
            # A small grid rather than global pooling: where a part sits (sleeve, collar, heel) tells classes apart.
            *layers, nn.Flatten(),
            nn.Linear(cin * side * side, feature_dim, bias=False), nn.BatchNorm1d(feature_dim),
        )
        # Dropout only after the BatchNorm: dropout feeding a BatchNorm skews its running variance
        # between training and eval, which would distort exactly the features the metrics read.
        self.classifier = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(feature_dim, NUM_CLASSES))
        # oneDNN's CPU convolutions run about twice as fast on channels-last weights; a (N, 1, H, W) input
        # is laid out the same either way, so callers need not convert anything.
        self.to(memory_format=torch.channels_last)

    @property
    def feature_dim(self) -> int:
        return self.hparams["feature_dim"]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature layer (see the module docstring): (N, 1, 28, 28) in [0, 1] -> (N, feature_dim)."""
        return self.body(x)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (N, 10) from the features."""
        return self.classifier(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
