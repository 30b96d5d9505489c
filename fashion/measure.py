"""The one yardstick: every quality number of the suite, measured in the features of one fixed network and
stamped with what it was measured under, so any two numbers with the same stamp compare.

A :class:`Yardstick` is a feature network (the shipped evaluator, or a classifier given with
``--classifier``) and the real set it measures against (the first 10,000 test images). A generative job
measures itself with it: each snapshot's FID as the snapshot is written, and every metric of its
evaluation samples before it says ``completed``. The report calls the same :func:`measure_folder` for
jobs that lack a number under its stamp (older runs, another ``--classifier``), and nothing else.

What depends on the yardstick alone (the real set's embedding and nearest-neighbour radii, the reference
rows) is computed once per machine and kept in a cache folder (``$FASHION_CACHE``, else
``~/.cache/fashion-suite``); the shipped evaluator's reference rows come with its metadata.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fashion import artifacts, metrics, runfolder
from fashion.data import to_unit_range

PROTOCOL = 1
"The metrics' definitions (fashion/metrics.py): numbers measured under another protocol never compare."
REAL_IMAGES = 10_000
REFERENCE_SPLIT = "test"
REAL_ROW, NOISE_ROW = "real: train vs test", "noise: uniform pixels"
CACHE_ENV = "FASHION_CACHE"
SEED = 0  # KID's subsets, IS's splits, the training images of the reference row, the noise images


@dataclass(frozen=True)
class Stamp:
    """What a quality number was measured under; numbers compare only under equal stamps."""

    evaluator: str
    "The feature network: the shipped evaluator's name, or 'classifier' for one given with --classifier."
    sha256: str
    "The first 12 hex digits of the network file's SHA-256."
    fake: int
    "Generated samples measured."
    real: int
    "Real images they were measured against."
    reference: str = REFERENCE_SPLIT
    "The split the real images come from (their first ``real`` images)."
    data: str = ""
    "The first 12 hex digits of the SHA-256 of those real images' pixels."
    protocol: int = PROTOCOL
    "The metrics' definitions (:data:`PROTOCOL`)."
    checkpoint: str = "final"
    "Which generator drew the samples: 'final' (the one the job ends with) or 'best' (fashion/selection.py)."
    selected_on: str = ""
    "Where the 'best' generator was chosen: 'train' (training images, never the test set); '' for 'final'."

    @property
    def key(self) -> str:
        """One string for the whole stamp: ``fashion-eval-v1@3f9a0c12b4e1 10000v10000 test:0a1b2c3d4e5f p1``,
        with `` best@train`` after it for the best checkpoint's numbers (a final's key is as it always was)."""
        key = (f"{self.evaluator}@{self.sha256} {self.fake}v{self.real} {self.reference}:{self.data} "
               f"p{self.protocol}")
        return key if self.checkpoint == "final" else f"{key} {self.checkpoint}@{self.selected_on}"

    def words(self) -> str:
        which = "" if self.checkpoint == "final" else f", {self.checkpoint} checkpoint selected on {self.selected_on}"
        return (f"{self.evaluator} ({self.sha256}), {self.fake} samples vs the first {self.real} "
                f"{self.reference} images{which}")

    @classmethod
    def of(cls, data: dict) -> "Stamp":
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "fashion-suite")


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Yardstick:
    """A feature network and the real images every sample set is measured against."""

    def __init__(self, network: nn.Module, name: str, sha256: str, real_images: torch.Tensor, device="cpu",
                 references: dict | None = None, origin: str = ""):
        self.network = network.to(device).eval()
        self.name, self.sha256, self.device, self.origin = name, sha256[:12], torch.device(device), origin
        self.real_images = real_images[:REAL_IMAGES]
        self.data = hashlib.sha256(self.real_images.cpu().contiguous().numpy().tobytes()).hexdigest()[:12]
        self.shipped_references = references or {}
        self._real: tuple[metrics.Embedding, torch.Tensor] | None = None

    @classmethod
    def shipped(cls, real_images: torch.Tensor, device="cpu") -> "Yardstick":
        """The evaluator that ships with the package (fashion/evaluator/); EvaluatorError if it is damaged."""
        from fashion.evaluator import load_evaluator

        network, info = load_evaluator("cpu")  # then moved: a DDP rank's device (cpu:0) is no map_location
        return cls(network, info["name"], info["sha256"], real_images, device, info.get("references"),
                   origin=f"the shipped evaluator, {info['test_accuracy']:.2%} test accuracy")

    @classmethod
    def classifier(cls, path, real_images: torch.Tensor, device="cpu") -> "Yardstick":
        """A classifier saved by a classify job (``model.pt``), given with ``--classifier``."""
        from fashion.classify.networks import load_classifier

        network, info = load_classifier(path, device)
        accuracy = info.get("test_accuracy")
        origin = f"--classifier {path}" + (f", {accuracy:.2%} test accuracy" if isinstance(accuracy, float) else "")
        return cls(network, "classifier", sha256_file(path), real_images, device, origin=origin)

    def stamp(self, fake: int) -> Stamp:
        return Stamp(self.name, self.sha256, fake, len(self.real_images), REFERENCE_SPLIT, self.data, PROTOCOL)

    def measured(self, stamp: Stamp) -> bool:
        """Whether ``stamp`` is this yardstick's, for any number of generated samples."""
        return dataclasses.replace(stamp, fake=0) == self.stamp(0)

    def words(self) -> str:
        return f"{self.name} ({self.sha256}; {self.origin}), against the first {len(self.real_images)} test images"

    # -- the real set, once per machine --------------------------------------------------------------
    def embed(self, images: torch.Tensor) -> metrics.Embedding:
        """Images (uint8, or floats in [0, 1]) as the network sees them, kept on its device."""
        images = to_unit_range(images) if images.dtype == torch.uint8 else images
        return metrics.embed(self.network, images, device=self.device)

    def real(self) -> tuple[metrics.Embedding, torch.Tensor]:
        """The real set's embedding and its nearest-neighbour radii (PRDC), from the cache or computed once."""
        if self._real is None:
            path = cache_dir() / f"real-{self.name}-{self.sha256}-{self.data}-{len(self.real_images)}-" \
                                 f"{self.device.type}.pt"
            cached = _read_cache(path)
            if cached is not None:
                real = metrics.Embedding(cached["features"].to(self.device), cached["logits"])
                radii = cached["radii"].to(self.device)
            else:
                real = self.embed(self.real_images)
                radii = metrics.nearest_neighbour_radii(real.features)
                _write_cache(path, {"features": real.features.cpu(), "logits": real.logits, "radii": radii.cpu()})
            self._real = real, radii
        return self._real

    # -- measuring -----------------------------------------------------------------------------------
    def measure(self, images: torch.Tensor, labels: torch.Tensor | None = None, label_kind: str = "class") -> dict:
        """Every metric of generated images against the real set: FID, KID, PRDC, IS and, with labels,
        conditional accuracy."""
        real, radii = self.real()
        return metrics.compare(real, self.embed(images), labels, label_kind, seed=SEED, real_radii=radii)

    def fid(self, images: torch.Tensor) -> float:
        return metrics.fid(self.real()[0], self.embed(images))

    def references(self, train_images: torch.Tensor, train_labels: torch.Tensor) -> dict:
        """{row: metrics} for real training images (the floor every model is measured against) and uniform
        noise; shipped with the evaluator, else measured once per machine."""
        stamp = self.stamp(len(self.real_images))
        if stamp.key in self.shipped_references:
            return self.shipped_references[stamp.key]
        path = cache_dir() / f"references-{stamp.key.replace(' ', '_').replace('/', '_')}.pt"
        cached = _read_cache(path)
        if cached is not None:
            return cached
        pick = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(SEED))[:stamp.fake]
        rows = {REAL_ROW: self.measure(train_images[pick], train_labels[pick]),
                NOISE_ROW: self.measure(metrics.uniform_noise(stamp.fake, SEED))}
        _write_cache(path, rows)
        return rows


