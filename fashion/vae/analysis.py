"""The VAE pictures and latent-space operations: reconstructions over epochs, the 2-D latent map and
manifold, interpolation, arithmetic, the latent traversal, the data set's classes, ELBO curves. Pure functions
of tensors; files go through artifacts."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fashion import artifacts
from fashion.task import ConfigError

MAX_EPOCH_ROWS = 15  # rows of the "after n epochs" figure; longer runs show evenly spaced epochs


@contextlib.contextmanager
def eval_mode(module: nn.Module):
    """BatchNorm on running statistics while drawing or evaluating; restores training mode after."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


# -- choosing test images --------------------------------------------------------------------------
def first_of_each_class(classes: torch.Tensor, count: int) -> list[int]:
    """Indices of the first test image of each class (in class order), topped up with the next images."""
    chosen = [int((classes == c).nonzero()[0]) for c in torch.unique(classes).tolist()][:count]
    for i in range(len(classes)):
        if len(chosen) >= count:
            break
        if i not in chosen:
            chosen.append(i)
    return chosen


def firsts_per_class(classes: torch.Tensor, count: int, n_classes: int) -> list[list[int]]:
    """Per class (in class order), the indices of its first ``count`` images; fewer where it has fewer."""
    return [(classes == c).nonzero().flatten()[:count].tolist() for c in range(n_classes)]


@dataclass
class Pick:
    """One side of an ``A:B`` spec: a class (all its test images) or '+'-joined test images and classes."""

    name: str
    indices: list[int]
    single_class: bool

    def first(self) -> int:
        return self.indices[0]

    def endpoint(self, means: torch.Tensor) -> torch.Tensor:
        """Interpolation end: a class's first test image, or the mean latent of listed images."""
        return means[self.first()] if self.single_class else means[self.indices].mean(0)

    def latent(self, means: torch.Tensor) -> torch.Tensor:
        """Arithmetic operand: the mean latent of the class or of the listed images."""
        return means[self.indices].mean(0)


def parse_side(text: str, spec: str, names, classes: torch.Tensor) -> Pick:
    lowered = {n.lower(): i for i, n in enumerate(names)}
    indices, tokens = [], [t.strip() for t in text.split("+")]
    for token in tokens:
        if token.isdigit():
            if int(token) >= len(classes):
                raise ConfigError(f"{spec!r}: test index {token} out of range (the test split has {len(classes)} "
                                  "images); pick a smaller index or a class name")
            indices.append(int(token))
        elif token.lower() in lowered:
            members = (classes == lowered[token.lower()]).nonzero().flatten().tolist()
            if not members:
                raise ConfigError(f"{spec!r}: no test image of class {token!r}; pick another class or an index")
            indices += members
        else:
            raise ConfigError(f"{spec!r}: {token!r} is neither a test index nor a class; classes: {', '.join(names)}")
    single = len(tokens) == 1 and not tokens[0].isdigit()
    return Pick(text.strip(), indices, single)


def parse_pair(spec: str, names, classes: torch.Tensor) -> tuple[Pick, Pick, str]:
    """``"Pullover:Sneaker"``, ``"30+31:53"`` or ``"handle=30+31:53"`` -> both sides, checked against the
    test split, and the optional label before ``=``."""
    label, _, pair = spec.rpartition("=")
    a, sep, b = pair.partition(":")
    if not sep:
        raise ConfigError(f"{spec!r}: write A:B, e.g. Pullover:Sneaker or 12:345 (optionally label=A:B)")
    return parse_side(a, spec, names, classes), parse_side(b, spec, names, classes), label.strip()


