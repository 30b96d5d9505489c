"""The one training loop every job runs, on HuggingFace accelerate.

A job is a :class:`Task`: it builds its networks and optimisers, defines one training step that returns
named loss terms, and draws its pictures. The loop owns everything else: devices and DDP, mixed precision,
seeded batches, on-device loss accumulation (one host sync per epoch), divergence, status, checkpoints,
resume, history, loss plots and the GIF.
"""
from __future__ import annotations

import copy
import ctypes
import dataclasses
import inspect
import math
import os
import platform
import socket
import subprocess
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fashion import artifacts, measure, runfolder
from fashion.checkpoint import ChangedSettings, changed_settings, load_checkpoint, refusal, save_checkpoint
from fashion.data import CLASSES, Dataset, epoch_batches, load_fashion
from fashion.trackers import Trackers, tracker_problem

PRECISIONS = ("auto", "no", "bf16", "fp16")
SNAPSHOT_SEED, EVAL_SEED = 777, 919
PLOT_EVERY_S = 60.0


class ConfigError(ValueError):
    """An invalid config value; the message names the key and what is allowed."""


@dataclass
class TrainConfig:
    """Settings every job shares; each family's config extends it."""

    epochs: int = 50
    "Passes over the training split."
    batch_size: int = 64
    "Global batch: split evenly over all processes, so results do not depend on the GPU count."
    seed: int = 0
    "Seeds weights, batch order and every noise draw."
    precision: str = "auto"
    "auto (the family's default: fp32 for GANs, bf16 for the rest on a GPU that has it) | no | bf16 | fp16."
    limit_batches: int = 0
    "Stop every epoch after this many steps (0: the whole split)."
    train_subset: int = 0
    "Train on the first N images only (0: all)."
    test_subset: int = 0
    "Evaluate on the first N test images only (0: all)."
    data_dir: str = ""
    "Folder with the IDX files (default: $FASHION_MNIST_DIR, Debian's package, torchvision's cache)."
    download: bool = False
    "Let torchvision download Fashion-MNIST when it is found nowhere."
    cpu: bool = False
    "Train on the CPU even when a GPU is present."
    snapshot_every: int = 5
    "Every N epochs and at the last, keep generated samples for the report's FID-over-epochs curve (0: off)."
    snapshot_samples: int = 2000
    "Images per snapshot (uint8, 0.8 KB each)."
    eval_samples: int = 10000
    "Generated images kept at the end (eval_samples.pt) for the report's quality metrics."
    log_with: str = ""
    "Experiment trackers, comma-separated accelerate names (tensorboard, wandb, mlflow, aim, ...); '' is off."
    fast: bool = True
    ("The fast path: fused optimiser steps, backward only into the stepped parameters and, on the CPU, an "
     "allocator that keeps freed buffers (README, Speed).")

    def validate(self) -> None:
        for f in dataclasses.fields(self):  # every family's float settings: inf/nan would train garbage
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{f.name}={value}: must be a finite number")
            if isinstance(value, float) and f.name.split("_")[0] == "lr" and not value > 0:
                raise ConfigError(f"{f.name}={value}: a learning rate must be positive")
        for name in ("snapshot_samples", "eval_samples"):
            if getattr(self, name) < 2:
                raise ConfigError(f"{name}={getattr(self, name)}: FID needs at least 2 (thousands are usual)")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision={self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}: must be at least 1")
        for name in ("limit_batches", "train_subset", "test_subset", "snapshot_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)}: must be 0 (off) or positive")
        if problem := tracker_problem(self.trackers()):
            raise ConfigError(problem)

    def trackers(self) -> list[str]:
        return [t.strip() for t in self.log_with.split(",") if t.strip()]


