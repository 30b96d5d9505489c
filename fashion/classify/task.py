"""Fashion-MNIST classifiers (dense and conv) and their robustness to FGSM adversarial noise.

FGSM (Goodfellow et al. 2015) moves every pixel by ``epsilon`` in the direction that increases the loss:
``x_adv = clip(x + epsilon * sign(d loss / d x), 0, 1)``. Two variants: noise on all pixels, and noise only
on the garment (non-zero pixels), as the write-up does, so the black background stays untouched.
``classify/cnn``'s trained model is the suite's feature extractor for the quality metrics.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fashion import artifacts, runfolder
from fashion.classify.networks import ARCHITECTURES, MODEL_FILE, ConvClassifier, DenseClassifier, save_classifier
from fashion.data import CLASSES, NUM_CLASSES, to_unit_range
from fashion.task import ConfigError, Task, TrainConfig

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine")
EVAL_BATCH = 1000
WRITE_UP_EPSILONS = (0.05, 0.1)  # the SJSU write-up: 75% accuracy at 0.05, the noise visible at 0.1


@dataclass
class ClassifierConfig(TrainConfig):
    """A classifier's settings; the catalogue picks the architecture."""

    epochs: int = 15
    "Passes over the training split."
    arch: str = "cnn"
    "dense (784-128-10) | cnn (two 5x5 conv blocks)."
    width: int = 64
    "cnn: filters of the first conv layer (the second has twice as many); the write-up uses 64."
    kernel: int = 5
    "cnn: side of the square conv kernels (odd); the write-up uses 5."
    optimizer: str = "adam"
    "adam | sgd (with Nesterov momentum 0.9)."
    lr: float = 1e-3
    "Peak learning rate."
    lr_schedule: str = "cosine"
    "constant | cosine (decay to zero over the whole run, by iteration so resume is exact)."
    weight_decay: float = 0.0
    "L2 weight decay."
    augment: bool = False
    "Random horizontal flips and shifts of up to 2 pixels."
    train_eval_images: int = 10000
    "Train accuracy per epoch is measured in eval mode on the first N training images (0: all)."
    fgsm_epsilons: tuple[float, ...] = (0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.225, 0.25)
    "FGSM noise levels (pixels in [0, 1]), comma-separated."
    fgsm_images: int = 10000
    "FGSM accuracy is measured on the first N test images (0: all)."

    def validate(self) -> None:
        super().validate()
        choices = {"arch": tuple(ARCHITECTURES), "optimizer": OPTIMIZERS, "lr_schedule": SCHEDULES}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key}={getattr(self, key)!r}: choose one of {', '.join(allowed)}")
        if self.weight_decay < 0 or self.width < 1:  # learning rates: TrainConfig.validate
            raise ConfigError(f"weight_decay={self.weight_decay}, width={self.width}: width must be positive, "
                              "weight_decay at least 0")
        if not self.fgsm_epsilons or any(not 0 <= e <= 1 for e in self.fgsm_epsilons):
            raise ConfigError(f"fgsm_epsilons={self.fgsm_epsilons}: give values in [0, 1], e.g. 0,0.05,0.1")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ConfigError(f"kernel={self.kernel}: use an odd size such as 3 or 5 (keeps 28x28 maps centred)")
        if self.train_eval_images < 0 or self.fgsm_images < 0:
            raise ConfigError("train_eval_images and fgsm_images must be 0 (all) or positive")


def build_classifier(config: ClassifierConfig) -> nn.Module:
    return ConvClassifier(width=config.width, kernel=config.kernel) if config.arch == "cnn" else DenseClassifier()


def fgsm_direction(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """sign(d loss / d x) at the clean images: FGSM's step direction, the same for every epsilon."""
    x = images.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x).float(), labels)
    (grad,) = torch.autograd.grad(loss, x)
    return grad.sign()


def perturb(images: torch.Tensor, direction: torch.Tensor, epsilon: float, garment_only: bool) -> torch.Tensor:
    """Step ``epsilon`` along ``direction``, only on non-zero pixels if ``garment_only``; clip to [0, 1]."""
    step = epsilon * direction
    if garment_only:
        step = step * (images > 0)
    return (images + step).clamp(0.0, 1.0).detach()


def fgsm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float,
         garment_only: bool = False) -> torch.Tensor:
    """Adversarial copies of ``images`` (floats in [0, 1]); ``garment_only`` leaves zero pixels untouched."""
    return perturb(images, fgsm_direction(model, images, labels), epsilon, garment_only)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch: int = EVAL_BATCH) -> torch.Tensor:
    """Predicted classes of float images, in batches."""
    return torch.cat([model(chunk).argmax(1) for chunk in images.split(batch)])


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = EVAL_BATCH) -> float:
    """Share of correct predictions on float images in [0, 1]."""
    return (predict(model, images, batch) == labels).float().mean().item()


