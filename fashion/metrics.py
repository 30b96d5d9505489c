"""Sample quality measured in the feature space of a Fashion-MNIST classifier (fashion/measure.py says which).

Inception-v3 features mean little on 28x28 grey clothing, so FID, KID and precision/recall/density/
coverage use a Fashion-MNIST classifier's feature layer and the Inception-Score analogue uses its softmax.
Each image set is embedded once (:func:`embed`) and every metric reads that embedding; torchmetrics gets
the precomputed features through a pass-through "extractor" instead of re-running the classifier per metric.
The same functions give the run's references: real-vs-real (train vs test, the floor) and uniform noise.
Each set is whole on the one process that measures (a DDP job's main process), so no metric synchronises
over ranks (``sync_on_compute=False``): the other ranks are not measuring, and a gather would wait for them.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fashion.data import NUM_CLASSES

PRDC_K = 5
LABEL_KINDS = ("class", "code")


@dataclass
class Embedding:
    """One image set as the classifier sees it: penultimate features (N, D) and logits (N, 10)."""

    features: torch.Tensor
    logits: torch.Tensor

    def __len__(self) -> int:
        return len(self.features)


@torch.no_grad()
def embed(classifier: nn.Module, images: torch.Tensor, batch: int = 500, device=None) -> Embedding:
    """Run the classifier (eval mode) over images in [0, 1] shaped (N, 1, 28, 28); the features stay on
    ``device`` (default: the CPU), the logits go to the CPU in float64."""
    if images.dim() != 4 or images.shape[1:] != (1, 28, 28):
        raise ValueError(f"images of shape {tuple(images.shape)}: the classifier needs (N, 1, 28, 28) greyscale")
    if images.dtype == torch.uint8:
        raise ValueError("uint8 images: pass floats in [0, 1] (fashion.data.to_unit_range)")
    classifier.eval()
    where = next(classifier.parameters()).device
    features, logits = [], []
    for chunk in images.split(batch):
        f = classifier.features(chunk.to(where).float())
        features.append(f.float().to(device or "cpu"))
        logits.append(classifier.head(f).double().cpu())
    return Embedding(torch.cat(features), torch.cat(logits))


class _Precomputed(nn.Module):
    """torchmetrics' custom feature extractor for features we already have: passes them through.

    ``num_features`` stops torchmetrics from probing the module with a dummy 299x299 image.
    """

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@contextlib.contextmanager
def _seeded(seed: int):
    """KID's subsets and IS's splits draw from the global RNG: fix it so a metric is a pure function."""
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # torchmetrics warns that it buffers all features; buffering 10k x 256 floats is the point.
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        warnings.filterwarnings("ignore", message=r"std\(\): degrees of freedom")  # a single split has no std
        torch.manual_seed(seed)
        yield


def fid(real: Embedding, fake: Embedding) -> float:
    """Frechet distance between Gaussians fitted to the two feature sets (torchmetrics, float64)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=_Precomputed(real.features.shape[1]), sync_on_compute=False)
    metric.update(real.features, real=True)
    metric.update(fake.features, real=False)
    return max(0.0, float(metric.compute()))  # eigenvalue round-off can dip a hair below 0 for equal sets