class Noise:
    """Random draws on the training device from a generator seeded by (seed, epoch, rank).

    Drawing from a known generator instead of the global RNG makes a resumed run bitwise equal to an
    uninterrupted one: resuming at epoch e recreates exactly the generator epoch e would have used.
    """

    def __init__(self, device, seed: int):
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    @classmethod
    def for_epoch(cls, device, seed: int, epoch: int, rank: int) -> "Noise":
        return cls(device, (seed * 1_000_003 + epoch) * 1024 + rank + 1)

    def uniform(self, *shape, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
        u = torch.rand(*shape, device=self.device, generator=self.generator)
        return u if (low, high) == (0.0, 1.0) else u * (high - low) + low

    def normal(self, *shape) -> torch.Tensor:
        return torch.randn(*shape, device=self.device, generator=self.generator)

    def randint(self, high: int, *shape) -> torch.Tensor:
        return torch.randint(high, shape, device=self.device, generator=self.generator)


class Task:
    """One trainable experiment. Subclasses fill ``nets`` and ``opts`` in ``__init__``."""

    config_class = TrainConfig
    auto_precision = "bf16"
    "What precision=auto means on a GPU with bf16 (fp32 elsewhere)."
    global_batchnorm = False
    "Under DDP, BatchNorm statistics cover the global batch (fashion/batchnorm.py), not each rank's share."

    def __init__(self, config: TrainConfig, accelerator, data: Dataset):
        self.config, self.acc, self.data = config, accelerator, data
        self.nets: dict[str, nn.Module] = {}
        self.opts: dict[str, torch.optim.Optimizer] = {}

    @classmethod
    def load_data(cls, config: TrainConfig) -> Dataset:
        return load_fashion(config.data_dir or None, config.download)

    @property
    def device(self) -> torch.device:
        return self.acc.device

    def train_step(self, images: torch.Tensor, labels: torch.Tensor, noise: Noise) -> dict[str, torch.Tensor]:
        """One optimisation step on this rank's share of a batch; returns detached named loss terms."""
        raise NotImplementedError

    def optimizer(self, cls, params, **settings) -> torch.optim.Optimizer:
        """``cls(params, **settings)``, stepping with its fused kernel (one per step instead of several per
        tensor) when the config's ``fast`` is on and ``cls`` has one (Adam, AdamW, SGD; not RMSprop)."""
        if self.config.fast and "fused" in inspect.signature(cls).parameters:
            settings["fused"] = True
        return cls(params, **settings)

    def optimize(self, opt: str, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Sum the terms, one backward, one step. The only place any job calls backward or step.

        A single backward per optimiser keeps DDP ranks in sync (two backwards through one DDP module
        per step can silently desynchronise them). With the fast path the backward computes gradients for
        this optimiser's parameters only: a GAN's G step then skips D's weight gradients, which the
        reference computes and throws away; every gradient that is stepped stays bitwise the same.
        """
        optimizer = self.opts[opt]
        optimizer.zero_grad(set_to_none=True)
        total = sum(terms.values())
        self.acc.backward(total, **({"inputs": self.stepped_parameters(opt)} if self.config.fast else {}))
        optimizer.step()
        return {name: value.detach().float() for name, value in terms.items()}

    def stepped_parameters(self, opt: str) -> list[torch.Tensor]:
        """The trainable parameters optimiser ``opt`` updates."""
        return [p for group in self.opts[opt].param_groups for p in group["params"] if p.requires_grad]

    def unwrap(self, name: str) -> nn.Module:
        return self.acc.unwrap_model(self.nets[name])

    def after_epoch(self, epoch: int, means: dict[str, float]) -> dict[str, float]:
        """Every rank, before the checkpoint: react to the epoch's means (reduced over ranks); returns values
        to log."""
        return {}

    def end_epoch(self, epoch: int, out: Path) -> dict[str, float]:
        """Main process only: pictures for this epoch and any test-set numbers to log."""
        return {}

    def finish(self, out: Path) -> dict:
        """Main process only: final analyses; returns extra metrics for metrics.json."""
        return {}

    @classmethod
    def generative(cls) -> bool:
        """Whether the task draws samples comparable with Fashion-MNIST (it overrides metric_samples): such a
        job keeps evaluation samples and snapshots and measures them with the shipped evaluator."""
        return cls.metric_samples is not Task.metric_samples

    def metric_samples(self, n: int, noise: Noise) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """For quality metrics: n generated images in [0, 1] (N, C, 28, 28) and the classes they were asked
        to show (None if unconditional); None for tasks that generate nothing comparable."""
        return None

    def generator_spec(self) -> dict | None:
        """What ``generator.pt`` keeps (see :mod:`fashion.generator`): {"net": the generating module, "kind",
        "kwargs" that rebuild it, "latent" parts, "conditional", "classes", ...}; None: nothing to draw."""
        return None

    def state_dict(self) -> dict:
        """Task state beyond networks and optimisers (e.g. BEGAN's k)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def resolve_precision(precision: str, cuda: bool, auto: str = "bf16", bf16_supported: bool | None = None) -> str:
    """accelerate's mixed_precision for a config's ``precision``; ``auto`` is the task family's default."""
    if precision == "auto":
        if bf16_supported is None:
            bf16_supported = cuda and torch.cuda.is_bf16_supported()
        return auto if auto == "bf16" and cuda and bf16_supported else "no"
    if precision == "fp16" and not cuda:
        raise ConfigError("precision=fp16 needs a GPU (on a CPU it would silently run fp32); use bf16 or no")
    return precision


def make_accelerator(config: TrainConfig, auto_precision: str = "bf16", project_dir=None):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import DistributedDataParallelKwargs

    if not torch.distributed.is_initialized():
        # Several jobs can run in one process (dry runs, tests): start each from a clean accelerate state.
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    cuda = torch.cuda.is_available() and not config.cpu
    if config.fast and not cuda:
        keep_freed_memory()
    # torch suggests forward_sync_buffers, which accelerate's kwargs cannot pass yet; the behaviour we want
    # (no per-forward buffer broadcast) is what broadcast_buffers=False gives.
    warnings.filterwarnings("ignore", message="`broadcast_buffers` is deprecated")
    # broadcast_buffers=False: GANs run D twice before one backward; re-broadcasting BatchNorm buffers
    # between those forwards breaks autograd on CUDA. Every rank still trains identical weights.
    ddp = DistributedDataParallelKwargs(broadcast_buffers=False)
    trackers = config.trackers() if project_dir is not None else []
    return Accelerator(cpu=not cuda, mixed_precision=resolve_precision(config.precision, cuda, auto_precision),
                       kwargs_handlers=[ddp], log_with=trackers or None,
                       project_dir=str(project_dir) if trackers else None)


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed blocks of up to 32 MiB in the heap for the whole process; False where
    the C library is not glibc.

    A training step frees and reallocates the same gradient and activation buffers (the largest GAN layer's
    gradient is 25 MiB). By default glibc serves such blocks with mmap and hands them back to the kernel on
    free, so every step pays for munmap and for the kernel zeroing fresh pages: on the 2-core machine of
    README's Speed, keeping them made gan/gan's CPU step 15% faster. The cost is that the process keeps
    its peak heap.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL("libc.so.6")
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))


def import_in_background(module: str) -> None:
    """Start importing ``module`` on a daemon thread, so that its import overlaps the caller's own start-up.

    torch's optimisers import ``torch._dynamo`` when they are built (over a second on a 2-core machine):
    begun before the accelerator, the lock and the data, the import runs while they do.
    """
    import importlib
    import sys
    import threading

    if module not in sys.modules:
        threading.Thread(target=importlib.import_module, args=(module,), daemon=True,
                         name=f"import-{module}").start()


def prepare_task(task: Task, acc) -> Task:
    """Put the task's nets and optimisers on ``acc`` (device, DDP); under DDP, BatchNorm first covers the
    global batch where the task asks for it."""
    if task.global_batchnorm and acc.num_processes > 1:
        from fashion.batchnorm import convert_global_batchnorm
        task.nets = {n: convert_global_batchnorm(net) for n, net in task.nets.items()}
    slots = [(task.nets, n) for n in task.nets] + [(task.opts, n) for n in task.opts]
    prepared = acc.prepare(*(owner[n] for owner, n in slots))
    prepared = prepared if isinstance(prepared, (list, tuple)) else [prepared]
    for (owner, name), obj in zip(slots, prepared):
        owner[name] = obj
    return task


def git_sha(folder: Path = Path(__file__).parent) -> str:
    """The code's commit (``3034738``), ``-dirty`` when tracked files differ from it; empty outside a checkout."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty", "--exclude=*", "--abbrev=7"],
                              capture_output=True, text=True, cwd=folder, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _environment(acc) -> dict:
    env = {"world_size": acc.num_processes, "device": str(acc.device.type), "precision": acc.mixed_precision,
           "threads": torch.get_num_threads(), "host": socket.gethostname(),
           "slurm_job_id": os.environ.get("SLURM_JOB_ID", "")}
    if acc.device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(acc.device)
    return env


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


class Writer:
    """Runs file writes on one background thread, in submission order, so the next epoch starts at once.

    Status, history, checkpoint and snapshot files all pass through it, so they land in the order they were
    submitted; a failed write is raised on the training thread at the next submit or at ``close``.
    """

    def __init__(self):
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fashion-writer")
        self.pending: list[Future] = []

    def submit(self, fn, *args, **kwargs) -> None:
        done = [f for f in self.pending if f.done()]
        self.pending = [f for f in self.pending if not f.done()]
        for f in done:
            f.result()
        self.pending.append(self.pool.submit(fn, *args, **kwargs))

    def drain(self) -> None:
        pending, self.pending = self.pending, []
        for f in pending:
            f.result()

    def close(self) -> None:
        try:
            self.drain()
        finally:
            self.pool.shutdown(wait=True)


class _StatusTicker:
    """Writes status.json at most every few seconds during an epoch so --status and --local show progress."""

    def __init__(self, job_dir, submit=None, every_s: float = 3.0):
        self.job_dir, self.every_s, self.last = job_dir, every_s, 0.0
        self.submit = submit or (lambda fn, *a, **k: fn(*a, **k))

    def __call__(self, force: bool = False, **fields):
        now = time.monotonic()
        if force or now - self.last >= self.every_s:
            self.last = now
            self.submit(artifacts.write_status, self.job_dir, "running", **fields)


def fit(task_class: type[Task], config: TrainConfig, job_dir, job_name: str = "") -> dict:
    """Train ``task_class`` to ``config.epochs``, resuming from the job folder's checkpoint if present.

    The main process holds the job folder's lock for the whole run (a second trainer of the same folder is
    refused), and SIGINT (KeyboardInterrupt) leaves the job ``interrupted``, resumable from its last epoch.
    """
    config.validate()
    job_dir = Path(job_dir)
    import_in_background("torch._dynamo")
    acc = make_accelerator(config, task_class.auto_precision, project_dir=job_dir)
    lock = artifacts.JobLock(job_dir).acquire() if acc.is_main_process else None
    try:
        if lock is not None:
            artifacts.remove_stale_temps(job_dir)  # left by killed writes; no live writer: we hold the lock
        return _fit(task_class, config, job_dir, job_name, acc)
    except KeyboardInterrupt:
        if lock is not None:
            done = artifacts.read_status(job_dir).get("epoch", 0)
            artifacts.write_status(job_dir, "interrupted", interrupted=time.time(),
                                   reason=f"stopped by a signal during epoch {done + 1}; re-launch the same "
                                          f"command to resume after epoch {done}")
        raise
    finally:
        if lock is not None:
            lock.release()


def _fit(task_class: type[Task], config: TrainConfig, job_dir: Path, job_name: str, acc) -> dict:
    main = acc.is_main_process
    torch.manual_seed(config.seed)

    data = task_class.load_data(config)
    yardstick = None
    if main and task_class.generative():  # it measures itself against the whole test split, whatever test_subset
        yardstick = measure.Yardstick.shipped(data.test.images, acc.device)
    data.train, data.test = data.train.head(config.train_subset), data.test.head(config.test_subset)
    data.train, data.test = data.train.to(acc.device), data.test.to(acc.device)
    task = prepare_task(task_class(config, acc, data), acc)

    state = load_checkpoint(job_dir)
    start_epoch, epoch_rows, step_rows, changes = 0, [], [], {}
    if state is not None and state.get("config"):
        refused, changes = changed_settings(state["config"], dataclasses.asdict(config), state["epoch"])
        if refused:  # also checked by the launcher; here for requeues and direct calls
            raise ChangedSettings(refusal(job_dir, refused, state["epoch"]))
    if state is not None:
        for name, net in task.nets.items():
            task.unwrap(name).load_state_dict(state["nets"][name])
        for name, opt in task.opts.items():
            opt.load_state_dict(state["opts"][name])
        if acc.scaler is not None and state.get("scaler"):
            acc.scaler.load_state_dict(state["scaler"])
        task.load_state_dict(state.get("task", {}))
        start_epoch, epoch_rows, step_rows = state["epoch"], state["history"], state["steps"]
        acc.print(f"[{job_name}] resuming after epoch {start_epoch} from {job_dir}")

    env = _environment(acc)
    measured = {}  # metrics.json's quality numbers so far (a resumed job keeps its FID curve)
    if main:
        try:
            resumes = (artifacts.read_json(job_dir / "config.json", {}) or {}).get("resumes", [])
            measured = {k: v for k, v in (artifacts.read_json(job_dir / runfolder.METRICS_FILE, {}) or {}).items()
                        if k in ("quality", "fid_curve")}
        except ValueError:
            resumes = []
        if changes:  # what a resume changed, kept for the record
            resumes.append({"after_epoch": start_epoch, "time": time.time(),
                            "changed": {k: {"was": old, "now": new} for k, (old, new) in changes.items()}})
        nets = {name: task.unwrap(name) for name in task.nets}
        artifacts.write_json(job_dir / "config.json",
                             {"job": job_name, "config": dataclasses.asdict(config), "git": git_sha(), **env,
                              "params": {name: parameter_count(net) for name, net in nets.items()},
                              "networks": {name: network_summary(net) for name, net in nets.items()},
                              "resumes": resumes})
    writer = Writer()
    tick = _StatusTicker(job_dir, writer.submit) if main else None
    steps_per_epoch = len(epoch_batches(len(data.train), config.batch_size, 0, config.seed,
                                        acc.process_index, acc.num_processes, "cpu", config.limit_batches))
    if main:
        tick(force=True, epoch=start_epoch, epochs=config.epochs, step=0, steps=steps_per_epoch,
             started=time.time(), pid=os.getpid(), seconds_per_epoch=_mean(epoch_rows, "seconds"),
             images_per_s=_mean(epoch_rows, "images_per_s"), **env)
        trackers = Trackers(acc, config, job_name, job_dir)

    state_name = "completed"
    last_plot = time.monotonic()
    try:
        for epoch in range(start_epoch, config.epochs):
            epoch_row, new_steps = train_epoch(task, config, epoch, tick)
            diverged = [k for k, v in epoch_row.items() if isinstance(v, float) and not math.isfinite(v)]
            if not diverged:  # every rank: schedules that follow the epoch's means (BEGAN's lr decay)
                epoch_row.update(task.after_epoch(epoch + 1, epoch_row))
            if main and not diverged:
                epoch_row.update(task.end_epoch(epoch + 1, job_dir))
                snapshot = save_snapshot(task, config, job_dir, epoch + 1, writer.submit)
                if snapshot is not None and yardstick is not None:  # FID over epochs, point by point
                    measure.record_point(measured.setdefault("fid_curve", {}), yardstick, epoch + 1, snapshot)
                    writer.submit(_update_metrics, job_dir, copy.deepcopy(measured))
            step_rows += new_steps
            epoch_rows.append(epoch_row)
            if main:
                # losses.png is a progress picture (history.csv has every number each epoch): redrawing it
                # every epoch costs short epochs more than it tells, so it is redrawn once a minute and at the end.
                final = bool(diverged) or epoch + 1 == config.epochs
                plot = final or time.monotonic() - last_plot >= PLOT_EVERY_S
                last_plot = time.monotonic() if plot else last_plot
                writer.submit(_write_history, job_dir, job_name, list(epoch_rows), list(step_rows), plot)
                trackers.log_epoch(writer, epoch + 1, epoch_row, new_steps)
                acc.print(_epoch_line(job_name, epoch_row, config.epochs))
            if diverged:
                state_name = "diverged"
                if main:
                    writer.submit(artifacts.write_status, job_dir, "diverged", epoch=epoch + 1,
                                  reason=f"non-finite {', '.join(diverged)}")
                break
            if main:
                # Copied now, serialised and written while the next epoch trains.
                writer.submit(save_checkpoint, job_dir, _cpu_copy({
                    "epoch": epoch + 1, "history": list(epoch_rows), "steps": list(step_rows),
                    "nets": {n: task.unwrap(n).state_dict() for n in task.nets},
                    "opts": {n: o.state_dict() for n, o in task.opts.items()},
                    "scaler": acc.scaler.state_dict() if acc.scaler is not None else None,
                    "task": task.state_dict(), "config": dataclasses.asdict(config),
                }))
                tick(force=True, epoch=epoch + 1, step=0, seconds_per_epoch=_mean(epoch_rows, "seconds"),
                     images_per_s=_mean(epoch_rows, "images_per_s"))
            acc.wait_for_everyone()

        metrics = {}
        if main:
            # The writer thread is still writing the last checkpoint and history: what needs only the nets
            # and the epoch grids is made meanwhile; finish() reads history.csv, so it waits for the writes.
            frames = runfolder.sample_frames(job_dir)
            artifacts.make_gif(frames, job_dir / "samples.gif")
            artifacts.make_epoch_strip(frames, job_dir / "strip.png", title=job_name)
            last = epoch_rows[-1] if epoch_rows else {}
            metrics = {"job": job_name, "state": state_name, "epochs": len(epoch_rows),
                       "seconds_per_epoch": _mean(epoch_rows, "seconds"),
                       "images_per_s": _mean(epoch_rows, "images_per_s"),
                       "final": {k: v for k, v in last.items() if k not in ("epoch", "iteration")}, **env}
            if state_name == "completed":
                from fashion.generator import export

                export(task, job_dir, job_name)  # before "completed": a completed job always has its generator
                save_eval_samples(task, config, job_dir, len(epoch_rows))
                writer.drain()
                if yardstick is not None:  # before "completed": a completed job has its numbers
                    t0 = time.perf_counter()
                    metrics.update(measure.measure_folder(job_dir, yardstick, measured),
                                   measure_seconds=round(time.perf_counter() - t0, 2))
                metrics.update(task.finish(job_dir))
    finally:
        writer.close()  # a crash still leaves the last finished epoch's checkpoint on disk
        if main:
            trackers.close()

    if main:  # every file above is on disk by now
        old = artifacts.read_json(job_dir / "metrics.json", {}) or {}
        artifacts.write_json(job_dir / "metrics.json", {**old, **metrics})
        if state_name == "completed":
            artifacts.write_status(job_dir, "completed", epoch=len(epoch_rows), finished=time.time())
    acc.wait_for_everyone()
    return metrics


def train_epoch(task: Task, config: TrainConfig, epoch: int, tick=None) -> tuple[dict, list[dict]]:
    """One pass over the seeded batches of ``epoch``: the epoch's summary row and its per-step rows.

    The whole hot loop of :func:`fit`, callable on its own so the benchmark times exactly what jobs run.
    """
    acc = task.acc
    for net in task.nets.values():
        net.train()
    noise = Noise.for_epoch(acc.device, config.seed, epoch, acc.process_index)
    batches = epoch_batches(len(task.data.train), config.batch_size, epoch, config.seed,
                            acc.process_index, acc.num_processes, acc.device, config.limit_batches)
    images, labels = task.data.train.images, task.data.train.labels
    records: list[dict[str, torch.Tensor]] = []
    t0 = time.perf_counter()
    for step, index in enumerate(batches):
        records.append(task.train_step(images[index], labels[index], noise))
        if tick is not None:
            tick(epoch=epoch, step=step + 1)
    iteration0 = epoch * len(batches)
    epoch_row, new_steps = _summarise(acc, records, iteration0)
    seconds = time.perf_counter() - t0
    epoch_row.update(epoch=epoch + 1, iteration=iteration0 + len(batches), seconds=round(seconds, 3),
                     images_per_s=round(len(batches) * config.batch_size / seconds, 1))
    return epoch_row, new_steps


def _cpu_copy(obj):
    """A detached CPU copy of every tensor in a nested state, so training can go on while it is written."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu_copy(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_cpu_copy(v) for v in obj)
    return obj


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


