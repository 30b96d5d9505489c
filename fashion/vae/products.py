"""The conditional VAE on colour product photos laid out as the public "fashion product images (small)"
set: ``styles.csv`` (id, gender, masterCategory, subCategory, articleType, baseColour, season, year,
usage, productDisplayName) and ``images/<id>.jpg``.

The condition is 25-dimensional, as in the write-up: one-hot of the 20 most common subCategories plus
one-hot of the 5 genders. Rows with a missing field, an unknown gender or a rarer subCategory, and
missing or unreadable images are counted, reported and skipped; they never stop the job.
"""
from __future__ import annotations

import csv
import functools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fashion.data import Dataset, DataError, Split
from fashion.task import ConfigError, Task
from fashion.vae.conditional import ConditionalVAE
from fashion.vae.task import VAEConfig

GENDERS = ("Men", "Women", "Boys", "Girls", "Unisex")
USED_FIELDS = ("id", "gender", "subCategory")
LAYOUT = "a folder with styles.csv and images/<id>.jpg (the 'fashion product images (small)' layout)"


@dataclass
class ProductVAEConfig(VAEConfig):
    """Settings of the product-photo data on top of the VAE's."""

    photo_dir: str = ""
    "Folder with styles.csv and images/<id>.jpg; the job is skipped without one. (data_dir stays Fashion-MNIST's.)"

    image_size: tuple[int, ...] = (80, 60)
    "(height, width) of the photos; images of another size are resized."
    top_subcategories: int = 20
    "Condition on the N most common subCategories; products of rarer ones are skipped."
    test_every: int = 20
    ("Every N-th product (by id) of each subCategory, starting with its first, is held out for testing "
     "(20: the write-up's 19:1 split).")

    def validate(self) -> None:
        super().validate()
        if len(self.image_size) != 2 or min(self.image_size) < 4:
            raise ConfigError(f"image_size={self.image_size}: give height,width, e.g. image_size=80,60")
        if self.top_subcategories < 1 or self.test_every < 2:
            raise ConfigError(f"top_subcategories={self.top_subcategories}, test_every={self.test_every}: "
                              "need at least 1 and 2")


@dataclass
class ProductCatalogue:
    """What the reader kept: both splits, the subCategory names of the condition, and what it skipped."""

    train: Split
    test: Split
    subcategories: tuple[str, ...]
    rows: int
    skipped: dict[str, int] = field(default_factory=dict)


def product_data_missing(config: ProductVAEConfig) -> str | None:
    """Why the product job cannot run with this config (for ``Job.unavailable``), or None."""
    if not config.photo_dir:
        return f"needs --set vae/product-cond:photo_dir=<{LAYOUT}>"
    folder = Path(config.photo_dir)
    if not (folder / "styles.csv").is_file() or not (folder / "images").is_dir():
        return f"photo_dir={folder} is not {LAYOUT}"
    return None


def load_products(config: ProductVAEConfig) -> ProductCatalogue:
    """Read (once per process) the product photos and their condition vectors."""
    reason = product_data_missing(config)
    if reason:
        raise DataError(f"vae/product-cond {reason}")
    return _read(Path(config.photo_dir).resolve(), tuple(config.image_size), config.top_subcategories,
                 config.test_every)