def _read_cache(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # absent, half-written by a killed process, or from another torch: compute it again
        return None


def _write_cache(path: Path, obj) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    try:
        artifacts.write_bytes(path, buffer.getvalue())
    except artifacts.WriteError:  # a read-only home: measuring works, only slower next time
        pass


# -- one job folder ------------------------------------------------------------------------------------
def measure_folder(folder, yardstick: Yardstick, known: dict | None = None) -> dict:
    """Every quality number of a job folder under ``yardstick``, as metrics.json keeps them:
    ``{"quality": {stamp key: entry}, "fid_curve": {stamp key: entry}}``, the ``known`` ones (metrics.json's)
    included. What ``known`` holds under the same stamp for the same samples (the evaluation set of the same
    epoch, the snapshots of the same epochs) is kept as it is; the rest is measured.
    """
    known = known or {}
    quality = dict(known["quality"]) if is_stamped(known.get("quality")) else {}
    curves = dict(known["fid_curve"]) if is_stamped(known.get("fid_curve")) else {}
    samples = runfolder.read_eval_samples(folder)
    if samples is not None:
        if samples.images.shape[1] != 1:
            raise ValueError(f"{samples.images.shape[1]}-channel samples: the evaluator measures greyscale images")
        stamp = yardstick.stamp(len(samples.images))
        entry = quality.get(stamp.key)
        if not entry or entry.get("epoch") != samples.epoch:
            values = yardstick.measure(samples.images, samples.labels, samples.label_kind)
            quality[stamp.key] = {"stamp": dataclasses.asdict(stamp), "epoch": samples.epoch, "values": values}
    for path in runfolder.snapshot_files(folder):
        epoch, images = runfolder.read_snapshot(path)
        record_point(curves, yardstick, epoch, images)
    return {"quality": quality, "fid_curve": curves}


def record_point(curves: dict, yardstick: Yardstick, epoch: int, images: torch.Tensor) -> dict:
    """Measure one snapshot's FID into ``curves`` (metrics.json's ``fid_curve``) unless it holds that epoch
    already under the same stamp; returns ``curves``."""
    stamp = yardstick.stamp(len(images))
    entry = curves.setdefault(stamp.key, {"stamp": dataclasses.asdict(stamp), "points": []})
    if not any(p["epoch"] == epoch for p in entry["points"]):
        entry["points"] = sorted(entry["points"] + [{"epoch": epoch, "fid": yardstick.fid(images)}],
                                 key=lambda p: p["epoch"])
    return curves


def is_stamped(section) -> bool:
    """A metrics.json section in this module's layout (older runs kept unstamped numbers there)."""
    return isinstance(section, dict) and all(isinstance(v, dict) and "stamp" in v for v in section.values())
