"""Quality numbers for a run: find (or train) the feature classifier, embed the real test set once, then
measure every finished generative job and the run's two references (real-vs-real floor, uniform noise).

Each result is cached beside what it was computed from (checkpoint size and mtime, classifier hash,
sample count, seed), in the job's metrics.json and in ``report/references.json``: re-aggregating an
unchanged run is fast and writes the same numbers.
"""
from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path

import torch

from fashion import artifacts, metrics
from fashion.classifier_net import CLASSIFIER_JOB, MODEL_FILE, load_classifier
from fashion.data import find_data_dir, load_fashion, to_unit_range
from fashion.report.collect import REPORT_DIR, JobFolder
from fashion.training import SNAPSHOT_DIR, Noise, Task, fit, restore_task

VERSION = 1  # bump when a metric's definition changes, to invalidate every cache
REFERENCES_FILE = "references.json"
FALLBACK_DIR = f"{REPORT_DIR}/classifier"
# Enough for ~85% test accuracy in a few CPU minutes; the FGSM analysis on fewer images to match.
FALLBACK_BUDGET = {"epochs": 2, "limit_batches": 150, "fgsm_images": 1000, "train_eval_images": 2000}
REAL_ROW, NOISE_ROW = "real: train vs test", "noise: uniform pixels"


class Unmeasured(Exception):
    """Why a row has no quality numbers; the message is shown in the report."""