@functools.lru_cache(maxsize=2)
def _read(folder: Path, size: tuple[int, int], top: int, test_every: int) -> ProductCatalogue:
    skipped: Counter = Counter()
    records, seen = [], set()
    with open(folder / "styles.csv", newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        missing_columns = [c for c in USED_FIELDS if c not in header]
        if missing_columns:
            raise DataError(f"{folder / 'styles.csv'}: no column {', '.join(missing_columns)}; the header must "
                            f"name at least {', '.join(USED_FIELDS)}")
        for row in reader:
            # A display name with commas splits into extra fields at the end; the fields we use come first.
            if len(row) < len(header):
                skipped["malformed row"] += 1
                continue
            record = {k: row[header.index(k)].strip() for k in USED_FIELDS}
            if not all(record.values()):
                skipped["missing id, gender or subCategory"] += 1
            elif not record["id"].isdigit() or record["id"] in seen:
                skipped["bad or duplicate id"] += 1
            elif record["gender"] not in GENDERS:
                skipped["unknown gender"] += 1
            else:
                seen.add(record["id"])
                records.append(record)
    rows = len(records) + sum(skipped.values())
    counts = Counter(r["subCategory"] for r in records)
    subcategories = tuple(sorted(counts, key=lambda s: (-counts[s], s))[:top])
    images, labels, is_test, seen_of = [], [], [], Counter()
    for record in sorted(records, key=lambda r: int(r["id"])):
        if record["subCategory"] not in subcategories:
            skipped[f"subCategory outside the top {top}"] += 1
            continue
        image = _read_image(folder / "images" / f"{record['id']}.jpg", size, skipped)
        if image is None:
            continue
        condition = np.zeros(top + len(GENDERS), np.float32)
        condition[subcategories.index(record["subCategory"])] = 1
        condition[top + GENDERS.index(record["gender"])] = 1
        images.append(image)
        labels.append(condition)
        # Every N-th product of each subCategory, its first included, so every class has test images.
        is_test.append(seen_of[record["subCategory"]] % test_every == 0)
        seen_of[record["subCategory"]] += 1
    if len(images) < 2 * test_every:
        raise DataError(f"{folder}: only {len(images)} usable products (skipped: {dict(skipped)}); "
                        f"need at least {2 * test_every}. Check styles.csv and images/")
    images_t = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    labels_t = torch.from_numpy(np.stack(labels))
    is_test = torch.tensor(is_test)
    catalogue = ProductCatalogue(Split(images_t[~is_test], labels_t[~is_test]), Split(images_t[is_test], labels_t[is_test]),
                                 subcategories, rows, dict(skipped))
    print(f"[product data] {folder}: {rows} rows in styles.csv; kept {len(images_t)} products "
          f"({len(catalogue.train)} train, {len(catalogue.test)} test); skipped {sum(skipped.values())}: "
          + (", ".join(f"{n} {why}" for why, n in sorted(skipped.items())) or "none"), flush=True)
    return catalogue


def _read_image(path: Path, size: tuple[int, int], skipped: Counter) -> np.ndarray | None:
    """(H, W, 3) uint8, or None (counted in ``skipped``) when the file is missing or unreadable."""
    from PIL import Image

    if not path.is_file():
        skipped["missing image"] += 1
        return None
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError):  # truncated, not an image, corrupt
        skipped["unreadable image"] += 1
        return None


class ProductVAE(ConditionalVAE):
    """The conditional VAE on product photos: rows of the class grid are subCategories."""

    config_class = ProductVAEConfig

    @classmethod
    def load_data(cls, config):
        catalogue = load_products(config)
        return Dataset(catalogue.train, catalogue.test)

    def __init__(self, config: ProductVAEConfig, accelerator, data):
        self.catalogue = load_products(config)  # cached: the same read that load_data made
        self.class_names = self.catalogue.subcategories
        self.condition_dim = config.top_subcategories + len(GENDERS)
        super().__init__(config, accelerator, data)

    def classes_of(self, labels):
        return labels[:, : self.config.top_subcategories].argmax(1)

    def condition(self, images01, labels):
        return labels.float()

    def conditions_for_grid(self):
        """Per subCategory, the condition of its first training product (so a real gender goes with it)."""
        labels = self.data.train.labels
        classes = self.classes_of(labels)
        firsts = [int((classes == c).nonzero()[0]) for c in range(len(self.class_names)) if (classes == c).any()]
        return labels[firsts].float()

    # Colour 80x60 photos are not comparable with the Fashion-MNIST classifier's features; keeping the base
    # method tells the report so without loading the photos.
    metric_samples = Task.metric_samples

    def finish(self, out):
        numbers = super().finish(out)
        numbers["data"] = {"rows": self.catalogue.rows, "train": len(self.catalogue.train),
                           "test": len(self.catalogue.test), "skipped": self.catalogue.skipped,
                           "subcategories": list(self.class_names)}
        return numbers
