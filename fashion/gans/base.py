"""What all ten GANs share: config, networks, latent draws, the D/G update schedule and the sample grids.

A GAN module subclasses :class:`GAN`, declares its settings and overrides ``d_loss``/``g_loss``, which
return named loss terms and never call backward or step; the arithmetic is in :mod:`fashion.gans.losses`, and
the step's noise comes in as an argument, so the hooks hold no per-step state. ``@register`` makes the file
a job (``gan/<file name>``), a row of the report and a case of the parametrised tests.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fashion import artifacts
from fashion.batchnorm import gather_batch
from fashion.data import CLASSES, NUM_CLASSES, to_tanh_range
from fashion.gans.networks import Discriminator, Generator
from fashion.task import ConfigError, Noise, Task, TrainConfig

REGISTRY: dict[str, type["GAN"]] = {}
GRID = 10  # samples per row and column of the per-epoch grid


def register(cls: type["GAN"]) -> type["GAN"]:
    """Add a GAN under its module's file name (``fashion/gans/wgan_gp.py`` -> ``wgan_gp``)."""
    cls.name = cls.__module__.rsplit(".", 1)[-1]
    REGISTRY[cls.name] = cls
    return cls


@dataclass
class GANConfig(TrainConfig):
    """The reference collection's shared settings."""

    z_dim: int = 62
    "Noise dimensions, drawn from U[0, 1) as in the reference."
    lr_g: float = 2e-4
    "Adam learning rate of the generator."
    lr_d: float = 2e-4
    "Adam learning rate of the discriminator / critic."
    beta1: float = 0.5
    "Adam beta1 for both optimisers."
    beta2: float = 0.999
    "Adam beta2 for both optimisers."
    n_critic: int = 1
    "Discriminator steps per generator step."

    def validate(self) -> None:
        super().validate()
        if self.z_dim < 1 or self.n_critic < 1:  # learning rates: TrainConfig.validate
            raise ConfigError(f"z_dim={self.z_dim}, n_critic={self.n_critic}: both must be at least 1")


def one_hot(labels: torch.Tensor) -> torch.Tensor:
    return F.one_hot(labels, NUM_CLASSES).to(torch.get_default_dtype())


def noise_like(noise: Noise, x: torch.Tensor, per_sample: bool = True) -> torch.Tensor:
    """U[0, 1) from ``noise``: one value per sample of ``x`` (broadcastable) or one per element."""
    shape = (len(x),) + (1,) * (x.dim() - 1) if per_sample else tuple(x.shape)
    return noise.uniform(*shape)