def kid(real: Embedding, fake: Embedding, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Kernel (polynomial MMD) distance: mean and std over random subsets; unbiased, so ~0 for equal sets."""
    from torchmetrics.image.kid import KernelInceptionDistance

    size = min(subset_size, len(real), len(fake))
    if size == len(real) == len(fake):
        subsets = 1  # every "subset" would be both whole sets, reshuffled: the same value each time
    with _seeded(seed):
        metric = KernelInceptionDistance(feature=_Precomputed(real.features.shape[1]), subsets=subsets,
                                         subset_size=size, sync_on_compute=False)
        metric.update(real.features, real=True)
        metric.update(fake.features, real=False)
        mean, std = metric.compute()
    return float(mean), float(std)


def inception_score(fake: Embedding, splits: int = 10, seed: int = 0) -> tuple[float, float]:
    """exp(E KL(p(y|x) || p(y))) with the classifier's softmax: 1 (one class or uniform guesses) to 10."""
    from torchmetrics.image.inception import InceptionScore

    # normalize=False: with True torchmetrics would turn our logits into bytes.
    with _seeded(seed):
        metric = InceptionScore(feature=_Precomputed(NUM_CLASSES), splits=min(splits, len(fake)), normalize=False,
                                sync_on_compute=False)
        metric.update(fake.logits)
        mean, std = metric.compute()
    return float(mean), float(std)


def nearest_neighbour_radii(features: torch.Tensor, k: int = PRDC_K, chunk: int = 2048) -> torch.Tensor:
    """Each point's distance to its k-th nearest neighbour in the same set, itself not counted (prdc's radii)."""
    return torch.cat([torch.cdist(part, features).topk(k + 1, dim=1, largest=False).values[:, -1]
                      for part in features.split(chunk)])


def prdc(real: Embedding, fake: Embedding, k: int = PRDC_K, real_radii: torch.Tensor | None = None,
         chunk: int = 2048) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al. 2020) with k nearest neighbours.

    prdc's ``compute_prdc`` formulas on distances from torch (chunks of ``chunk`` real points, on the features'
    device): prdc's own sklearn distances took 35 s for 10k x 10k on 2 CPU cores, these 4 s. ``real_radii``
    (:func:`nearest_neighbour_radii` of the real set) are computed once per real set by the caller.
    """
    real_f, fake_f = real.features.float(), fake.features.to(real.features.device).float()
    real_radii = nearest_neighbour_radii(real_f, k) if real_radii is None else real_radii.to(real_f.device)
    fake_radii = nearest_neighbour_radii(fake_f, k)
    inside = torch.zeros(len(fake_f), device=real_f.device)  # how many real balls hold each fake point
    recalled, covered = [], []
    for part, radii in zip(real_f.split(chunk), real_radii.split(chunk)):
        distances = torch.cdist(part, fake_f)
        within = distances < radii[:, None]
        inside += within.sum(0)
        recalled.append((distances < fake_radii[None, :]).any(1))
        covered.append(within.any(1))  # the nearest fake lies inside the real point's ball
    return {"precision": float((inside > 0).double().mean()), "recall": float(torch.cat(recalled).double().mean()),
            "density": float(inside.double().mean() / k), "coverage": float(torch.cat(covered).double().mean())}


def conditional_accuracy(fake: Embedding, labels: torch.Tensor, kind: str = "class") -> dict:
    """How often the classifier sees the class that was asked for.

    ``kind="code"``: the labels are an unsupervised categorical code (infoGAN) that matches the classes
    only up to a permutation, so codes are first mapped one-to-one to the classes that agree most.
    """
    from scipy.optimize import linear_sum_assignment

    if kind not in LABEL_KINDS:
        raise ValueError(f"label kind {kind!r}: use one of {', '.join(LABEL_KINDS)}")
    labels = labels.long().cpu()
    predicted = fake.logits.argmax(1)
    if kind == "class":
        return {"cond_acc": float((predicted == labels).double().mean())}
    counts = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    counts.index_put_((labels, predicted), torch.ones_like(labels), accumulate=True)
    codes, classes = linear_sum_assignment(counts.numpy(), maximize=True)
    return {"cond_acc": float(counts[codes, classes].sum()) / len(labels),
            "code_to_class": [int(c) for c in classes[np.argsort(codes)]]}


def compare(real: Embedding, fake: Embedding, labels: torch.Tensor | None = None, label_kind: str = "class",
            seed: int = 0, real_radii: torch.Tensor | None = None) -> dict:
    """Every metric of a generated set against the real set, as a flat dict of plain floats."""
    out = {"fid": fid(real, fake)}
    out["kid"], out["kid_std"] = kid(real, fake, seed=seed)
    out.update(prdc(real, fake, real_radii=real_radii))
    out["is"], out["is_std"] = inception_score(fake, seed=seed)
    if labels is not None:
        out.update(conditional_accuracy(fake, labels, label_kind))
    return out


def uniform_noise(n: int, seed: int = 0) -> torch.Tensor:
    """The 'noise' reference: n images of independent U[0, 1) pixels."""
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