def fgsm_curve(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilons,
               batch: int = EVAL_BATCH) -> list[dict]:
    """Accuracy at each epsilon for both variants, each image attacked against its own true label.

    One gradient per image serves every epsilon (FGSM's direction does not depend on it).
    """
    correct = torch.zeros(len(epsilons), 2)
    for x, y in zip(images.split(batch), labels.split(batch)):
        direction = fgsm_direction(model, x, y)
        for i, epsilon in enumerate(epsilons):
            for j, garment_only in enumerate((False, True)):
                correct[i, j] += (predict(model, perturb(x, direction, epsilon, garment_only)) == y).sum().item()
    share = (correct / len(images)).tolist()
    return [{"epsilon": e, "accuracy_all_pixels": a, "accuracy_garment_pixels": g}
            for e, (a, g) in zip(epsilons, share)]


def shift_and_flip(x: torch.Tensor, noise, max_shift: int = 2) -> torch.Tensor:
    """Per image: mirror with probability 1/2 and translate by up to ``max_shift`` pixels (zero fill)."""
    n, _, h, w = x.shape
    flip = noise.uniform(n) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    dy, dx = (noise.randint(2 * max_shift + 1, n) for _ in range(2))
    padded = F.pad(x, (max_shift,) * 4)
    rows = (torch.arange(h, device=x.device) + dy[:, None])[:, :, None]
    cols = (torch.arange(w, device=x.device) + dx[:, None])[:, None, :]
    return padded[torch.arange(n, device=x.device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)


class ClassifierTask(Task):
    """Cross-entropy training; per epoch train/test accuracy; at the end confusion matrix and FGSM curves."""

    config_class = ClassifierConfig
    expected_files = (MODEL_FILE, "confusion_matrix.png", "accuracy.png", "fgsm.csv", "fgsm.png",
                 "fgsm_examples.png")

    def __init__(self, config: ClassifierConfig, accelerator, data):
        super().__init__(config, accelerator, data)
        c = config
        net = build_classifier(c)
        if c.optimizer == "adam":
            opt = self.optimizer(torch.optim.Adam, net.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        else:
            opt = self.optimizer(torch.optim.SGD, net.parameters(), lr=c.lr, momentum=0.9, nesterov=True,
                                 weight_decay=c.weight_decay)
        self.nets, self.opts = {"net": net}, {"net": opt}
        steps = len(data.train) // c.batch_size
        self.total_steps = c.epochs * (min(steps, c.limit_batches) if c.limit_batches else steps)
        self.iteration = 0

    def learning_rate(self) -> float:
        """The schedule at the current iteration (computed, not stored, so a resumed run matches)."""
        if self.config.lr_schedule == "constant":
            return self.config.lr
        return 0.5 * self.config.lr * (1 + math.cos(math.pi * min(self.iteration / self.total_steps, 1.0)))

    def train_step(self, images, labels, noise):
        for group in self.opts["net"].param_groups:
            group["lr"] = self.learning_rate()
        self.iteration += 1
        x = to_unit_range(images)
        if self.config.augment:
            x = shift_and_flip(x, noise)
        logits = self.nets["net"](x)
        terms = self.optimize("net", {"cross_entropy": F.cross_entropy(logits.float(), labels)})
        return {**terms, "batch_accuracy": (logits.argmax(1) == labels).float().mean().detach()}

    def evaluation_model(self) -> nn.Module:
        """The unwrapped network in eval mode (BatchNorm running statistics, no dropout)."""
        return self.unwrap("net").eval()

    def end_epoch(self, epoch, out):
        model = self.evaluation_model()
        train = self.data.train.head(self.config.train_eval_images)
        scores = {"train_accuracy": accuracy(model, to_unit_range(train.images), train.labels),
                  "test_accuracy": accuracy(model, to_unit_range(self.data.test.images), self.data.test.labels),
                  "lr": self.learning_rate()}
        model.train()
        return scores

    def finish(self, out):
        model = self.evaluation_model()
        test_x, test_y = to_unit_range(self.data.test.images), self.data.test.labels
        predicted = predict(model, test_x)
        test_accuracy = (predicted == test_y).float().mean().item()
        confusion = torch.bincount(test_y * NUM_CLASSES + predicted, minlength=NUM_CLASSES ** 2)
        plot_confusion(confusion.view(NUM_CLASSES, NUM_CLASSES).cpu(), out / "confusion_matrix.png",
                       f"{self.config.arch}: test accuracy {test_accuracy:.2%}")
        history = runfolder.read_history(out)
        plot_accuracy(history, out / "accuracy.png", self.config.arch)

        fgsm_x, fgsm_y = test_x, test_y
        if self.config.fgsm_images:
            fgsm_x, fgsm_y = test_x[: self.config.fgsm_images], test_y[: self.config.fgsm_images]
        rows = fgsm_curve(model, fgsm_x, fgsm_y, self.config.fgsm_epsilons)
        artifacts.write_csv(out / "fgsm.csv", rows)
        plot_fgsm(rows, out / "fgsm.png", f"{self.config.arch} ({len(fgsm_y)} test images)")
        plot_fgsm_examples(model, test_x, test_y, self.config.fgsm_epsilons, out / "fgsm_examples.png")

        save_classifier(out / MODEL_FILE, model, self.config.arch, test_accuracy=test_accuracy,
                        epochs=self.config.epochs, test_images=len(test_y))
        return {"test_accuracy": test_accuracy,
                "train_accuracy": history[-1].get("train_accuracy") if history else None,
                "fgsm": {"images": len(fgsm_y), "epsilon": [r["epsilon"] for r in rows],
                         "accuracy_all_pixels": [r["accuracy_all_pixels"] for r in rows],
                         "accuracy_garment_pixels": [r["accuracy_garment_pixels"] for r in rows]}}

    def state_dict(self):
        return {"iteration": self.iteration}

    def load_state_dict(self, state):
        self.iteration = state.get("iteration", 0)


# -- pictures --------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(matrix: torch.Tensor, path, title: str) -> Path:
    """Counts of (true class, predicted class) with the class names on both axes."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    image = ax.imshow(matrix.numpy(), cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_xticks(range(NUM_CLASSES), CLASSES, rotation=45, ha="right")
    ax.set_yticks(range(NUM_CLASSES), CLASSES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    high = matrix.max().item()
    for (i, j), count in zip(((i, j) for i in range(NUM_CLASSES) for j in range(NUM_CLASSES)),
                             matrix.flatten().tolist()):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                color="white" if count > high / 2 else "black")
    ax.set_title(title)
    return artifacts.save_figure(fig, path)


def plot_accuracy(history: list[dict], path, title: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("batch_accuracy", "train (running, during the epoch)"),
                       ("train_accuracy", "train (eval mode)"), ("test_accuracy", "test")):
        points = [(row["epoch"], row[key]) for row in history if key in row]
        if points:
            ax.plot(*zip(*points), "o-", ms=3, label=label)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"{title}: accuracy per epoch")
    return artifacts.save_figure(fig, path)


def plot_fgsm(rows: list[dict], path, title: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    eps = [r["epsilon"] for r in rows]
    ax.plot(eps, [r["accuracy_all_pixels"] for r in rows], "o-", label="noise on all pixels")
    ax.plot(eps, [r["accuracy_garment_pixels"] for r in rows], "s-", label="noise on garment pixels only")
    ax.set_xlabel("epsilon")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"FGSM: {title}")
    return artifacts.save_figure(fig, path)


def example_strengths(epsilons) -> list[float]:
    """The epsilons the examples show: the write-up's (0.05: "75% accuracy", 0.1: "visible") where measured,
    and the largest; else the middle and the largest of the positive ones."""
    strengths = sorted({e for e in epsilons if e > 0})
    if not strengths:
        return []
    written = [e for e in WRITE_UP_EPSILONS if e in strengths]
    return sorted({*written, strengths[-1]}) if written else sorted({strengths[len(strengths) // 2], strengths[-1]})


def plot_fgsm_examples(model, images, labels, epsilons, path) -> Path:
    """One test image per class: clean, then FGSM at a few strengths for both variants, titled with predictions."""
    plt = _pyplot()
    picks = torch.stack([(labels == c).nonzero()[0, 0] for c in range(NUM_CLASSES) if (labels == c).any()])
    x, y = images[picks], labels[picks]
    strengths = example_strengths(epsilons)
    variants = [("clean", x)] + [(f"{name} eps={e:g}", fgsm(model, x, y, e, garment_only))
                                 for e in strengths for name, garment_only in (("all", False), ("garment", True))]
    fig, axes = plt.subplots(len(variants), len(picks), figsize=(1.45 * len(picks), 1.75 * len(variants)),
                             squeeze=False)
    for row, (name, batch) in zip(axes, variants):
        predicted = predict(model, batch).tolist()
        for col, (ax, image, truth, guess) in enumerate(zip(row, batch.cpu(), y.tolist(), predicted)):
            ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            title = f"true {CLASSES[truth]}\n{CLASSES[guess]}" if name == "clean" else CLASSES[guess]
            ax.set_title(title, fontsize=7, color="black" if guess == truth else "red")
            if col == 0:
                ax.set_ylabel(name, fontsize=7)
    fig.suptitle("FGSM examples: predicted class above each image (red = wrong)", fontsize=9)
    fig.tight_layout()
    return artifacts.save_figure(fig, path)
