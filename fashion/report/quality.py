"""Quality numbers for a run, from files only: the feature classifier's model.pt, the real test set, and
each finished generative job's ``eval_samples.pt`` and snapshots. Nothing is rebuilt or trained here.

Each result is cached beside what it was computed from: the source of the metric code and the SHA-256 of
every input file (samples, classifier, data). Changing a metric's code or any input measures again, so a
new column can never be missing from cached rows; an unchanged run re-aggregates fast and identically.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch

from fashion import artifacts, metrics, runfolder
from fashion.classify import networks
from fashion.classify.networks import CLASSIFIER_JOB, MODEL_FILE, load_classifier
from fashion.data import find_data_dir, load_fashion, to_unit_range
from fashion.runfolder import REPORT_DIR, JobFolder

REFERENCES_FILE = "references.json"
REAL_ROW, NOISE_ROW = "real: train vs test", "noise: uniform pixels"
# The code a cached number depends on: the metrics, the classifier network, and this module.
METRIC_SOURCES = [Path(metrics.__file__), Path(networks.__file__), Path(__file__)]


class Unmeasured(Exception):
    """Why a row has no quality numbers; the message is shown in the report."""


class Quality:
    """The run's feature classifier and real test set, loaded on first use, and the metrics they give."""

    def __init__(self, run_dir: Path, found: list[JobFolder], n_samples: int = 10_000, seed: int = 0,
                 classifier: str | Path | None = None, console=None):
        if n_samples < 2:
            raise ValueError(f"n_samples={n_samples}: FID needs at least 2 samples (10000 is standard)")
        self.run_dir, self.found, self.n, self.seed, self.console = Path(run_dir), found, n_samples, seed, console
        self.given = Path(classifier) if classifier else None
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.data_dir = next((j.settings.get("data_dir") for j in found if j.settings.get("data_dir")), None)
        self._classifier = None
        self._real = None
        self.classifier_path: Path | None = None
        self.classifier_info: dict = {}
        self.problem: str | None = None  # why nothing can be measured, once known
        try:
            self.classifier_path = self._locate_classifier()
            self._classifier, self.classifier_info = load_classifier(self.classifier_path, self.device)
            self.inputs = {"code": code_fingerprint(),
                           "classifier": {"path": self._shown(self.classifier_path),
                                          "sha256": sha256(self.classifier_path)[:16]},
                           "data": data_fingerprint(find_data_dir(self.data_dir)),
                           "n_samples": self.n, "seed": self.seed}
        except Unmeasured as why:
            self.problem = str(why)
        except Exception as err:  # missing data, unreadable model: say so, keep reporting
            self.problem = f"no feature classifier: {type(err).__name__}: {err}"

    # -- the feature classifier -------------------------------------------------------------------
    def _locate_classifier(self) -> Path:
        if self.given is not None:
            if not self.given.is_file():
                raise Unmeasured(f"--classifier {self.given}: no such file (a {MODEL_FILE} saved by {CLASSIFIER_JOB})")
            return self.given
        own = next((j for j in self.found if j.name == CLASSIFIER_JOB), None)
        if own is not None and own.state == "completed" and (own.path / MODEL_FILE).exists():
            return own.path / MODEL_FILE
        if own is not None and own.state in ("queued", "running"):
            raise Unmeasured(f"waiting for {CLASSIFIER_JOB} ({own.state}), whose features the metrics use; "
                             "aggregate again once it completes")
        why = f"{CLASSIFIER_JOB} {own.state} in this run" if own is not None else f"no {CLASSIFIER_JOB} in this run"
        raise Unmeasured(f"{why}, so no feature classifier for FID/KID/IS: run `python launch.py {CLASSIFIER_JOB} "
                         f"--run {self.run_dir.name}` and aggregate again, or aggregate with --classifier PATH")

    def _shown(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.run_dir.resolve()).as_posix()
        except ValueError:
            return str(path)

    def describe(self) -> str:
        """One line for the report: which classifier measured the samples, or why none did."""
        if self.problem:
            return self.problem
        info = ", ".join(f"{k} {_short(v)}" for k, v in sorted(self.classifier_info.items())
                         if isinstance(v, (int, float, str)))
        origin = "given with --classifier" if self.given is not None else "this run's"
        return (f"features of {self._shown(self.classifier_path)} ({origin}{'; ' + info if info else ''}), "
                f"up to {self.n} samples per model")

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
        cached = artifacts.read_json(path, {}) or {}
        if cached.get("computed_from") == self.inputs:
            return {name: cached["rows"][name] for name in (REAL_ROW, NOISE_ROW)}  # JSON sorted the keys
        train = load_fashion(self.data_dir).train
        pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.seed))[: self.n]
        self._say(f"measuring the references: {len(pick)} training images and {self.n} noise images")
        train_embedding = metrics.embed(self._classifier, to_unit_range(train.images[pick]))
        noise = metrics.embed(self._classifier, metrics.uniform_noise(self.n, self.seed))
        rows = {REAL_ROW: metrics.compare(self.real(), train_embedding, train.labels[pick], seed=self.seed),
                NOISE_ROW: metrics.compare(self.real(), noise, seed=self.seed)}
        artifacts.write_json(path, {"computed_from": self.inputs, "rows": rows})
        return rows

    def for_job(self, job: JobFolder) -> dict:
        """The job's metrics from its eval_samples.pt (cached in its metrics.json), or Unmeasured saying why none."""
        if job.state != "completed":
            raise Unmeasured(_not_finished(job))
        sample_file = job.path / runfolder.EVAL_FILE
        if not sample_file.exists():
            raise Unmeasured(f"generates no images comparable with the test set (no {runfolder.EVAL_FILE}; "
                             "see its own metrics)")
        if self.problem:
            raise Unmeasured(self.problem)
        source = {**self.inputs, "samples": sha256(sample_file)[:16]}
        cached = job.metrics.get("quality") or {}
        if cached.get("computed_from") == source:
            return {k: v for k, v in cached.items() if k != "computed_from"}

        t0 = time.perf_counter()
        samples = runfolder.read_eval_samples(job.path)
        if samples.images.shape[1] != 1:
            raise Unmeasured(f"{samples.images.shape[1]}-channel samples: the classifier measures greyscale images")
        images = to_unit_range(samples.images[: self.n])
        labels = None if samples.labels is None else samples.labels[: self.n]
        values = metrics.compare(self.real(), metrics.embed(self._classifier, images), labels, samples.label_kind,
                                 seed=self.seed)
        self._remember(job, "quality", {"computed_from": source, **values})
        self._say(f"measured {job.name}: FID {values['fid']:.2f} on {len(images)} samples "
                  f"({time.perf_counter() - t0:.0f}s)")
        return values

    def fid_curve(self, job: JobFolder) -> list[dict]:
        """FID of each of the job's training snapshots against the test set: [{"epoch", "fid"}], cached."""
        files = runfolder.snapshot_files(job.path)
        if not files or self.problem:
            return []
        source = {**self.inputs, "snapshots": [[f.name, sha256(f)[:16]] for f in files]}
        cached = job.metrics.get("fid_curve") or {}
        if cached.get("computed_from") == source:
            return cached["points"]
        points = []
        for path in files:
            epoch, images = runfolder.read_snapshot(path)
            points.append({"epoch": epoch, "samples": len(images),
                           "fid": metrics.fid(self.real(), metrics.embed(self._classifier, to_unit_range(images)))})
        self._remember(job, "fid_curve", {"computed_from": source, "points": points})
        return points

    def _remember(self, job: JobFolder, key: str, value: dict) -> None:
        old = artifacts.read_json(job.path / runfolder.METRICS_FILE, {}) or {}
        artifacts.write_json(job.path / runfolder.METRICS_FILE, {**old, key: value})

    def _say(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text)


def code_fingerprint() -> str:
    """SHA-256 of the metric code's source: editing a metric invalidates every cached number."""
    digest = hashlib.sha256()
    for path in METRIC_SOURCES:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


def data_fingerprint(folder: Path) -> str:
    """SHA-256 over the Fashion-MNIST files the references and the real set come from."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*-ubyte*")):
        digest.update(path.name.encode() + bytes.fromhex(sha256(path)))
    return digest.hexdigest()[:16]


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


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
