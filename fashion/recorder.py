"""What a job leaves in its folder, written by the main process alone.

The training loop (fashion/training.py) tells its recorder what happened: the job started or resumed, an epoch
ended, a checkpoint is due, training finished. On the main process that is a :class:`FolderRecorder`, which
writes status, config, history, pictures, snapshots and their FID, checkpoints, trackers, the generator and
the best snapshot's (chosen on training images, fashion/selection.py), the evaluation samples and their
measurement into the job folder, through the background writer so the next epoch starts at once. On every
other DDP rank it is the base :class:`Recorder`, which does nothing: the loop itself has no rank branches.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import time
from pathlib import Path

import torch
from torch import nn

from fashion import artifacts, generator, measure, runfolder, selection
from fashion.checkpoint import save_checkpoint, state_of
from fashion.data import CLASSES
from fashion.runtime import environment, git_sha
from fashion.task import Noise, Task, TrainConfig
from fashion.trackers import Trackers
from fashion.writer import StatusTicker, Writer

SNAPSHOT_SEED, EVAL_SEED = 777, 919
PLOT_EVERY_S = 60.0


class Recorder:
    """A job's record on a rank that writes nothing (every rank but the main one)."""

    def __init__(self, job_dir: Path, job_name: str, config: TrainConfig, acc):
        self.job_dir, self.job_name, self.config, self.acc = Path(job_dir), job_name, config, acc

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, kind, error, trace) -> None:
        pass

    def measure_against(self, task_class: type[Task], real_images: torch.Tensor, train_images: torch.Tensor) -> None:
        """A job that draws samples measures them against ``real_images`` (the whole test split), and chooses
        its best snapshot on ``train_images`` (the whole training split; fashion/selection.py)."""

    def start(self, task: Task, state: dict | None, changes: dict, steps_per_epoch: int) -> None:
        """Training (re)starts after the epochs ``state`` holds; ``changes``: what a resume changed."""

    def tick(self, **fields) -> None:
        """Progress within an epoch."""

    def epoch(self, task: Task, row: dict, steps: list[dict], diverged: list[str]) -> None:
        """An epoch ended with summary ``row`` and per-step ``steps``; ``diverged``: its non-finite terms."""

    def checkpoint(self, task: Task) -> None:
        """The epoch just recorded is one to resume after."""

    def finish(self, task: Task, outcome: str) -> dict:
        """Training ended ("completed" or "diverged"); returns the job's metrics."""
        return {}


