"""The one training loop every job runs, on HuggingFace accelerate.

A job is a :class:`Task`: it builds its networks and optimisers, defines one training step that returns
named loss terms, and draws its pictures. The loop owns everything else: devices and DDP, mixed precision,
seeded batches, on-device loss accumulation (one host sync per epoch), divergence, status, checkpoints,
resume, history, loss plots and the GIF.
"""
from __future__ import annotations

import dataclasses
import io
import math
import os
import socket
import subprocess
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from fashion import artifacts
from fashion.checkpoint import load_checkpoint, save_checkpoint
from fashion.data import Dataset, epoch_batches, load_fashion

PRECISIONS = ("auto", "no", "bf16", "fp16")
SNAPSHOT_DIR = "snapshots"
SNAPSHOT_SEED = 777
TRACKER_DIR = "trackers"
PLOT_EVERY_S = 60.0
# accelerate's tracker name -> the PyPI package that provides it
TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "aim": "aim",
                    "comet_ml": "comet-ml", "clearml": "clearml", "dvclive": "dvclive", "swanlab": "swanlab",
                    "trackio": "trackio"}


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
    "auto (bf16 on a GPU that supports it, else fp32) | no | bf16 | fp16."
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
    log_with: str = ""
    "Experiment trackers, comma-separated accelerate names (tensorboard, wandb, mlflow, aim, ...); '' is off."

    def validate(self) -> None:
        if self.snapshot_samples < 2:
            raise ConfigError(f"snapshot_samples={self.snapshot_samples}: FID needs at least 2 (2000 is plenty)")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision={self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}: must be at least 1")
        for name in ("limit_batches", "train_subset", "test_subset", "snapshot_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)}: must be 0 (off) or positive")
        check_trackers(self.trackers())

    def trackers(self) -> list[str]:
        return [t.strip() for t in self.log_with.split(",") if t.strip()]


