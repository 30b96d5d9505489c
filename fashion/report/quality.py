"""Each job's quality numbers under the run's yardstick, from files only.

Generative jobs measure themselves (fashion/measure.py) and keep the numbers in their metrics.json under
the stamp of the shipped evaluator, so the report usually only reads them. It measures, with the same
:func:`fashion.measure.measure_folder`, only what no file holds under its stamp: runs older than the
evaluator, or another evaluator given with ``--classifier``. Nothing is rebuilt or trained here.
"""
from __future__ import annotations

from pathlib import Path

import torch

from fashion import artifacts, measure, runfolder, selection
from fashion.data import load_fashion
from fashion.measure import Stamp, Yardstick
from fashion.runfolder import JobFolder

FINAL_STATES = ("completed", "failed", "diverged", "cancelled", "interrupted")
"A job in one of these states writes nothing more: the report may add its numbers to its metrics.json."


class Unmeasured(Exception):
    """Why a row has no quality numbers; the message is shown in the report."""


class Quality:
    """The run's yardstick (the shipped evaluator, or ``classifier``: a classify job's model.pt) and the
    numbers each job has under it."""

    def __init__(self, run_dir: Path, found: list[JobFolder], classifier: str | Path | None = None, console=None):
        self.run_dir, self.found, self.console = Path(run_dir), found, console
        self.given = Path(classifier) if classifier else None
        self.data_dir = next((j.settings.get("data_dir") for j in found if j.settings.get("data_dir")), None)
        self.yardstick: Yardstick | None = None
        self.problem: str | None = None  # why nothing can be measured, once known
        device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            test = load_fashion(self.data_dir).test.images
            if self.given is not None:
                if not self.given.is_file():
                    raise Unmeasured(f"--classifier {self.given}: no such file (a model.pt saved by a classify job)")
                self.yardstick = Yardstick.classifier(self.given, test, device)
            else:
                self.yardstick = Yardstick.shipped(test, device)
        except Unmeasured as why:
            self.problem = str(why)
        except Exception as err:  # missing data, a damaged evaluator: say so, keep reporting
            self.problem = f"{type(err).__name__}: {err}"

    def evaluator_line(self) -> str:
        """One line for the report: what measured the samples, or why nothing did."""
        if self.problem:
            return f"nothing measured: {self.problem}"
        return self.yardstick.words()

    def measured(self, job: JobFolder) -> tuple[dict | None, dict | None]:
        """(the job's quality entry, its FID-curve entry) under the yardstick, measured now where its files
        hold none; either is None where the job has nothing of that kind."""
        if self.problem:
            raise Unmeasured(self.problem)
        done = job.status.get("epoch")
        quality = self._entry(job.metrics.get("quality"))
        curve = self._entry(job.metrics.get("fid_curve"))
        has_samples = job.state == "completed" and (job.path / runfolder.EVAL_FILE).exists()
        snapshots = {int(p.stem.rsplit("_", 1)[1]) for p in runfolder.snapshot_files(job.path)}
        stale = (has_samples and (quality is None or quality.get("epoch") != done)) or \
            (snapshots and not snapshots <= {p["epoch"] for p in (curve or {}).get("points", [])})
        if stale:
            measured = measure.measure_folder(job.path, self.yardstick, job.metrics)
            if job.state in FINAL_STATES:
                old = artifacts.read_json(job.path / runfolder.METRICS_FILE, {}) or {}
                artifacts.write_json(job.path / runfolder.METRICS_FILE, {**old, **measured})
            job.metrics.update(measured)
            self._say(f"measured {job.name} with {self.yardstick.name}")
            quality, curve = self._entry(measured["quality"]), self._entry(measured["fid_curve"])
        return (quality if has_samples else None), curve

    def _entry(self, section: dict | None) -> dict | None:
        """The entry of a metrics.json section measured by this yardstick (the most samples, if several)."""
        if not measure.is_stamped(section):
            return None
        mine = [e for e in section.values() if self.yardstick.measured(Stamp.of(e["stamp"]))]
        return max(mine, key=lambda e: e["stamp"]["fake"], default=None)

    def for_job(self, job: JobFolder) -> tuple[dict, Stamp]:
        """The job's metrics and their stamp, or Unmeasured saying why there are none."""
        if job.state != "completed":
            raise Unmeasured(_not_finished(job))
        if not (job.path / runfolder.EVAL_FILE).exists():
            raise Unmeasured(f"generates no images comparable with the test set (no {runfolder.EVAL_FILE}; "
                             "see its own metrics)")
        quality, _ = self.measured(job)
        return quality["values"], Stamp.of(quality["stamp"])

    def best_for_job(self, job: JobFolder) -> dict | None:
        """The best checkpoint's numbers of a completed job (fashion/selection.py): {"values", "stamp" (key),
        "epoch" (the generator's), "selection_fid"}, measured now where its files hold none under the yardstick;
        None for a job that chose no best checkpoint (no snapshots, or older than the choice)."""
        if self.problem or job.state != "completed" or not (job.metrics.get("selection") or {}).get("best"):
            return None
        done = job.status.get("epoch")
        entry = selection.best_entry(job.metrics.get("quality"), self.yardstick)
        if entry is None or entry.get("epoch") != done:
            quality = selection.measure_best(job.path, self.yardstick, job.metrics)
            if quality != job.metrics.get("quality"):
                old = artifacts.read_json(job.path / runfolder.METRICS_FILE, {}) or {}
                artifacts.write_json(job.path / runfolder.METRICS_FILE, {**old, "quality": quality})
                job.metrics["quality"] = quality
                self._say(f"measured {job.name}'s best checkpoint with {self.yardstick.name}")
            entry = selection.best_entry(quality, self.yardstick)
        if entry is None:
            return None
        return {"values": entry["values"], "stamp": Stamp.of(entry["stamp"]).key, "epoch": entry["checkpoint_epoch"],
                "selection_fid": entry.get("selection_fid")}

    def fid_curve(self, job: JobFolder) -> list[dict]:
        """FID of each of the job's training snapshots: [{"epoch", "fid", "samples"}]."""
        if self.problem or not runfolder.snapshot_files(job.path):
            return []
        _, curve = self.measured(job)
        return [{**p, "samples": curve["stamp"]["fake"]} for p in curve["points"]] if curve else []

    def references(self) -> tuple[dict[str, dict], Stamp]:
        """({row name: metrics} for real training images and uniform noise, their stamp)."""
        if self.problem:
            raise Unmeasured(self.problem)
        train = load_fashion(self.data_dir).train
        rows = self.yardstick.references(train.images, train.labels)
        return rows, self.yardstick.stamp(len(self.yardstick.real_images))

    def _say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, highlight=False)


def _not_finished(job: JobFolder) -> str:
    status = job.status
    if job.state == "failed":
        return f"failed: {status.get('error') or 'see its log'}"
    if job.state == "diverged":
        return f"diverged at epoch {status.get('epoch', '?')} ({status.get('reason', 'non-finite loss')})"
    if job.state == "running":
        step = f", step {status['step']}/{status['steps']}" if status.get("steps") else ""
        return (f"running (epoch {status.get('epoch', 0) + 1} of {status.get('epochs', '?')}{step}): "
                "measured once it completes")
    if job.state == "queued":
        return "queued: measured once it completes"
    if job.state == "unknown":
        return "no status.json: never started, or its folder was copied without it"
    return f"{job.state}: no final model to measure"