class FolderRecorder(Recorder):
    """The main process's record: every file of the job folder, which it holds the lock of."""

    def __init__(self, job_dir: Path, job_name: str, config: TrainConfig, acc):
        super().__init__(job_dir, job_name, config, acc)
        self.lock = artifacts.JobLock(self.job_dir)
        self.writer = Writer()
        self.ticker = StatusTicker(self.job_dir, self.writer.submit)
        self.trackers: Trackers | None = None
        self.yardstick: measure.Yardstick | None = None
        self.selection: selection.Selection | None = None
        self.measured: dict = {}  # metrics.json's quality numbers so far (a resumed job keeps its FID curve)
        self.epochs: list[dict] = []
        self.steps: list[dict] = []
        self.env = environment(acc)
        self.last_plot = time.monotonic()

    def __enter__(self) -> "FolderRecorder":
        self.lock.acquire()
        artifacts.remove_stale_temps(self.job_dir)  # left by killed writes; no live writer: we hold the lock
        return self

    def __exit__(self, kind, error, trace) -> None:
        try:
            self.writer.close()  # a crash still leaves the last finished epoch's checkpoint on disk
            if self.trackers is not None:
                self.trackers.close()
            if kind is not None and issubclass(kind, KeyboardInterrupt):
                done = artifacts.read_status(self.job_dir).get("epoch", 0)
                artifacts.write_status(self.job_dir, "interrupted", interrupted=time.time(),
                                       reason=f"stopped by a signal during epoch {done + 1}; re-launch the same "
                                              f"command to resume after epoch {done}")
        finally:
            self.lock.release()

    def measure_against(self, task_class, real_images, train_images):
        if task_class.measured():
            self.yardstick = measure.Yardstick.shipped(real_images, self.acc.device)
            if task_class.generative() and self.config.snapshot_every:
                self.selection = selection.Selection(self.yardstick, train_images)

    def start(self, task, state, changes, steps_per_epoch):
        if state is not None:
            self.epochs, self.steps = list(state["history"]), list(state["steps"])
            self.acc.print(f"[{self.job_name}] resuming after epoch {state['epoch']} from {self.job_dir}")
        try:
            resumes = (artifacts.read_json(self.job_dir / runfolder.CONFIG_FILE, {}) or {}).get("resumes", [])
            self.measured = {k: v for k, v in (artifacts.read_json(self.job_dir / runfolder.METRICS_FILE, {})
                                               or {}).items() if k in ("quality", "fid_curve")}
        except ValueError:
            resumes = []
        if self.selection is not None:
            self._resume_selection(task, state)
        if changes:  # what a resume changed, kept for the record
            resumes.append({"after_epoch": len(self.epochs), "time": time.time(),
                            "changed": {k: {"was": old, "now": new} for k, (old, new) in changes.items()}})
        nets = {name: task.unwrap(name) for name in task.nets}
        artifacts.write_json(self.job_dir / runfolder.CONFIG_FILE, {
            "job": self.job_name, "config": dataclasses.asdict(self.config), "git": git_sha(), **self.env,
            "params": {name: parameter_count(net) for name, net in nets.items()},
            "networks": {name: network_summary(net) for name, net in nets.items()}, "resumes": resumes})
        self.ticker(force=True, epoch=len(self.epochs), epochs=self.config.epochs, step=0, steps=steps_per_epoch,
                    started=time.time(), pid=os.getpid(), **self._speed(), **self.env)
        self.trackers = Trackers(self.acc, dataclasses.asdict(self.config), self.job_name, self.job_dir)

    def tick(self, **fields):
        self.ticker(**fields)

    def epoch(self, task, row, steps, diverged):
        epoch = row["epoch"]
        if not diverged:
            row.update(task.end_epoch(epoch, self.job_dir))
            snapshot = save_snapshot(task, self.config, self.job_dir, epoch, self.writer.submit)
            if snapshot is not None and self.yardstick is not None:  # FID over epochs, point by point
                measure.record_point(self.measured.setdefault("fid_curve", {}), self.yardstick, epoch, snapshot)
                if self.selection is not None:  # the best snapshot so far, on training images
                    self.selection.score(epoch, snapshot)
                    self.measured["selection"] = self.selection.record
                self.writer.submit(_update_metrics, self.job_dir, copy.deepcopy(self.measured))
        self.steps += steps
        self.epochs.append(row)
        # losses.png is a progress picture (history.csv has every number each epoch): redrawing it every epoch
        # costs short epochs more than it tells, so it is redrawn once a minute and at the end.
        plot = bool(diverged) or epoch == self.config.epochs or time.monotonic() - self.last_plot >= PLOT_EVERY_S
        self.last_plot = time.monotonic() if plot else self.last_plot
        self.writer.submit(_write_history, self.job_dir, self.job_name, list(self.epochs), list(self.steps), plot)
        self.trackers.log_epoch(self.writer.submit, epoch, row, steps)
        self.acc.print(_epoch_line(self.job_name, row, self.config.epochs))
        if diverged:
            self.writer.submit(artifacts.write_status, self.job_dir, "diverged", epoch=epoch,
                               reason=f"non-finite {', '.join(diverged)}")

    def checkpoint(self, task):
        epoch = len(self.epochs)
        state = state_of(task, epoch, self.epochs, self.steps)
        if self.selection is not None:
            state["selection"] = copy.deepcopy(self.selection.record)
        self.writer.submit(save_checkpoint, self.job_dir, state)
        if self.selection is not None and self.selection.best_epoch() == epoch:
            self._keep_best(task)  # after the checkpoint that records it: see _resume_selection
        self.ticker(force=True, epoch=epoch, step=0, **self._speed())

    def finish(self, task, outcome):
        # The writer thread is still writing the last checkpoint and history: what needs only the nets and
        # the epoch grids is made meanwhile; task.finish() reads history.csv, so it waits for the writes.
        frames = runfolder.sample_frames(self.job_dir)
        artifacts.make_gif(frames, self.job_dir / "samples.gif")
        artifacts.make_epoch_strip(frames, self.job_dir / "strip.png", title=self.job_name)
        last = self.epochs[-1] if self.epochs else {}
        metrics = {"job": self.job_name, "state": outcome, "epochs": len(self.epochs), **self._speed(),
                   "final": {k: v for k, v in last.items() if k not in ("epoch", "iteration")}, **self.env}
        if outcome == "completed":
            from fashion.generator import export

            export(task, self.job_dir, self.job_name)  # before "completed": a completed job has its generator
            save_eval_samples(task, self.config, self.job_dir, len(self.epochs))
            self._draw_best(task)
            self.writer.drain()
            if self.yardstick is not None:  # before "completed": a completed job has its numbers
                t0 = time.perf_counter()
                metrics.update(measure.measure_folder(self.job_dir, self.yardstick, self.measured),
                               measure_seconds=round(time.perf_counter() - t0, 2))
                if self.selection is not None:
                    t0 = time.perf_counter()
                    metrics["quality"] = selection.measure_best(self.job_dir, self.yardstick,
                                                                {**metrics, "selection": self.selection.record})
                    self.selection.seconds += time.perf_counter() - t0
                    metrics.update(selection=self.selection.record,
                                   selection_seconds=round(self.selection.seconds, 2))
            metrics.update(task.finish(self.job_dir))
        self.writer.drain()  # every file above is on disk by now
        _update_metrics(self.job_dir, metrics)
        if outcome == "completed":
            artifacts.write_status(self.job_dir, "completed", epoch=len(self.epochs), finished=time.time())
        return metrics

    # -- the best checkpoint (fashion/selection.py) ------------------------------------------------------
    def _resume_selection(self, task, state) -> None:
        """A fresh start forgets an earlier attempt's best generator; a resume continues its checkpoint's
        selection. The best generator is written after the checkpoint of its epoch, so when that checkpoint is
        the one resumed from, the write may have been lost: it is made again from the restored weights."""
        if state is None:
            selection.forget(self.job_dir)
        else:
            self.selection.restore(state.get("selection"))
            if self.selection.best_epoch() == state["epoch"]:
                self._keep_best(task)
        self.measured["selection"] = self.selection.record

    def _keep_best(self, task) -> None:
        """best_generator.pt from the nets as they are (copied here, written in the background)."""
        t0 = time.perf_counter()
        spec = generator.stored(task, self.job_name, selected={**self.selection.record["best"],
                                                               "on": selection.SPLIT})
        if spec is not None:
            self.writer.submit(generator.write, spec, self.job_dir / selection.BEST_FILE)
        self.selection.seconds += time.perf_counter() - t0

    def _draw_best(self, task) -> None:
        """The best generator's evaluation samples (best_eval_samples.pt), from the same noise as the final's;
        none when the final generator is the best (measure_best then takes the final's)."""
        best = self.selection.best_epoch() if self.selection is not None else None
        if best is None or best == len(self.epochs):
            selection.forget_samples(self.job_dir)
            return
        t0 = time.perf_counter()
        self.writer.drain()  # best_generator.pt is on disk
        weights = torch.load(self.job_dir / selection.BEST_FILE, map_location="cpu", weights_only=True)["state_dict"]
        net = task.generator_spec()["net"]
        final = {k: v.detach().clone() for k, v in net.state_dict().items()}
        net.load_state_dict(weights)
        try:
            save_eval_samples(task, self.config, self.job_dir, len(self.epochs), selection.BEST_EVAL_FILE)
        finally:
            net.load_state_dict(final)
        self.selection.seconds += time.perf_counter() - t0

    def _speed(self) -> dict:
        return {"seconds_per_epoch": _mean(self.epochs, "seconds"), "images_per_s": _mean(self.epochs, "images_per_s")}


