"""``colorize/dcgan``: a conditional GAN (pix2pix-like) that colours grey garments in their class colour.

G sees only the grey image, so it must recognise the garment from its shape to pick the colour; D judges
(grey, colour) pairs, and an L1 term pulls G toward the true colouring (the adversarial term keeps the
colour saturated where L1 alone would average hues). The data is :mod:`fashion.colorize.palette`'s
coloured Fashion-MNIST, built on load; its test split (Fashion-MNIST's 10k test items) is held out.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fashion import artifacts
from fashion.colorize.networks import ColorizeGenerator, pair_discriminator, set_bn_momentum
from fashion.colorize.palette import MAX_JITTER, dominant_hue, grey_of, load_coloured, nearest_palette_class
from fashion.data import NUM_CLASSES, to_tanh_range
from fashion.gans.losses import bce
from fashion.task import ConfigError, Task, TrainConfig

EVAL_BATCH = 500


@dataclass
class ColorizeConfig(TrainConfig):
    """The write-up's settings: Adam 1e-4, batch 64, BatchNorm momentum 0.9 (Keras convention)."""

    epochs: int = 20
    "Passes over the 60k coloured training images."
    lr_g: float = 1e-4
    "Adam learning rate of the generator."
    lr_d: float = 1e-4
    "Adam learning rate of the discriminator."
    beta1: float = 0.5
    "Adam beta1 (DCGAN's choice) for both optimisers."
    l1_weight: float = 100.0
    "Weight of the L1 distance to the true colouring in G's loss (pix2pix uses 100)."
    bn_momentum: float = 0.9
    "BatchNorm momentum in the write-up's Keras convention (running = m*running + (1-m)*batch); torch gets 1-m."
    width: int = 64
    "Filters of G's first layer (then 2x, and back)."
    hue_jitter: float = 8.0
    "Per-item hue offset range in degrees (+-); below 15 so every item keeps its class colour."
    palette_seed: int = 0
    "Seed of the per-item hue jitter (fixed, so every run colours the data the same way)."
    epoch_eval_images: int = 2000
    "Test images scored after each epoch (0: all; the final metrics always use the whole test split)."

    def validate(self) -> None:
        super().validate()
        if self.width < 1:  # learning rates: TrainConfig.validate
            raise ConfigError(f"width={self.width}: must be positive")
        if not 0 <= self.bn_momentum < 1:
            raise ConfigError(f"bn_momentum={self.bn_momentum}: Keras convention, use 0 <= m < 1 (e.g. 0.9)")
        if not 0 <= self.hue_jitter < MAX_JITTER:
            raise ConfigError(f"hue_jitter={self.hue_jitter}: use 0 <= jitter < {MAX_JITTER} degrees")
        if self.l1_weight < 0 or self.epoch_eval_images < 0:
            raise ConfigError("l1_weight and epoch_eval_images must be at least 0")


def tanh_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in the tanh range [-1, 1] as uint8 [0, 255] (runfolder.to_uint8 takes [0, 1])."""
    return ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def colour_scores(generated: torch.Tensor, truth: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """PSNR, mean colour error on garment pixels and colour-class accuracy of uint8 RGB images."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    psnr = peak_signal_noise_ratio(generated.float() / 255, truth.float() / 255, data_range=1.0, dim=(1, 2, 3))
    garment = (grey_of(truth) > 0).expand_as(truth)
    error = (generated.float() - truth.float()).abs()[garment].mean()
    hue_class = nearest_palette_class(dominant_hue(generated)).to(labels.device)
    return {"psnr": psnr.item(), "mean_colour_error": error.item(),
            "colour_class_accuracy": (hue_class == labels).float().mean().item()}