def check_trackers(names: list[str]) -> None:
    """Unknown tracker names and trackers whose package is missing are config errors, caught at launch."""
    if not names:
        return
    from accelerate.tracking import get_available_trackers

    available = {str(t) for t in get_available_trackers()}
    for name in names:
        if name not in TRACKER_PACKAGES:
            raise ConfigError(f"log_with={name!r}: choose from {', '.join(TRACKER_PACKAGES)}")
        if name not in available:
            raise ConfigError(f"log_with={name!r}: the {TRACKER_PACKAGES[name]} package is not installed; "
                              f"pip install {TRACKER_PACKAGES[name]}")


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

    def optimize(self, opt: str, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Sum the terms, one backward, one step. The only place any job calls backward or step.

        A single backward per optimiser keeps DDP ranks in sync (two backwards through one DDP module
        per step can silently desynchronise them).
        """
        optimizer = self.opts[opt]
        optimizer.zero_grad(set_to_none=True)
        total = sum(terms.values())
        self.acc.backward(total)
        optimizer.step()
        return {name: value.detach().float() for name, value in terms.items()}

    def unwrap(self, name: str) -> nn.Module:
        return self.acc.unwrap_model(self.nets[name])

    def end_epoch(self, epoch: int, out: Path) -> dict[str, float]:
        """Main process only: pictures for this epoch and any test-set numbers to log."""
        return {}

    def finish(self, out: Path) -> dict:
        """Main process only: final analyses; returns extra metrics for metrics.json."""
        return {}

    def metric_samples(self, n: int, noise: Noise) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """For quality metrics: n generated images in [0, 1] (N, C, 28, 28) and the classes they were asked
        to show (None if unconditional); None for tasks that generate nothing comparable."""
        return None

    def state_dict(self) -> dict:
        """Task state beyond networks and optimisers (e.g. BEGAN's k)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def resolve_precision(precision: str, cuda: bool) -> str:
    if precision == "auto":
        return "bf16" if cuda and torch.cuda.is_bf16_supported() else "no"
    if precision == "fp16" and not cuda:
        raise ConfigError("precision=fp16 needs a GPU (on a CPU it would silently run fp32); use bf16 or no")
    return precision


def make_accelerator(config: TrainConfig, project_dir=None):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import DistributedDataParallelKwargs

    if not torch.distributed.is_initialized():
        # Several jobs can run in one process (dry runs, tests): start each from a clean accelerate state.
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    cuda = torch.cuda.is_available() and not config.cpu
    # torch suggests forward_sync_buffers, which accelerate's kwargs cannot pass yet; the behaviour we want
    # (no per-forward buffer broadcast) is what broadcast_buffers=False gives.
    warnings.filterwarnings("ignore", message="`broadcast_buffers` is deprecated")
    # broadcast_buffers=False: GANs run D twice before one backward; re-broadcasting BatchNorm buffers
    # between those forwards breaks autograd on CUDA. Every rank still trains identical weights.
    ddp = DistributedDataParallelKwargs(broadcast_buffers=False)
    trackers = config.trackers() if project_dir is not None else []
    return Accelerator(cpu=not cuda, mixed_precision=resolve_precision(config.precision, cuda),
                       kwargs_handlers=[ddp], log_with=trackers or None,
                       project_dir=str(project_dir) if trackers else None)


def git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _environment(acc) -> dict:
    env = {"world_size": acc.num_processes, "device": str(acc.device.type), "precision": acc.mixed_precision,
           "threads": torch.get_num_threads(), "host": socket.gethostname(),
           "slurm_job_id": os.environ.get("SLURM_JOB_ID", "")}
    if acc.device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(acc.device)
    return env


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
    """Train ``task_class`` to ``config.epochs``, resuming from the job folder's checkpoint if present."""
    config.validate()
    job_dir = Path(job_dir)
    acc = make_accelerator(config, project_dir=job_dir)
    main = acc.is_main_process
    torch.manual_seed(config.seed)

    data = task_class.load_data(config)
    data.train, data.test = data.train.head(config.train_subset), data.test.head(config.test_subset)
    data.train, data.test = data.train.to(acc.device), data.test.to(acc.device)
    task = task_class(config, acc, data)
    slots = [(task.nets, n) for n in task.nets] + [(task.opts, n) for n in task.opts]
    prepared = acc.prepare(*(owner[n] for owner, n in slots))
    prepared = prepared if isinstance(prepared, (list, tuple)) else [prepared]
    for (owner, name), obj in zip(slots, prepared):
        owner[name] = obj

    state = load_checkpoint(job_dir)
    start_epoch, epoch_rows, step_rows = 0, [], []
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
    if main:
        artifacts.write_json(job_dir / "config.json",
                             {"job": job_name, "config": dataclasses.asdict(config), "git": git_sha(), **env})
    writer = Writer()
    tick = _StatusTicker(job_dir, writer.submit) if main else None
    steps_per_epoch = len(epoch_batches(len(data.train), config.batch_size, 0, config.seed,
                                        acc.process_index, acc.num_processes, "cpu", config.limit_batches))
    if main:
        tick(force=True, epoch=start_epoch, epochs=config.epochs, step=0, steps=steps_per_epoch,
             started=time.time(), **env)
        trackers = Trackers(acc, config, job_name, job_dir)

    state_name = "completed"
    last_plot = time.monotonic()
    try:
        for epoch in range(start_epoch, config.epochs):
            epoch_row, new_steps = train_epoch(task, config, epoch, tick)
            diverged = [k for k, v in epoch_row.items() if isinstance(v, float) and not math.isfinite(v)]
            if main and not diverged:
                epoch_row.update(task.end_epoch(epoch + 1, job_dir))
                save_snapshot(task, config, job_dir, epoch + 1, writer.submit)
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
    finally:
        writer.close()  # a crash still leaves the last finished epoch's checkpoint on disk
        if main:
            trackers.close()

    metrics = {}
    if main:
        frames = sorted((job_dir / "samples").glob("epoch_*.png"))
        artifacts.make_gif(frames, job_dir / "samples.gif")
        last = epoch_rows[-1] if epoch_rows else {}
        metrics = {"job": job_name, "state": state_name, "epochs": len(epoch_rows),
                   "seconds_per_epoch": _mean(epoch_rows, "seconds"),
                   "images_per_s": _mean(epoch_rows, "images_per_s"),
                   "final": {k: v for k, v in last.items() if k not in ("epoch", "iteration")}, **env}
        if state_name == "completed":
            metrics.update(task.finish(job_dir))
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


class Trackers:
    """The job's experiment trackers (``config.log_with``) through accelerate's tracker API; main process only.

    Everything is logged at epoch end from rows already on the host (no extra sync per step), on the writer
    thread. File-based trackers write under ``JOB/trackers/``, so ``tensorboard --logdir outputs/RUN`` shows
    every job of a run.
    """

    def __init__(self, acc, config: TrainConfig, job_name: str, job_dir: Path):
        self.acc, self.job_dir, self.names = acc, Path(job_dir), list(acc.log_with) if config.trackers() else []
        if not self.names:
            return
        hparams = {k: v for k, v in dataclasses.asdict(config).items() if isinstance(v, (int, float, str, bool))}
        wandb = {"dir": str(self.job_dir), "name": job_name, "mode": os.environ.get("WANDB_MODE", "offline")}
        acc.init_trackers(TRACKER_DIR, config=hparams, init_kwargs={"wandb": wandb})

    def log_epoch(self, writer: Writer, epoch: int, epoch_row: dict, step_rows: list[dict]) -> None:
        if not self.names:
            return
        grids = sorted(self.job_dir.glob(f"**/*epoch_{epoch:03d}.png"))
        writer.submit(self._log, epoch_row, step_rows, grids)

    def _log(self, epoch_row: dict, step_rows: list[dict], grids: list[Path]) -> None:
        import imageio.v3 as iio

        step = epoch_row["iteration"]
        scalars = {f"epoch/{k}": v for k, v in epoch_row.items() if isinstance(v, (int, float)) and k != "iteration"}
        images = {_grid_tag(p.relative_to(self.job_dir)): iio.imread(p) for p in grids}
        for tracker in self.acc.trackers:
            if tracker.name == "tensorboard":
                # One flush per epoch: accelerate's log() flushes after every call.
                tb = tracker.writer
                for row in step_rows:
                    for k, v in row.items():
                        if k != "iteration":
                            tb.add_scalar(f"step/{k}", v, global_step=row["iteration"])
                for k, v in scalars.items():
                    tb.add_scalar(k, v, global_step=step)
                for tag, image in images.items():
                    tb.add_image(tag, image, global_step=step, dataformats="HWC" if image.ndim == 3 else "HW")
                tb.flush()
                continue
            for row in step_rows:
                tracker.log({f"step/{k}": v for k, v in row.items() if k != "iteration"}, step=row["iteration"])
            tracker.log(scalars, step=step)
            if tracker.name == "wandb" and images:
                tracker.log_images({tag: [image] for tag, image in images.items()}, step=step)

    def close(self) -> None:
        if self.names:
            self.acc.end_training()


def _grid_tag(relative: Path) -> str:
    """samples/epoch_003.png -> samples; sweeps/c1_epoch_003.png -> sweeps/c1."""
    stem = relative.stem.rsplit("epoch_", 1)[0].rstrip("_")
    return str(relative.parent / stem) if stem else str(relative.parent)


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


def save_snapshot(task: Task, config: TrainConfig, job_dir: Path, epoch: int, submit=None) -> Path | None:
    """Every ``snapshot_every`` epochs and at the last: ``snapshots/epoch_NNN.pt``, samples of the model as it
    is now (uint8), which the report turns into FID over epochs. Its own fixed noise: training is untouched."""
    every = config.snapshot_every
    if not every or (epoch % every and epoch != config.epochs):
        return None
    with torch.no_grad():
        drawn = task.metric_samples(config.snapshot_samples, Noise(task.device, config.seed + SNAPSHOT_SEED))
    if drawn is None:
        return None
    images = drawn[0].clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
    path = job_dir / SNAPSHOT_DIR / f"epoch_{epoch:03d}.pt"
    (submit or (lambda fn, *a: fn(*a)))(_write_tensors, path, {"epoch": epoch, "images": images})
    return path


def _write_tensors(path: Path, obj) -> Path:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return artifacts.write_bytes(path, buf.getvalue())


def restore_task(task_class: type[Task], config: TrainConfig, job_dir, device: str = "cpu",
                 data: Dataset | None = None) -> Task:
    """Rebuild a finished job's task from its checkpoint, in this process, for evaluation (no DDP)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    state = load_checkpoint(job_dir)
    if state is None:
        raise FileNotFoundError(f"{job_dir}: no checkpoint.pt to evaluate")
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    acc = Accelerator(cpu=device == "cpu")
    if data is None:
        data = task_class.load_data(config)
        data.train, data.test = data.train.head(config.train_subset), data.test.head(config.test_subset)
    task = task_class(config, acc, Dataset(data.train.to(acc.device), data.test.to(acc.device)))
    for name, net in task.nets.items():
        net.to(acc.device).load_state_dict(state["nets"][name])
        net.eval()
    task.load_state_dict(state.get("task", {}))
    return task


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
    artifacts.write_csv(job_dir / "history.csv", epoch_rows)
    artifacts.write_csv(job_dir / "losses.csv", step_rows)
    if plot:
        artifacts.plot_losses(step_rows, epoch_rows, job_dir / "losses.png", title=job_name)


def _epoch_line(job_name, row, epochs):
    skip = {"epoch", "iteration", "seconds", "images_per_s"}
    losses = "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in skip and isinstance(v, float))
    return (f"[{job_name}] epoch {row['epoch']}/{epochs}  {losses}  "
            f"{row['seconds']:.1f}s  {row['images_per_s']:.0f} img/s")