def recorder(job_dir, job_name: str, config: TrainConfig, acc) -> Recorder:
    """The job's recorder on this process: the main process writes, the others record nothing."""
    return (FolderRecorder if acc.is_main_process else Recorder)(Path(job_dir), job_name, config, acc)


# -- the files ----------------------------------------------------------------------------------------
def save_snapshot(task: Task, config: TrainConfig, job_dir: Path, epoch: int, submit=None) -> torch.Tensor | None:
    """Every ``snapshot_every`` epochs and at the last: samples of the model as it is now (uint8, returned),
    for the FID-over-epochs curve. Its own fixed noise: training is untouched. ``submit`` writes the file in
    the background (the images are on the CPU by then)."""
    every = config.snapshot_every
    if not every or (epoch % every and epoch != config.epochs):
        return None
    with torch.no_grad():
        drawn = task.metric_samples(config.snapshot_samples, Noise(task.device, config.seed + SNAPSHOT_SEED))
    if drawn is None:
        return None
    images = runfolder.to_uint8(drawn[0])
    (submit or (lambda fn, *args: fn(*args)))(runfolder.write_snapshot, job_dir, epoch, images)
    return images


def save_eval_samples(task: Task, config: TrainConfig, job_dir: Path, epoch: int,
                      file: str = runfolder.EVAL_FILE) -> Path | None:
    """The finished model's evaluation set (``eval_samples``, seeded): what it and the report measure."""
    with torch.no_grad():
        drawn = task.metric_samples(config.eval_samples, Noise(task.device, config.seed + EVAL_SEED))
    if drawn is None:
        return None
    kind = task.label_kind
    names = task.label_names or (CLASSES if kind == "class" else [f"code {i}" for i in range(10)])
    return runfolder.write_eval_samples(job_dir, runfolder.EvalSamples(drawn[0], drawn[1], list(names), kind,
                                                                       config.seed, epoch), file)