class ColorizeTask(Task):
    """G(grey) -> colour trained against D(grey, colour) plus L1; scored on the held-out test split."""

    config_class = ColorizeConfig
    expected_files = ("samples/epoch_001.png", "samples.gif")

    def __init__(self, config: ColorizeConfig, accelerator, data):
        super().__init__(config, accelerator, data)
        c = config
        self.nets = {"G": ColorizeGenerator(c.width), "D": pair_discriminator()}
        for net in self.nets.values():
            set_bn_momentum(net, c.bn_momentum)
        self.opts = {name: self.optimizer(torch.optim.Adam, self.nets[name].parameters(), lr=lr, betas=(c.beta1, 0.999))
                     for name, lr in (("G", c.lr_g), ("D", c.lr_d))}
        # The grid's columns: the first two test items of every class, fixed for the whole run.
        labels = data.test.labels
        picks = [(labels == k).nonzero()[:2, 0] for k in range(NUM_CLASSES)]
        if all(len(p) == 2 for p in picks):
            self.grid_items = torch.stack(picks, 1).flatten()
        else:  # a tiny test subset: whatever it holds
            self.grid_items = torch.arange(min(20, len(labels)), device=labels.device)

    @classmethod
    def load_data(cls, config):
        return load_coloured(config.data_dir or None, config.download, config.hue_jitter, config.palette_seed)

    def judge(self, grey, colour):
        """D's logit for a (grey, colour) pair, both in [-1, 1]."""
        return self.nets["D"](torch.cat([grey, colour], 1))

    def train_step(self, images, labels, noise):
        colour, grey = to_tanh_range(images), to_tanh_range(grey_of(images))
        fake = self.nets["G"](grey)
        d_terms = self.optimize("D", {"real": bce(self.judge(grey, colour), 1.0),
                                      "fake": bce(self.judge(grey, fake.detach()), 0.0)})
        # G's loss backpropagates through D too; those D gradients are discarded, so skip their all-reduce.
        with self.acc.no_sync(self.nets["D"]):
            g_terms = self.optimize("G", {"adv": bce(self.judge(grey, fake), 1.0),
                                          "l1": self.config.l1_weight * F.l1_loss(fake.float(), colour)})
        logged = {}
        for prefix, terms in (("D", d_terms), ("G", g_terms)):
            logged[prefix] = sum(terms.values())
            logged.update({f"{prefix}.{k}": v for k, v in terms.items()})
        return logged

    @torch.no_grad()
    def generate_colour(self, colour_uint8: torch.Tensor) -> torch.Tensor:
        """G's colouring (uint8 RGB) of the grey versions of coloured images, in eval mode, batched."""
        G = self.unwrap("G")
        was_training = G.training
        G.eval()
        out = torch.cat([tanh_to_uint8(G(to_tanh_range(grey_of(chunk))))
                         for chunk in colour_uint8.split(EVAL_BATCH)])
        G.train(was_training)
        return out

    def end_epoch(self, epoch, out):
        truth = self.data.test.images[self.grid_items]
        generated = self.generate_colour(truth)
        rows = []
        for half in (slice(0, len(truth) // 2), slice(len(truth) // 2, None)):
            rows += [grey_of(truth[half]).expand(-1, 3, -1, -1), generated[half], truth[half]]
        artifacts.save_grid(torch.cat(rows).float() / 255, out / f"samples/epoch_{epoch:03d}.png",
                            nrow=max(1, len(truth) // 2), value_range=(0.0, 1.0))
        test = self.data.test.head(self.config.epoch_eval_images)
        scores = colour_scores(self.generate_colour(test.images), test.images, test.labels)
        return {f"test_{k}": v for k, v in scores.items()}

    def generator_spec(self):
        """G alone: grey in, colour out; it takes no latent."""
        return {"net": self.unwrap("G"), "kind": "colorize", "kwargs": {"width": self.config.width},
                "latent": [], "conditional": False, "classes": [], "conditions": None,
                "condition_input": "none", "image_shape": [1, 28, 28]}

    def finish(self, out):
        test = self.data.test
        scores = colour_scores(self.generate_colour(test.images), test.images, test.labels)
        truth_hue = nearest_palette_class(dominant_hue(test.images)).to(test.labels.device)
        return {"test": {**scores, "images": len(test),
                         "colour_class_accuracy_of_ground_truth": (truth_hue == test.labels).float().mean().item()}}
