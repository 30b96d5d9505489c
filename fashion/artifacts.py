"""Everything a job writes into the shared outputs tree, always atomically (temp file + rename).

Layout of one run: ``outputs/<run>/<job name>/`` where the job name keeps its slash
(``outputs/main/gan/wgan_gp/``), so the folder, the registry key and the report row share one name.
"""
from __future__ import annotations

import csv
import errno
import fcntl
import io
import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

import torch

STATUS_FILE = "status.json"
LOCK_FILE = ".lock"
# interrupted: stopped by SIGINT/SIGTERM, resumable; corrupt: status.json itself cannot be read.
STATES = ("queued", "running", "completed", "failed", "diverged", "cancelled", "interrupted", "corrupt")


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once: os.umask can only be read by setting it, which is not thread-safe to repeat.
_FILE_MODE = 0o666 & ~_read_umask()


class WriteError(OSError):
    """A write into the outputs tree failed (disk full, read-only, no permission); the message names the path."""


def atomic_write(path: str | os.PathLike, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Call ``write(f)`` on a temp file beside ``path`` and rename it into place."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise _write_error(path, err) from err
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            # mkstemp makes 0600 files; a normal write would honour the umask (group-shared outputs).
            os.fchmod(f.fileno(), _FILE_MODE)
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            raise _write_error(path, err) from err
        raise
    return path


def _write_error(path: Path, err: OSError) -> WriteError:
    why = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
           errno.EROFS: "the file system is read-only", errno.EACCES: "no permission to write there",
           errno.EPERM: "no permission to write there"}.get(err.errno, err.strerror or str(err))
    return WriteError(err.errno, f"cannot write {path}: {why}; free space or choose another --outputs")