def _update_metrics(job_dir: Path, fields: dict) -> None:
    old = artifacts.read_json(job_dir / runfolder.METRICS_FILE, {}) or {}
    artifacts.write_json(job_dir / runfolder.METRICS_FILE, {**old, **fields})


def save_eval_samples(task: Task, config: TrainConfig, job_dir: Path, epoch: int) -> Path | None:
    """The finished model's evaluation set (``eval_samples``, seeded): the report measures these files and
    never rebuilds the model."""
    with torch.no_grad():
        drawn = task.metric_samples(config.eval_samples, Noise(task.device, config.seed + EVAL_SEED))
    if drawn is None:
        return None
    kind = getattr(task, "label_kind", "class")
    names = getattr(task, "label_names", None) or (CLASSES if kind == "class" else [f"code {i}" for i in range(10)])
    return runfolder.write_eval_samples(job_dir, runfolder.EvalSamples(drawn[0], drawn[1], list(names), kind,
                                                                       config.seed, epoch))


def _summarise(acc, records, iteration0):
    """Epoch means reduced over ranks, and this rank's per-step values: a single host sync."""
    names = sorted({k for r in records for k in r})
    if not names:
        return {}, []
    flat = [(i, k, r[k]) for i, r in enumerate(records) for k in r]
    values = torch.stack([v for _, _, v in flat])
    ids = torch.tensor([names.index(k) for _, k, _ in flat], device=values.device)
    sums = torch.zeros(len(names), device=values.device).index_add_(0, ids, values)
    counts = torch.zeros(len(names), device=values.device).index_add_(0, ids, torch.ones_like(values))
    means = acc.reduce(sums / counts.clamp(min=1), reduction="mean")
    host = torch.cat([means, values]).cpu().tolist()
    epoch_row = dict(zip(names, host[: len(names)]))
    step_rows: dict[int, dict] = {}
    for (i, k, _), v in zip(flat, host[len(names):]):
        step_rows.setdefault(i, {"iteration": iteration0 + i + 1})[k] = v
    return epoch_row, list(step_rows.values())


def _mean(rows, key):
    vals = [r[key] for r in rows if key in r]
    return round(sum(vals) / len(vals), 3) if vals else None


def _write_history(job_dir, job_name, epoch_rows, step_rows, plot: bool = True):
    artifacts.write_csv(job_dir / runfolder.HISTORY_FILE, epoch_rows)
    artifacts.write_csv(job_dir / runfolder.LOSSES_FILE, step_rows)
    if plot:
        artifacts.plot_losses(step_rows, epoch_rows, job_dir / "losses.png", title=job_name)


def _epoch_line(job_name, row, epochs):
    losses = "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in runfolder.BOOKKEEPING and isinstance(v, float))
    return (f"[{job_name}] epoch {row['epoch']}/{epochs}  {losses}  "
            f"{row['seconds']:.1f}s  {row['images_per_s']:.0f} img/s")