def _update_metrics(job_dir: Path, fields: dict) -> None:
    old = artifacts.read_json(job_dir / runfolder.METRICS_FILE, {}) or {}
    artifacts.write_json(job_dir / runfolder.METRICS_FILE, {**old, **fields})


def _write_history(job_dir, job_name, epoch_rows, step_rows, plot: bool = True):
    artifacts.write_csv(job_dir / runfolder.HISTORY_FILE, epoch_rows)
    artifacts.write_csv(job_dir / runfolder.LOSSES_FILE, step_rows)
    if plot:
        artifacts.plot_losses(step_rows, epoch_rows, job_dir / "losses.png", title=job_name)


def _mean(rows, key):
    vals = [r[key] for r in rows if key in r]
    return round(sum(vals) / len(vals), 3) if vals else None


def _epoch_line(job_name, row, epochs):
    losses = "  ".join(f"{k} {v:.4g}" for k, v in row.items()
                       if k not in runfolder.BOOKKEEPING and isinstance(v, float))
    return (f"[{job_name}] epoch {row['epoch']}/{epochs}  {losses}  "
            f"{row['seconds']:.1f}s  {row['images_per_s']:.0f} img/s")


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def network_summary(net: nn.Module) -> str:
    """One line: class, parameters and the weighted layers in order, e.g. "Generator: 6,640,193 params,
    FC 1024 -> FC 6272 -> deconv 64 -> deconv 1"."""
    kinds = ((nn.ConvTranspose2d, "deconv", "out_channels"), (nn.Conv2d, "conv", "out_channels"),
             (nn.Linear, "FC", "out_features"))
    layers = [next(f"{word} {getattr(m, size)}" for cls, word, size in kinds if isinstance(m, cls))
              for m in net.modules() if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d, nn.Linear))]
    return f"{type(net).__name__}: {parameter_count(net):,} params, " + " -> ".join(layers)