class Quality:
    """The run's feature classifier and real test set, loaded on first use, and the metrics they give."""

    def __init__(self, run_dir: Path, found: list[JobFolder], n_samples: int = 10_000, seed: int = 0,
                 train_classifier: bool = True, classifier_budget: dict | None = None, console=None):
        if n_samples < 2:
            raise ValueError(f"n_samples={n_samples}: FID needs at least 2 samples (10000 is standard)")
        self.run_dir, self.found, self.n, self.seed = Path(run_dir), found, n_samples, seed
        self.train_classifier = train_classifier
        self.classifier_budget = classifier_budget or FALLBACK_BUDGET
        self.console = console
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.data_dir = next((j.config.get("config", {}).get("data_dir") for j in found
                              if j.config.get("config", {}).get("data_dir")), None)
        self._classifier = None
        self._real = None
        self.classifier_path: Path | None = None
        self.classifier_info: dict = {}
        self.problem: str | None = None  # why nothing can be measured, once known
        try:
            self.classifier_path = self._locate_classifier()
            self._classifier, self.classifier_info = load_classifier(self.classifier_path, self.device)
            self.classifier_id = {"path": self.classifier_path.relative_to(self.run_dir).as_posix(),
                                  "sha256": _sha256(self.classifier_path)[:16]}
            self.data_id = str(find_data_dir(self.data_dir).resolve())
        except Unmeasured as why:
            self.problem = str(why)
        except Exception as err:  # missing data, unreadable model, a failing fallback: say so, keep reporting
            self.problem = f"no feature classifier: {type(err).__name__}: {err}"

    # -- the feature classifier -------------------------------------------------------------------
    def _locate_classifier(self) -> Path:
        own = next((j for j in self.found if j.name == CLASSIFIER_JOB), None)
        if own is not None and own.state == "completed" and (own.path / MODEL_FILE).exists():
            return own.path / MODEL_FILE
        if own is not None and own.state in ("queued", "running"):
            raise Unmeasured(f"waiting for {CLASSIFIER_JOB} ({own.state}), whose features the metrics use; "
                             "aggregate again once it completes")
        why = (f"{CLASSIFIER_JOB} {own.state} in this run" if own is not None
               else f"no {CLASSIFIER_JOB} in this run")
        fallback = self.run_dir / FALLBACK_DIR
        if artifacts.read_status(fallback).get("state") == "completed" and (fallback / MODEL_FILE).exists():
            return fallback / MODEL_FILE
        if not self.train_classifier:
            raise Unmeasured(f"{why}, so no feature classifier for FID/KID/IS: run `python launch.py "
                             f"{CLASSIFIER_JOB} --run {self.run_dir.name}` and aggregate again")
        return self._train_fallback(why, fallback)

    def _train_fallback(self, why: str, folder: Path) -> Path:
        import jobs

        entry = jobs.CATALOGUE.get(CLASSIFIER_JOB)
        if entry is None:
            raise Unmeasured(f"{why}, and {CLASSIFIER_JOB} is not in the catalogue to train one")
        fields = {f.name for f in dataclasses.fields(entry.config_class)}
        config = dataclasses.replace(entry.make_config(), seed=self.seed, data_dir=self.data_dir or "",
                                     **{k: v for k, v in self.classifier_budget.items() if k in fields})
        budget = ", ".join(f"{k}={v}" for k, v in self.classifier_budget.items())
        self._say(f"[yellow]{why}: training a small seeded {CLASSIFIER_JOB} ({budget}) into {folder} "
                  "as the metrics' feature extractor[/]")
        fit(entry.task, config, folder, CLASSIFIER_JOB)
        if not (folder / MODEL_FILE).exists():
            raise Unmeasured(f"{why}; the fallback {CLASSIFIER_JOB} in {folder} saved no {MODEL_FILE}")
        return folder / MODEL_FILE

    def describe(self) -> str:
        """One line for the report: which classifier measured the samples, or why none did."""
        if self.problem:
            return self.problem
        rel = self.classifier_path.relative_to(self.run_dir).as_posix()
        info = ", ".join(f"{k} {_short(v)}" for k, v in sorted(self.classifier_info.items())
                         if isinstance(v, (int, float, str)))
        origin = (f"trained by the aggregator, as the run has no completed {CLASSIFIER_JOB}"
                  if rel.startswith(REPORT_DIR) else "this run's")
        return f"features of {rel} ({origin}{'; ' + info if info else ''}), {self.n} samples per model"

    # -- real data ------------------------------------------------------------------------------
    def real(self) -> metrics.Embedding:
        """The test set's first n images, embedded once per aggregation."""
        if self._real is None:
            test = load_fashion(self.data_dir).test
            self._say(f"embedding {min(self.n, len(test))} test images")
            self._real = metrics.embed(self._classifier, to_unit_range(test.images[: self.n]))
        return self._real

    # -- the rows' numbers ----------------------------------------------------------------------
    def references(self) -> dict[str, dict]:
        """{row name: metrics} for the floor (train vs test) and the noise reference, cached per run."""
        if self.problem:
            raise Unmeasured(self.problem)
        path = self.run_dir / REPORT_DIR / REFERENCES_FILE
        source = self._source()
        cached = artifacts.read_json(path, {}) or {}
        if cached.get("computed_from") == source:
            return {name: cached["rows"][name] for name in (REAL_ROW, NOISE_ROW)}  # JSON sorted the keys
        train = load_fashion(self.data_dir).train
        pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.seed))[: self.n]
        self._say(f"measuring the references: {len(pick)} training images and {self.n} noise images")
        train_embedding = metrics.embed(self._classifier, to_unit_range(train.images[pick]))
        rows = {REAL_ROW: metrics.compare(self.real(), train_embedding, train.labels[pick], seed=self.seed),
                NOISE_ROW: metrics.compare(self.real(), metrics.embed(self._classifier,
                                                                      metrics.uniform_noise(self.n, self.seed)),
                                           seed=self.seed)}
        artifacts.write_json(path, {"computed_from": source, "rows": rows})
        return rows

    def for_job(self, job: JobFolder) -> dict:
        """The job's metrics (cached in its metrics.json), or Unmeasured saying why there are none."""
        import jobs

        entry = jobs.find(job.name)  # seeds (gan/gan.seed1) rebuild as their model
        if entry is None:
            raise Unmeasured("not in the catalogue, so its model cannot be rebuilt")
        if entry.task.metric_samples is Task.metric_samples:
            raise Unmeasured("generates no images to compare with the test set (see its own metrics)")
        if job.state != "completed":
            raise Unmeasured(_not_finished(job))
        if self.problem:
            raise Unmeasured(self.problem)
        checkpoint = job.path / "checkpoint.pt"
        if not checkpoint.exists():
            raise Unmeasured("no checkpoint.pt to sample from")
        stat = checkpoint.stat()
        source = {**self._source(), "checkpoint": {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}}
        cached = job.metrics.get("quality") or {}
        if cached.get("computed_from") == source:
            return {k: v for k, v in cached.items() if k != "computed_from"}

        t0 = time.perf_counter()
        config = entry.make_config(job.config.get("config", {}))
        task = restore_task(entry.task, config, job.path, device=self.device)
        drawn = task.metric_samples(self.n, Noise(task.device, self.seed))
        if drawn is None:
            raise Unmeasured("its task returned no samples comparable with the test set")
        images, labels = drawn
        if images.shape[1] != 1:
            raise Unmeasured(f"{images.shape[1]}-channel samples: the classifier measures greyscale images")
        values = metrics.compare(self.real(), metrics.embed(self._classifier, images.clamp(0, 1)), labels,
                                 getattr(entry.task, "label_kind", "class"), seed=self.seed)
        del task
        old = artifacts.read_json(job.path / "metrics.json", {}) or {}
        artifacts.write_json(job.path / "metrics.json", {**old, "quality": {"computed_from": source, **values}})
        self._say(f"measured {job.name}: FID {values['fid']:.2f} ({time.perf_counter() - t0:.0f}s)")
        return values

    def fid_curve(self, job: JobFolder) -> list[dict]:
        """FID of each of the job's training snapshots against the test set: [{"epoch", "fid"}], cached."""
        files = sorted((job.path / SNAPSHOT_DIR).glob("epoch_*.pt"))
        if not files or self.problem:
            return []
        source = {**self._source(), "snapshots": [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]}
        cached = job.metrics.get("fid_curve") or {}
        if cached.get("computed_from") == source:
            return cached["points"]
        points = []
        for path in files:
            snapshot = torch.load(path, map_location="cpu", weights_only=True)
            images = to_unit_range(snapshot["images"])
            points.append({"epoch": int(snapshot["epoch"]), "samples": len(images),
                           "fid": metrics.fid(self.real(), metrics.embed(self._classifier, images))})
        old = artifacts.read_json(job.path / "metrics.json", {}) or {}
        artifacts.write_json(job.path / "metrics.json", {**old, "fid_curve": {"computed_from": source, "points": points}})
        return points

    def _source(self) -> dict:
        return {"version": VERSION, "classifier": self.classifier_id, "data": self.data_id,
                "n_samples": self.n, "seed": self.seed}

    def _say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text)


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