def write_bytes(path, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def write_text(path, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_json(path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return default
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: corrupt JSON ({err}); delete it or re-run the job with --force") from err


def write_csv(path, rows: list[dict]) -> Path:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, buf.getvalue())


def save_grid(images: torch.Tensor, path, nrow: int = 10, value_range=(-1.0, 1.0), padding: int = 2) -> Path:
    """A PNG grid of a batch (N, C, H, W) via torchvision."""
    from torchvision.utils import save_image

    buf = io.BytesIO()
    save_image(images.detach().float().cpu(), buf, format="png", nrow=nrow, normalize=True,
               value_range=value_range, padding=padding, pad_value=1.0)
    return write_bytes(path, buf.getvalue())


def save_figure(fig, path, dpi: int = 110, colours: int = 0) -> Path:
    """The figure as a PNG, written atomically; ``colours`` > 0 quantizes it to a palette of that many (grey
    sample grids lose nothing at 256, and the file is about half the size). A pyplot figure is closed; a bare
    Figure (no pyplot, as on the trainer's writer thread) needs no closing, and saving it never imports pyplot."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    if fig.canvas.manager is not None:
        import matplotlib.pyplot as plt

        plt.close(fig)
    if colours:
        from PIL import Image

        rgb, buf = Image.open(buf).convert("RGB"), io.BytesIO()
        rgb.quantize(colours).save(buf, format="png", optimize=True)
    return write_bytes(path, buf.getvalue())


def make_gif(frames: Iterable[str | os.PathLike], path, fps: float = 5.0) -> Path | None:
    """Animate PNG frames (epoch grids) into a looping GIF."""
    import imageio.v3 as iio

    images = [iio.imread(p) for p in frames]
    if not images:
        return None
    data = iio.imwrite("<bytes>", images, extension=".gif", duration=1000 / fps, loop=0)
    return write_bytes(path, data)


def strip_frames(frames: Iterable[str | os.PathLike]) -> list[tuple[int, Path]]:
    """(epoch, frame) of the first, middle and last of ``epoch_NNN.png`` frames (1 / 25 / 50 of 50)."""
    import re

    def epoch(frame: Path) -> int:
        digits = re.findall(r"\d+", frame.stem)
        return int(digits[-1]) if digits else 0

    frames = sorted((Path(f) for f in frames), key=epoch)  # numerically: epoch_1000 after epoch_999
    if not frames:
        return []
    return [(epoch(frames[i]), frames[i]) for i in sorted({0, (len(frames) - 1) // 2, len(frames) - 1})]


def make_epoch_strip(frames: Iterable[str | os.PathLike], path, title: str = "") -> Path | None:
    """The first, middle and last epoch grids side by side, each labelled with its epoch."""
    import imageio.v3 as iio
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picked = strip_frames(frames)
    if not picked:
        return None
    fig, axes = plt.subplots(1, len(picked), figsize=(3.2 * len(picked), 3.6), squeeze=False)
    for ax, (epoch, frame) in zip(axes[0], picked):
        ax.imshow(iio.imread(frame), cmap="gray", interpolation="nearest")
        ax.set_title(f"epoch {epoch}", fontsize=11)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_losses(step_rows: list[dict], epoch_rows: list[dict], path, title: str = "") -> Path:
    """One panel per loss term: per-iteration values faint, epoch means bold, x = iteration.

    Drawn on a bare Figure, not pyplot: safe on the trainer's writer thread and without pyplot's import cost."""
    from matplotlib.figure import Figure

    names = sorted({k for row in step_rows for k in row} - {"epoch", "iteration"})
    cols = min(3, max(1, len(names)))
    rows = max(1, -(-len(names) // cols))
    fig = Figure(figsize=(4.2 * cols, 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, name in zip(axes.flat, names):
        pts = [(r["iteration"], r[name]) for r in step_rows if r.get(name) is not None]
        if pts:
            x, y = zip(*pts)
            ax.plot(x, y, lw=0.6, alpha=0.35, color="tab:blue")
        means = [(r["iteration"], r[name]) for r in epoch_rows if r.get(name) is not None]
        if means:
            x, y = zip(*means)
            ax.plot(x, y, "o-", lw=1.6, ms=3, color="tab:red", label="epoch mean")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def write_status(job_dir, state: str, **fields) -> Path:
    assert state in STATES, state
    try:
        old = read_json(Path(job_dir) / STATUS_FILE, {}) or {}
    except ValueError:  # a corrupt status.json is replaced by the new one
        old = {}
    status = {**old, **fields, "state": state, "updated": time.time()}
    return write_json(Path(job_dir) / STATUS_FILE, status)


def read_status(job_dir) -> dict:
    """The job's status.json; a damaged one reads as state ``corrupt`` naming the file, never raises."""
    path = Path(job_dir) / STATUS_FILE
    try:
        status = read_json(path, {}) or {}
    except ValueError as err:  # read_json's message names the file and the fix
        return {"state": "corrupt", "error": str(err), "file": str(path)}
    except OSError as err:
        return {"state": "corrupt", "error": f"{path}: cannot be read ({err.strerror or err})", "file": str(path)}
    if not isinstance(status, dict):
        return {"state": "corrupt", "error": f"{path}: not a JSON object", "file": str(path)}
    return status


# ---------------------------------------------------------------------------------------------------------
# One writer per job folder
# ---------------------------------------------------------------------------------------------------------

class JobBusy(RuntimeError):
    """Another live process holds the job folder's lock."""


class JobLock:
    """An exclusive ``fcntl.flock`` on ``<job>/.lock``, held while a job trains. The kernel drops it when the
    process dies however it dies, so a killed job never leaves a stale lock behind."""

    def __init__(self, job_dir):
        self.path = Path(job_dir) / LOCK_FILE
        self.fd: int | None = None

    def acquire(self, holder: str = "") -> "JobLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, _FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise JobBusy(f"{self.path.parent} is in use by another process ({self.holder()}); wait for it "
                              "to finish or stop it, or choose another --run") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, (holder or f"pid {os.getpid()} on {socket.gethostname()} since "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')}").encode())
        self.fd = fd
        return self

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown process"
        except OSError:
            return "unknown process"

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire() if self.fd is None else self

    def __exit__(self, *exc):
        self.release()


def check_free(job_dir) -> None:
    """Raise JobBusy if a live process holds the job's lock; takes and drops it at once otherwise."""
    if (Path(job_dir) / LOCK_FILE).exists():
        lock = JobLock(job_dir)
        try:
            fd = os.open(lock.path, os.O_RDONLY)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            raise JobBusy(f"{lock.path.parent} is in use by another process ({lock.holder()}); wait for it to "
                          "finish or stop it, or choose another --run") from None
        finally:
            os.close(fd)


def remove_stale_temps(job_dir) -> list[Path]:
    """Delete temp files that killed writes left in the job folder; call only while holding its lock."""
    removed = []
    for tmp in Path(job_dir).rglob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed

