"""The conditional VAE: a class vector is appended to z for the decoder (and to the encoder's features),
so one can ask for "a sneaker" with random z.

The class vector is the one-hot label, or, with ``classifier=<run>/classify/cnn/model.pt``, a frozen
classifier's softmax on the image: "classifier predictions concatenated to the latent code". Asking for
a class at sampling time always uses its one-hot vector.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from fashion import artifacts
from fashion.classify.networks import load_classifier
from fashion.data import NUM_CLASSES
from fashion.task import ConfigError, Noise
from fashion.vae.task import GRID, VAEConfig, VAETask


@dataclass
class ConditionalVAEConfig(VAEConfig):
    """The label-conditioned VAE's extra setting."""

    classifier: str = ""
    "A classify/cnn model.pt: condition on its class probabilities instead of the one-hot label."

    def validate(self) -> None:
        super().validate()
        if self.classifier and not Path(self.classifier).is_file():
            raise ConfigError(f"classifier={self.classifier}: no such file; train classify/cnn first "
                              "(it writes outputs/<run>/classify/cnn/model.pt) or leave classifier empty")


class ConditionalVAE(VAETask):
    """A VAE whose encoder and decoder also see the class vector; samples are asked for by class."""

    config_class = ConditionalVAEConfig
    condition_dim = NUM_CLASSES
    expected_files = VAETask.expected_files + ("class_grid.png",)

    def __init__(self, config: ConditionalVAEConfig, accelerator, data):
        self.classifier = None
        if getattr(config, "classifier", ""):
            self.classifier, _ = load_classifier(config.classifier, accelerator.device)
            self.classifier.requires_grad_(False)
        super().__init__(config, accelerator, data)

    def condition(self, images01, labels):
        if self.classifier is None:
            return F.one_hot(labels, NUM_CLASSES).float()
        with torch.no_grad():
            return torch.softmax(self.classifier(images01).float(), 1)

    def asked(self, classes: torch.Tensor) -> torch.Tensor:
        """The condition that asks the decoder for these classes."""
        return F.one_hot(classes, NUM_CLASSES).float()

    def conditions_for_grid(self):
        return self.asked(torch.arange(NUM_CLASSES, device=self.device))

    def manifold_condition(self, n):
        return self.grid_conditions[:1].expand(n, -1)

    def metric_samples(self, n, noise):
        classes = noise.randint(NUM_CLASSES, n)
        return self.decode01(noise.normal(n, self.config.latent_dim), self.asked(classes)), classes

    def finish(self, out):
        numbers = super().finish(out)
        self.draw_class_grid(out / "class_grid.png")
        return numbers

    def draw_class_grid(self, path) -> None:
        """One row per condition of the samples grid, fresh random z per image (not the fixed grid z)."""
        rows = self.grid_conditions
        z = Noise(self.device, self.config.seed + 4242).normal(len(rows) * GRID, self.config.latent_dim)
        images = self.decode01(z, rows.repeat_interleave(GRID, 0))
        artifacts.save_grid(images, path, nrow=GRID, value_range=(0, 1))