# -- latent-space operations -----------------------------------------------------------------------
def interpolate(a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` points on the straight line from a to b, both ends included: (steps, *a.shape)."""
    t = torch.linspace(0, 1, steps, device=a.device, dtype=a.dtype).view(-1, *([1] * a.dim()))
    return a + t * (b - a)


def manifold_latents(side: int) -> torch.Tensor:
    """A side x side grid over the 2-D prior at evenly spaced quantiles (5%..95%), +z2 at the top."""
    q = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, side))
    z1, z2 = torch.meshgrid(q, q.flip(0), indexing="xy")
    return torch.stack([z1.flatten(), z2.flatten()], 1)


def traversal_latents(mean: torch.Tensor, offsets: torch.Tensor, dims: list[int]) -> torch.Tensor:
    """(1 + len(dims), len(offsets), d): ``mean`` shifted by each offset on every dimension at once (the
    recipe's walk), then on each of ``dims`` alone."""
    eye = torch.eye(mean.numel(), dtype=mean.dtype, device=mean.device)
    directions = torch.cat([torch.ones_like(mean)[None], eye[dims]])
    return mean + offsets.to(mean)[None, :, None] * directions[:, None, :]


def most_varied_dims(means: torch.Tensor, most: int) -> list[int]:
    """The ``most`` latent dimensions whose posterior means vary most over the data, in index order."""
    if means.shape[1] <= most:
        return list(range(means.shape[1]))
    return sorted(means.float().var(0).topk(most).indices.tolist())


def active_dims(means: torch.Tensor, threshold: float = 0.01) -> int:
    """Latent dimensions whose posterior mean varies across the data (Burda et al.'s active units)."""
    return int((means.float().var(0) > threshold).sum())


def informative_dims(kl_per_dim: torch.Tensor, threshold: float = 0.1) -> int:
    """Latent dimensions carrying more than ``threshold`` nats of KL on average. Stricter than active_dims:
    early in training unused dimensions still vary a little (just above 0.01) but carry almost no KL."""
    return int((kl_per_dim > threshold).sum())


# -- pictures --------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def grid_array(images: torch.Tensor, nrow: int, padding: int = 2) -> np.ndarray:
    """A (H, W, 3) float image of a batch in [0, 1] laid out ``nrow`` per row, white gaps."""
    from torchvision.utils import make_grid

    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=padding, pad_value=1.0)
    return grid.permute(1, 2, 0).numpy()


def _labelled_rows(images: torch.Tensor, per_row: int, labels: list[str], path, title: str = "",
                   columns: list[str] = (), xlabel: str = "") -> None:
    plt = _plt()
    rows = len(labels)
    shape = images.shape[-2:]
    fig, ax = plt.subplots(figsize=(0.6 * per_row * shape[1] / 28 + 1.6,
                                    0.6 * rows * shape[0] / 28 + 0.6 + 0.3 * bool(columns or xlabel)))
    ax.imshow(grid_array(images, per_row), interpolation="nearest")
    step = shape[0] + 2
    ax.set_yticks([2 + step * i + shape[0] / 2 for i in range(rows)], labels, fontsize=8)
    width = shape[1] + 2
    ax.set_xticks([2 + width * i + shape[1] / 2 for i in range(len(columns))], columns, fontsize=7)
    ax.set_xlabel(xlabel, fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    artifacts.save_figure(fig, path)


def epochs_shown(epochs, most: int = MAX_EPOCH_ROWS) -> list[int]:
    """The epochs of the reconstruction figure: all, or ``most`` evenly spaced ones, the first and last kept."""
    epochs = sorted(epochs)
    if len(epochs) <= most:
        return epochs
    return [epochs[i] for i in sorted({int(round(x)) for x in np.linspace(0, len(epochs) - 1, most)})]


def save_recon_over_epochs(rows: dict[int, torch.Tensor], originals: torch.Tensor, path) -> None:
    """Reconstructions of the same test images, one row per epoch (``rows``: epoch -> uint8 images; epoch 0 is
    the untrained network), the originals in the last row: Hilbers' Fig. 4."""
    epochs = epochs_shown(rows)
    images = torch.cat([rows[e].float() / 255 for e in epochs] + [originals.float()])
    labels = [f"epoch {e}" + (" (untrained)" if e == 0 else "") for e in epochs] + ["original"]
    _labelled_rows(images, len(originals), labels, path, title="reconstructions after n epochs")


def save_traversal(images: torch.Tensor, original: torch.Tensor, offsets, labels: list[str], path,
                   title: str) -> None:
    """(rows, len(offsets), C, H, W) decoded walks after a leading column that holds ``original`` in the first
    row (blank below), the shifts written under the columns."""
    blank = torch.ones_like(original)
    lead = torch.stack([original] + [blank] * (len(images) - 1))[:, None]
    grid = torch.cat([lead, images.to(lead)], 1)
    columns = ["original"] + [f"{o:+g}" if o else "0" for o in offsets]
    _labelled_rows(grid.flatten(0, 1), grid.shape[1], labels, path, title, columns=columns,
                   xlabel="shift added to the latent mean")


def save_rows(images: torch.Tensor, labels: list[str], path, title: str = "") -> None:
    """(rows, per_row, C, H, W) as one labelled grid."""
    _labelled_rows(images.flatten(0, 1), images.shape[1], labels, path, title)


def save_latent_scatter(means: torch.Tensor, classes: torch.Tensor, names, path, title: str = "") -> None:
    """The test set's 2-D posterior means, coloured by class."""
    plt = _plt()
    means, classes = means.float().numpy(), classes.numpy()
    lim = max(3.0, float(np.abs(means).max()) * 1.05)  # every point shown, the prior's +-3 at least
    fig, ax = plt.subplots(figsize=(7.5, 6))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    for c, name in enumerate(names):
        mask = classes == c
        if mask.any():
            ax.scatter(means[mask, 0], means[mask, 1], s=2, alpha=0.5, color=cmap(c % cmap.N), label=name)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    ax.set_aspect("equal")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=6, fontsize=8, frameon=False)
    if title:
        ax.set_title(title)
    artifacts.save_figure(fig, path)


def save_manifold(images: torch.Tensor, path, side: int) -> None:
    """Decoded images of a side x side latent grid, no gaps: the garments placed by similarity."""
    artifacts.save_grid(images, path, nrow=side, value_range=(0, 1), padding=0)


def save_arithmetic(panels: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]], path) -> None:
    """One panel per direction: top row a, b, then the items x; bottom row x + (a - b)."""
    plt = _plt()
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.1 * len(panels)), squeeze=False)
    for ax, (ab, originals, moved, title) in zip(axes[:, 0], panels):
        blank = torch.ones_like(ab)
        images = torch.cat([ab, originals, blank, moved])
        ax.imshow(grid_array(images, 2 + len(originals)), interpolation="nearest")
        width = ab.shape[-1] + 2
        ax.set_xticks([2 + width * i + ab.shape[-1] / 2 for i in range(2)], ["a", "b"], fontsize=8)
        height = ab.shape[-2] + 2
        ax.set_yticks([2 + height * i + ab.shape[-2] / 2 for i in range(2)], ["x", "x + (a - b)"], fontsize=8)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    artifacts.save_figure(fig, path)


def save_elbo_curves(history: list[dict], path) -> None:
    """Train and test per epoch: total loss, reconstruction, KL (per image, nats)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, key in zip(axes, ("loss", "recon", "kl")):
        for prefix, style in (("", "o-"), ("test_", "s--")):
            pts = [(r["epoch"], r[prefix + key]) for r in history if prefix + key in r and "epoch" in r]
            if pts:
                x, y = zip(*pts)
                ax.plot(x, y, style, ms=3, label="train" if not prefix else "test")
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle("per-image nats; loss = recon + beta * KL")
    fig.tight_layout()
    artifacts.save_figure(fig, path)


def make_padded_gif(frames, path, fps: float = 4.0):
    """A GIF of figures whose pixel sizes differ slightly (tight bounding boxes): pad all to the largest."""
    import imageio.v3 as iio

    images = [iio.imread(p)[..., :3] for p in frames]
    if not images:
        return None
    h, w = max(i.shape[0] for i in images), max(i.shape[1] for i in images)
    padded = [np.pad(i, ((0, h - i.shape[0]), (0, w - i.shape[1]), (0, 0)), constant_values=255) for i in images]
    return artifacts.write_bytes(path, iio.imwrite("<bytes>", padded, extension=".gif", duration=1000 / fps, loop=0))
