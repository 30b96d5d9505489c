"""Everything a job writes into the shared outputs tree, always atomically (temp file + rename).

Layout of one run: ``outputs/<run>/<job name>/`` where the job name keeps its slash
(``outputs/main/gan/wgan_gp/``), so the folder, the registry key and the report row share one name.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

import torch

STATUS_FILE = "status.json"
STATES = ("queued", "running", "completed", "failed", "diverged", "cancelled")


def atomic_write(path: str | os.PathLike, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Call ``write(f)`` on a temp file beside ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
    except json.JSONDecodeError as err:
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


def save_figure(fig, path, dpi: int = 110) -> Path:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return write_bytes(path, buf.getvalue())


def make_gif(frames: Iterable[str | os.PathLike], path, fps: float = 5.0) -> Path | None:
    """Animate PNG frames (epoch grids) into a looping GIF."""
    import imageio.v3 as iio

    images = [iio.imread(p) for p in frames]
    if not images:
        return None
    data = iio.imwrite("<bytes>", images, extension=".gif", duration=1000 / fps, loop=0)
    return write_bytes(path, data)


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
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return write_bytes(path, buf.getvalue())


def write_status(job_dir, state: str, **fields) -> Path:
    assert state in STATES, state
    status = {**read_json(Path(job_dir) / STATUS_FILE, {}), **fields, "state": state, "updated": time.time()}
    return write_json(Path(job_dir) / STATUS_FILE, status)


def read_status(job_dir) -> dict:
    return read_json(Path(job_dir) / STATUS_FILE, {}) or {}


def job_dir(outputs: str | os.PathLike, run: str, job: str) -> Path:
    return Path(outputs) / run / job
