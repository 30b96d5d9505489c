"""The best checkpoint, chosen without the test set.

At every snapshot (``snapshot_every`` epochs, and the last) a generative job measures the snapshot's FID
against a fixed selection set: :data:`IMAGES` training images drawn with :data:`SEED`, the same for every
job, in its yardstick's features. The generator of the lowest such FID so far is kept as
``best_generator.pt`` (generator.pt's format). It is written after the checkpoint of its epoch, and the
checkpoint holds the selection's record, so a resume keeps both; a kill between the two writes is repaired at
the resume from the checkpoint's own weights. When the job completes, that generator draws the evaluation
samples (``best_eval_samples.pt``, from the same seeded noise as the final generator's) and they are
measured on the test set under the final numbers' stamp with ``checkpoint="best"``, ``selected_on="train"``.
The test set never chooses: it measures the one generator the training images chose.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path

import torch

from fashion import runfolder
from fashion.measure import Stamp, Yardstick

IMAGES = 10_000
"Training images in the selection set."
SEED = 0
"Draws the selection set from the training split: one set for every job."
SPLIT = "train"
BEST_FILE = "best_generator.pt"
BEST_EVAL_FILE = "best_eval_samples.pt"


class Selection:
    """A job's choice of its best snapshot: the selection set's FID of each one, and the lowest so far."""

    def __init__(self, yardstick: Yardstick, train_images: torch.Tensor):
        pick = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(SEED))[:IMAGES]
        self.ruler = Yardstick(yardstick.network, yardstick.name, yardstick.sha256, train_images[pick.sort().values],
                               yardstick.device)
        self.record = {"split": SPLIT, "images": len(pick), "seed": SEED, "data": self.ruler.data,
                       "evaluator": f"{yardstick.name}@{yardstick.sha256}", "points": [], "best": None}
        self.seconds = 0.0
        "Time the selection took on the training thread (its FIDs, the best generator's copy and measurement)."

    def restore(self, record: dict | None) -> None:
        """Continue a resumed job's selection (its checkpoint's record), if it chose on this same set."""
        same = ("split", "images", "seed", "data", "evaluator")
        if record and all(record.get(k) == self.record[k] for k in same):
            self.record = copy.deepcopy(record)

    def score(self, epoch: int, images: torch.Tensor) -> bool:
        """The snapshot of ``epoch`` against the selection set; True when it is the best so far."""
        t0 = time.perf_counter()
        fid = self.ruler.fid(images)
        self.seconds += time.perf_counter() - t0
        points = [p for p in self.record["points"] if p["epoch"] != epoch] + [{"epoch": epoch, "fid": fid}]
        self.record["points"] = sorted(points, key=lambda p: p["epoch"])
        best = self.record["best"]
        if best is None or fid < best["fid"]:
            self.record["best"] = {"epoch": epoch, "fid": fid, "samples": len(images)}
            return True
        return False

    def best_epoch(self) -> int | None:
        return self.record["best"]["epoch"] if self.record["best"] else None


def best_stamp(stamp: Stamp) -> Stamp:
    """The stamp of the best checkpoint's numbers beside a final's."""
    return dataclasses.replace(stamp, checkpoint="best", selected_on=SPLIT)


def best_entry(quality: dict | None, yardstick: Yardstick) -> dict | None:
    """The best checkpoint's entry of a metrics.json ``quality`` section measured by ``yardstick`` (the most
    samples, if several), or None."""
    mine = []
    for entry in (quality or {}).values():
        stamp = Stamp.of(entry.get("stamp", {}))
        if stamp.checkpoint == "best" and yardstick.measured(dataclasses.replace(stamp, checkpoint="final",
                                                                                 selected_on="")):
            mine.append(entry)
    return max(mine, key=lambda e: e["stamp"]["fake"], default=None)


def measure_best(folder, yardstick: Yardstick, known: dict) -> dict:
    """metrics.json's ``quality`` with the best checkpoint's numbers under ``yardstick`` added (``known``:
    metrics.json, with its ``selection`` record and the final numbers). Its samples are best_eval_samples.pt,
    or the final's when the final generator is the best (the same generator and noise: the same numbers)."""
    quality = dict(known.get("quality") or {})
    best = (known.get("selection") or {}).get("best")
    if not best:
        return quality
    samples = runfolder.read_eval_samples(folder, BEST_EVAL_FILE)
    same_as_final = samples is None
    if same_as_final:
        samples = runfolder.read_eval_samples(folder)
        if samples is None or samples.epoch != best["epoch"]:
            return quality  # the best's samples are missing: no numbers rather than the wrong ones
    final = yardstick.stamp(len(samples.images))
    stamp = best_stamp(final)
    entry = quality.get(stamp.key)
    if entry and entry.get("epoch") == samples.epoch and entry.get("checkpoint_epoch") == best["epoch"]:
        return quality
    known_final = quality.get(final.key) or {}
    if same_as_final and known_final.get("epoch") == samples.epoch:
        values = known_final["values"]
    else:
        values = yardstick.measure(samples.images, samples.labels, samples.label_kind)
    quality[stamp.key] = {"stamp": dataclasses.asdict(stamp), "epoch": samples.epoch,
                          "checkpoint_epoch": best["epoch"], "selection_fid": best["fid"], "values": values}
    return quality


def forget(folder) -> None:
    """A job starting afresh leaves no best generator of an earlier attempt behind."""
    Path(folder, BEST_FILE).unlink(missing_ok=True)
    forget_samples(folder)


def forget_samples(folder) -> None:
    """No best evaluation samples: the final generator is the best (or there is none)."""
    Path(folder, BEST_EVAL_FILE).unlink(missing_ok=True)
