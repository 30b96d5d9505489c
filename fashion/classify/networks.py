"""The suite's classifiers. A classify job saves its trained model to ``<run>/classify/<arch>/model.pt``;
``--classifier PATH`` makes one the report's evaluator instead of the shipped one (fashion/measure.py):
:func:`load_classifier` gives it back with ``features`` (the penultimate layer, for FID/KID/PRDC) and
``head`` (its softmax, for the Inception-Score analogue and conditional accuracy). Inputs are floats in
[0, 1], (N, 1, 28, 28).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from fashion.artifacts import atomic_write
from fashion.data import NUM_CLASSES

MODEL_FILE = "model.pt"


class DenseClassifier(nn.Module):
    """784-128-10 with ReLU."""

    def __init__(self, hidden: int = 128):
        super().__init__()
        self.hparams = {"hidden": hidden}
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, NUM_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ConvClassifier(nn.Module):
    """Two conv blocks (5x5, 64 and 128 filters by default) with BatchNorm and max-pooling, dense 256, dropout."""

    def __init__(self, width: int = 64, hidden: int = 256, dropout: float = 0.3, kernel: int = 5):
        super().__init__()
        self.hparams = {"width": width, "hidden": hidden, "dropout": dropout, "kernel": kernel}

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, kernel, padding=kernel // 2), nn.BatchNorm2d(cout), nn.ReLU(),
                    nn.MaxPool2d(2)]

        self.body = nn.Sequential(*block(1, width), *block(width, 2 * width), nn.Flatten(),
                                  nn.Dropout(dropout), nn.Linear(2 * width * 7 * 7, hidden), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, NUM_CLASSES))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations: the space FID/KID/PRDC are measured in."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


ARCHITECTURES = {"dense": DenseClassifier, "cnn": ConvClassifier}


def save_classifier(path, model: nn.Module, arch: str, **info) -> Path:
    """Write the weights, the constructor settings (so a non-default width loads) and ``info``."""
    state = {"arch": arch, "hparams": getattr(model, "hparams", {}), "state_dict": model.state_dict(),
             "info": info}
    return atomic_write(path, lambda f: torch.save(state, f))


def load_classifier(path, device="cpu") -> tuple[nn.Module, dict]:
    """The saved classifier in eval mode, and its info (test accuracy, epochs, ...)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no trained classifier; train one first (python launch.py classify/cnn)")
    try:
        state = torch.load(path, map_location=device, weights_only=False)
        with torch.random.fork_rng(devices=[]):  # the throw-away initial weights leave the caller's RNG as it was
            model = ARCHITECTURES[state["arch"]](**state.get("hparams", {}))
        model.load_state_dict(state["state_dict"])
    except Exception as err:
        raise RuntimeError(f"{path}: unreadable classifier ({err}); retrain its classify job with --force") from err
    return model.to(device).eval(), state.get("info", {})
