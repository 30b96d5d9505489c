"""Fashion-MNIST from the original IDX files, held on the training device as uint8 tensors.

Batches are index slices of a seeded per-epoch permutation, sharded across DDP ranks, so an epoch
covers the same images whatever the number of processes and no DataLoader is needed.
"""
from __future__ import annotations

import functools
import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
NUM_CLASSES = len(CLASSES)

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "FASHION_MNIST_DIR"
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801

HOW_TO_GET = (
    "Fashion-MNIST not found. Get it one of these ways:\n"
    "  - Debian/Ubuntu: sudo apt-get install dataset-fashion-mnist  (installs into /usr/share/datasets/fashion-mnist)\n"
    f"  - point --data-dir (or ${ENV_VAR}) at a folder holding the four IDX files "
    "(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz])\n"
    "  - with internet access: add --download (torchvision fetches it into ~/.cache/fashion-mnist)"
)


class DataError(RuntimeError):
    """The data is missing or malformed; the message says which file and how to fix it."""


def read_idx(path: str | os.PathLike, expect_magic: int | None = None) -> np.ndarray:
    """Parse one IDX file (raw or .gz) into a uint8 array, validating magic, dimensions and size."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except PermissionError as err:
        raise DataError(f"{path}: no permission to read it; fix its permissions (chmod a+r)") from err
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"{path}: cannot read ({err}); the file is corrupt or truncated, fetch it again") from err
    if len(raw) < 4:
        raise DataError(f"{path}: only {len(raw)} bytes, not an IDX file; fetch it again")
    magic = struct.unpack(">I", raw[:4])[0]
    if magic >> 16 != 0 or (magic >> 8) & 0xFF != 0x08:
        raise DataError(f"{path}: bad magic number 0x{magic:08x} (expected an unsigned-byte IDX file); "
                        "the file is corrupt or not Fashion-MNIST")
    if expect_magic is not None and magic != expect_magic:
        raise DataError(f"{path}: magic 0x{magic:08x}, expected 0x{expect_magic:08x} "
                        f"({'images' if expect_magic == IMAGE_MAGIC else 'labels'}); files swapped?")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header; fetch the file again")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError(f"{path}: header says {shape} = {expected} bytes of data, file has {len(raw) - header}; "
                        "the file is truncated or corrupt, fetch it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _has_all(folder: Path) -> bool:
    if folder.is_dir() and not os.access(folder, os.R_OK | os.X_OK):
        raise DataError(f"{folder}: no permission to read this folder; fix its permissions (chmod a+rx)")
    return all(_find_file(folder, stem) for pair in FILES.values() for stem in pair)


def torchvision_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fashion-mnist"


def find_data_dir(data_dir: str | os.PathLike | None = None, download: bool = False) -> Path:
    """Locate the IDX files: explicit dir, $FASHION_MNIST_DIR, Debian's package, torchvision's cache/download."""
    if data_dir:
        folder = Path(data_dir)
        if not _has_all(folder):
            raise DataError(f"--data-dir {folder}: the four Fashion-MNIST IDX files are not all there.\n" + HOW_TO_GET)
        return folder
    if os.environ.get(ENV_VAR):
        folder = Path(os.environ[ENV_VAR])
        if not _has_all(folder):
            raise DataError(f"${ENV_VAR}={folder}: the four Fashion-MNIST IDX files are not all there.\n" + HOW_TO_GET)
        return folder
    cache_raw = torchvision_cache() / "FashionMNIST" / "raw"
    for folder in (DEBIAN_DIR, cache_raw):
        if _has_all(folder):
            return folder
    if download:
        from torchvision.datasets import FashionMNIST

        for train in (True, False):
            FashionMNIST(str(torchvision_cache()), train=train, download=True)
        if _has_all(cache_raw):
            return cache_raw
    raise DataError(HOW_TO_GET)


def load_split(split: str, folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of one split, checked against each other."""
    images_stem, labels_stem = FILES[split]
    folder = Path(folder)
    images_path, labels_path = _find_file(folder, images_stem), _find_file(folder, labels_stem)
    if images_path is None or labels_path is None:
        raise DataError(f"{folder}: missing {images_stem} or {labels_stem}.\n" + HOW_TO_GET)
    images = read_idx(images_path, IMAGE_MAGIC)
    labels = read_idx(labels_path, LABEL_MAGIC)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{images_path}: shape {images.shape}, expected (N, 28, 28)")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path.name}")
    if labels.size and labels.max() >= NUM_CLASSES:
        raise DataError(f"{labels_path}: label {int(labels.max())} out of range 0..{NUM_CLASSES - 1}")
    return images, labels.astype(np.int64)


@dataclass
class Split:
    """One split on the device: images uint8 (N, C, H, W), labels (N,) or (N, K)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.images)

    def to(self, device) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))

    def head(self, n: int) -> "Split":
        return Split(self.images[:n], self.labels[:n]) if n else self


@dataclass
class Dataset:
    train: Split
    test: Split


def load_fashion(data_dir: str | os.PathLike | None = None, download: bool = False) -> Dataset:
    """Both splits as CPU tensors with a channel axis."""
    folder = find_data_dir(data_dir, download)
    return Dataset(*_load_folder(folder.resolve()))


@functools.lru_cache(maxsize=2)  # several jobs in one process (dry runs, tests) parse the files once
def _load_folder(folder: Path) -> tuple[Split, Split]:
    splits = {}
    for split in FILES:
        images, labels = load_split(split, folder)
        splits[split] = Split(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels))
    return splits["train"], splits["test"]


def epoch_batches(n: int, batch_size: int, epoch: int, seed: int, rank: int = 0, world: int = 1,
                  device="cpu", limit: int = 0):
    """Index tensors for this rank's share of each global batch of one epoch.

    ``batch_size`` is global: step i of any world size covers the same images as step i on one process.
    The last partial batch is dropped, as in the reference collection.
    """
    if batch_size % world:
        raise ValueError(f"batch_size {batch_size} is not divisible by the {world} processes; "
                         f"use a multiple of {world}")
    steps = n // batch_size
    if limit:
        steps = min(steps, limit)
    if steps == 0:
        raise ValueError(f"batch_size {batch_size} is larger than the {n} training images")
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=gen)[: steps * batch_size]
    per_rank = perm.view(steps, world, batch_size // world)[:, rank].to(device)
    return list(per_rank.unbind(0))


def to_tanh_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] in torch's default dtype (fp32 unless a test asks for fp64)."""
    return images.to(torch.get_default_dtype()).div_(127.5).sub_(1.0)


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [0, 1]."""
    return images.float().div_(255.0)
