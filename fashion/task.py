"""What a job is: its settings (:class:`TrainConfig`), its seeded noise (:class:`Noise`) and the
:class:`Task` interface the training loop drives.

A task builds its networks and optimisers, defines one training step that returns named loss terms, and
draws its pictures; fashion/training.py owns the loop around it.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fashion.data import Dataset, load_fashion
from fashion.trackers import tracker_problem

PRECISIONS = ("auto", "no", "bf16", "fp16")
COMPILE_OPTIONS: dict = {}
"More torch.compile keywords (the tests choose a backend that compiles in seconds)."


class ConfigError(ValueError):
    """An invalid config value; the message names the key and what is allowed."""


@dataclass
class TrainConfig:
    """Settings every job shares; each family's config extends it."""

    epochs: int = 50
    "Passes over the training split."
    batch_size: int = 64
    "Global batch: split evenly over all processes, so results do not depend on the GPU count."
    seed: int = 0
    "Seeds weights, batch order and every noise draw."
    precision: str = "auto"
    "auto (the family's default: fp32 for GANs, bf16 for the rest on a GPU that has it) | no | bf16 | fp16."
    limit_batches: int = 0
    "Stop every epoch after this many steps (0: the whole split)."
    train_subset: int = 0
    "Train on the first N images only (0: all)."
    test_subset: int = 0
    "Evaluate on the first N test images only (0: all)."
    data_dir: str = ""
    "Folder with the IDX files (default: $FASHION_MNIST_DIR, Debian's package, torchvision's cache)."
    download: bool = False
    "Let torchvision download Fashion-MNIST when it is found nowhere."
    cpu: bool = False
    "Train on the CPU even when a GPU is present."
    snapshot_every: int = 5
    "Every N epochs and at the last, keep generated samples for the report's FID-over-epochs curve (0: off)."
    snapshot_samples: int = 2000
    "Images per snapshot (uint8, 0.8 KB each)."
    eval_samples: int = 10000
    "Generated images kept at the end (eval_samples.pt) for the report's quality metrics."
    log_with: str = ""
    "Experiment trackers, comma-separated accelerate names (tensorboard, wandb, mlflow, aim, ...); '' is off."
    fast: bool = True
    ("The fast path: fused optimiser steps, backward only into the stepped parameters and, on the CPU, an "
     "allocator that keeps freed buffers (docs/performance.md).")
    compile: bool = False
    ("torch.compile the training networks (on CUDA with CUDA graphs); a network a gradient penalty "
     "differentiates twice stays eager. The same model on other kernels (docs/performance.md).")

    def validate(self) -> None:
        for f in dataclasses.fields(self):  # every family's float settings: inf/nan would train garbage
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{f.name}={value}: must be a finite number")
            if isinstance(value, float) and f.name.split("_")[0] == "lr" and not value > 0:  # lr, lr_g, lr_floor...
                raise ConfigError(f"{f.name}={value}: a learning rate must be positive")
        for name in ("snapshot_samples", "eval_samples"):
            if getattr(self, name) < 2:
                raise ConfigError(f"{name}={getattr(self, name)}: FID needs at least 2 (thousands are usual)")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision={self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}: must be at least 1")
        for name in ("limit_batches", "train_subset", "test_subset", "snapshot_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)}: must be 0 (off) or positive")
        if problem := tracker_problem(self.trackers()):
            raise ConfigError(problem)

    def trackers(self) -> list[str]:
        return [t.strip() for t in self.log_with.split(",") if t.strip()]