class GAN(Task):
    """The unconditional reference GAN machinery; subclasses change losses, heads and latents."""

    name = "gan"
    config_class = GANConfig
    conditional = False
    "Labels go into G (and D); grids show one class per column, one z per row (the reference's layout)."
    auto_precision = "no"
    "These 28x28 nets gain no speed from bf16 (README, Speed) and the reference trained fp32."
    global_batchnorm = True
    "Under DDP, BatchNorm covers the global batch: the reference's batch of 64 whatever the GPU count."

    def __init__(self, config: GANConfig, accelerator, data):
        super().__init__(config, accelerator, data)
        c = config
        self.nets = {"G": self.build_generator(), "D": self.build_discriminator()}
        self.opts = {name: self.optimizer(torch.optim.Adam, self.nets[name].parameters(), lr=lr,
                                          betas=(c.beta1, c.beta2))
                     for name, lr in (("G", c.lr_g), ("D", c.lr_d))}
        self.iteration = 0
        self.fixed_grids = self.grid_latents(Noise(self.device, config.seed + 12345))

    # -- what a subclass may change ---------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.config.z_dim + (NUM_CLASSES if self.conditional else 0)

    def build_generator(self):
        return Generator(self.latent_dim)

    def build_discriminator(self):
        return Discriminator()

    def latent(self, labels: torch.Tensor, noise: Noise) -> torch.Tensor:
        """G's input for a batch; conditional models are asked for the real batch's classes."""
        z = noise.uniform(len(labels), self.config.z_dim)
        return torch.cat([z, one_hot(labels)], 1) if self.conditional else z

    def d_loss(self, real, fake, labels, latent, noise: Noise) -> dict[str, torch.Tensor]:
        """D's named loss terms for a batch; ``noise``: the step's seeded draws (e.g. penalty points)."""
        raise NotImplementedError

    def g_loss(self, fake, labels, latent, noise: Noise) -> dict[str, torch.Tensor]:
        """G's named loss terms for the fakes it made from ``latent``."""
        raise NotImplementedError

    def after_d_step(self) -> None:
        """Runs after each D update (WGAN clips weights here)."""

    def after_g_step(self, d_terms: dict, g_terms: dict) -> dict | None:
        """Runs after each G update with that iteration's detached terms; may return extra values to log."""

    def grid_latents(self, noise: Noise) -> dict[str, torch.Tensor]:
        """Fixed inputs for the per-epoch pictures: {"": 10x10 grid, other names: extra sweeps}."""
        if self.conditional:
            z, labels = self.style_by_class(noise)
            return {"": torch.cat([z, one_hot(labels)], 1)}
        return {"": noise.uniform(GRID * GRID, self.config.z_dim)}

    def style_by_class(self, noise: Noise) -> tuple[torch.Tensor, torch.Tensor]:
        """The reference's conditional grid, row-major: row r keeps one z, column c asks for class c, so a
        row shows one style across the ten classes and a column one class in ten styles."""
        z = noise.uniform(GRID, self.config.z_dim).repeat_interleave(NUM_CLASSES, 0)
        return z, torch.arange(NUM_CLASSES, device=self.device).repeat(GRID)

    # -- the shared machinery ------------------------------------------------------------------
    @property
    def G(self):
        return self.nets["G"]

    @property
    def D(self):
        return self.nets["D"]

    def train_step(self, images, labels, noise):
        real = to_tanh_range(images)
        self.iteration += 1
        update_g = self.iteration % self.config.n_critic == 0
        latent = self.latent(labels, noise)
        with torch.set_grad_enabled(update_g):  # critic-only steps need no graph through G
            fake = self.G(latent)
        d_terms = self.optimize("D", self.d_loss(real, fake.detach(), labels, latent, noise))
        self.after_d_step()
        logged = _prefixed("D", d_terms)
        if update_g:
            # The G loss backpropagates through D too; those D gradients are discarded, so skip their all-reduce.
            with self.acc.no_sync(self.D):
                g_terms = self.optimize("G", self.g_loss(fake, labels, latent, noise))
            logged.update(_prefixed("G", g_terms))
            logged.update(self.after_g_step(d_terms, g_terms) or {})
        return logged

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """The whole global batch of ``x`` (rank order = batch order), differentiable; ``x`` on one process.

        Every rank then computes the same global term; the all-gather's backward sums the ranks' gradients
        and DDP averages them, so each rank's share gets exactly the single-process gradient.
        """
        return gather_batch(x) if self.acc.num_processes > 1 else x

    def global_mean(self, x: torch.Tensor) -> torch.Tensor:
        """The global batch's mean of a per-rank mean (shares are equal), differentiable."""
        return self.gather(x.reshape(1)).mean()

    def grad_scale(self) -> float | None:
        """fp16's current loss scale, for penalties that differentiate inside the step (else None)."""
        return self.acc.scaler.get_scale() if self.acc.scaler is not None else None

    @torch.no_grad()
    def generate(self, latent: torch.Tensor, batch: int = 500) -> torch.Tensor:
        """Images in [-1, 1] from the generator in eval mode (BatchNorm running statistics)."""
        G = self.unwrap("G")
        was_training = G.training
        G.eval()
        out = torch.cat([G(chunk).float() for chunk in latent.split(batch)])
        G.train(was_training)
        return out

    def metric_samples(self, n, noise):
        labels = noise.randint(NUM_CLASSES, n) if self.conditional else None
        latent = self.latent(labels if labels is not None else torch.zeros(n, dtype=torch.long, device=self.device),
                             noise)
        return (self.generate(latent) + 1) / 2, labels

    def end_epoch(self, epoch, out):
        for name, latent in self.fixed_grids.items():
            path = f"samples/epoch_{epoch:03d}.png" if not name else f"sweeps/{name}_epoch_{epoch:03d}.png"
            artifacts.save_grid(self.generate(latent), out / path, nrow=GRID)
        return {}

    def latent_parts(self) -> list[dict]:
        """The latent layout for generator.pt, in the order ``latent`` concatenates it."""
        parts = [{"kind": "uniform", "size": self.config.z_dim, "low": 0.0, "high": 1.0}]
        return parts + [{"kind": "condition"}] if self.conditional else parts

    def generator_spec(self):
        return {"net": self.unwrap("G"), "kind": "gan", "kwargs": {"input_dim": self.latent_dim},
                "latent": self.latent_parts(), "conditional": self.conditional, "classes": list(CLASSES),
                "conditions": torch.eye(NUM_CLASSES) if self.conditional else None,
                "condition_input": "latent", "image_shape": [1, 28, 28]}

    def state_dict(self):
        return {"iteration": self.iteration}

    def load_state_dict(self, state):
        self.iteration = state.get("iteration", 0)


def _prefixed(prefix: str, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {prefix: sum(terms.values())}
    if len(terms) > 1:
        out.update({f"{prefix}.{k}": v for k, v in terms.items()})
    return out