class Noise:
    """Random draws on the training device from a generator seeded by (seed, epoch, rank).

    Drawing from a known generator instead of the global RNG makes a resumed run bitwise equal to an
    uninterrupted one: resuming at epoch e recreates exactly the generator epoch e would have used.
    """

    def __init__(self, device, seed: int):
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    @classmethod
    def for_epoch(cls, device, seed: int, epoch: int, rank: int) -> "Noise":
        return cls(device, (seed * 1_000_003 + epoch) * 1024 + rank + 1)

    def uniform(self, *shape, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        u = torch.rand(*shape, device=self.device, generator=self.generator)
        return u if (low, high) == (0.0, 1.0) else u * (high - low) + low

    def normal(self, *shape) -> torch.Tensor:
        return torch.randn(*shape, device=self.device, generator=self.generator)

    def randint(self, high: int, *shape) -> torch.Tensor:
        return torch.randint(high, shape, device=self.device, generator=self.generator)


class Task:
    """One trainable experiment. Subclasses fill ``nets`` and ``opts`` in ``__init__``."""

    config_class = TrainConfig
    expected_files: tuple[str, ...] = ()
    "Files (relative to the job folder) a finished job of this task leaves besides the loop's own."
    label_kind = "class"
    "What metric_samples' labels mean: the asked class, or 'code' for an unsupervised code (infoGAN)."
    label_names: tuple[str, ...] | None = None
    "Names of the label values (default: the Fashion-MNIST classes, or 'code i' for codes)."
    auto_precision = "bf16"
    "What precision=auto means on a GPU with bf16 (fp32 elsewhere)."
    eager_nets: tuple[str, ...] = ()
    "Networks differentiated twice (a gradient penalty): compiled graphs have no double backward."
    global_batchnorm = False
    "Under DDP, BatchNorm statistics cover the global batch (fashion/batchnorm.py), not each rank's share."

    def __init__(self, config: TrainConfig, accelerator, data: Dataset):
        self.config, self.acc, self.data = config, accelerator, data
        self.nets: dict[str, nn.Module] = {}
        self.opts: dict[str, torch.optim.Optimizer] = {}

    @classmethod
    def load_data(cls, config: TrainConfig) -> Dataset:
        return load_fashion(config.data_dir or None, config.download)

    @property
    def device(self) -> torch.device:
        return self.acc.device

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, noise: Noise) -> dict[str, torch.Tensor]:
        """One optimisation step on this rank's share of a batch; returns detached named loss terms."""
        raise NotImplementedError

    def optimizer(self, cls, params, **settings) -> torch.optim.Optimizer:
        """``cls(params, **settings)``, stepping with its fused kernel (one per step instead of several per
        tensor) when the config's ``fast`` is on and ``cls`` has one (Adam, AdamW, SGD; not RMSprop)."""
        if self.config.fast and "fused" in inspect.signature(cls).parameters:
            settings["fused"] = True
        return cls(params, **settings)

    def optimize(self, opt: str, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Sum the terms, one backward, one step. The only place any job calls backward or step.

        A single backward per optimiser keeps DDP ranks in sync (two backwards through one DDP module
        per step can silently desynchronise them). With the fast path the backward computes gradients for
        this optimiser's parameters only: a GAN's G step then skips D's weight gradients, which the
        reference computes and throws away; every gradient that is stepped stays bitwise the same.
        """
        optimizer = self.opts[opt]
        optimizer.zero_grad(set_to_none=True)
        total = sum(terms.values())
        self.acc.backward(total, **({"inputs": self.stepped_parameters(opt)} if self.config.fast else {}))
        optimizer.step()
        return {name: value.detach().float() for name, value in terms.items()}

    def stepped_parameters(self, opt: str) -> list[torch.Tensor]:
        """The trainable parameters optimiser ``opt`` updates."""
        return [p for group in self.opts[opt].param_groups for p in group["params"] if p.requires_grad]

    def unwrap(self, name: str) -> nn.Module:
        """The plain network (no DDP or compiled wrapper): for pictures, samples and state dicts."""
        return self.acc.unwrap_model(self.nets[name], keep_torch_compile=False)

    def after_epoch(self, epoch: int, means: dict[str, float]) -> dict[str, float]:
        """Every rank, before the checkpoint: react to the epoch's means (reduced over ranks); returns values
        to log."""
        return {}

    def end_epoch(self, epoch: int, out: Path) -> dict[str, float]:
        """Main process only: pictures for this epoch and any test-set numbers to log."""
        return {}

    def finish(self, out: Path) -> dict:
        """Main process only: final analyses; returns extra metrics for metrics.json."""
        return {}

    @classmethod
    def generative(cls) -> bool:
        """Whether a finished job keeps a generator to draw from (generator.pt, ``--sample``)."""
        return cls.generator_spec is not Task.generator_spec

    @classmethod
    def measured(cls) -> bool:
        """Whether it draws samples comparable with Fashion-MNIST (metric_samples): the job keeps evaluation
        samples and snapshots, and measures them with the shipped evaluator."""
        return cls.metric_samples is not Task.metric_samples

    def metric_samples(self, n: int, noise: Noise) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """For quality metrics: n generated images in [0, 1] (N, C, 28, 28) and the classes they were asked
        to show (None if unconditional); None for tasks that generate nothing comparable."""
        return None

    def generator_spec(self) -> dict | None:
        """What ``generator.pt`` keeps (see :mod:`fashion.generator`): {"net": the generating module, "kind",
        "kwargs" that rebuild it, "latent" parts, "conditional", "classes", ...}; None: nothing to draw."""
        return None

    def state_dict(self) -> dict:
        """Task state beyond networks and optimisers (e.g. BEGAN's k)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass



def prepare_task(task: Task, acc) -> Task:
    """Put the task's nets and optimisers on ``acc`` (device, DDP); under DDP, BatchNorm first covers the
    global batch where the task asks for it."""
    if task.global_batchnorm and acc.num_processes > 1:
        from fashion.batchnorm import convert_global_batchnorm
        task.nets = {n: convert_global_batchnorm(net) for n, net in task.nets.items()}
    slots = [(task.nets, n) for n in task.nets] + [(task.opts, n) for n in task.opts]
    prepared = acc.prepare(*(owner[n] for owner, n in slots))
    prepared = prepared if isinstance(prepared, (list, tuple)) else [prepared]
    for (owner, name), obj in zip(slots, prepared):
        owner[name] = obj
    if task.config.compile:
        # CUDA graphs replay a whole step's kernels in one launch: the step is launch-bound on a GPU.
        options = {"mode": "reduce-overhead"} if acc.device.type == "cuda" else {}
        task.nets = {n: net if n in task.eager_nets else torch.compile(net, **options, **COMPILE_OPTIONS)
                     for n, net in task.nets.items()}
    return task

