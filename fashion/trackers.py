"""Experiment trackers (``--log-with``): which names are valid, and logging through accelerate's tracker API."""
from __future__ import annotations

import os
from pathlib import Path

TRACKER_DIR = "trackers"
# accelerate's tracker name -> the PyPI package that provides it
TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "aim": "aim",
                    "comet_ml": "comet-ml", "clearml": "clearml", "dvclive": "dvclive", "swanlab": "swanlab",
                    "trackio": "trackio"}


def tracker_problem(names: list[str]) -> str | None:
    """Why ``log_with`` cannot be used (an unknown name, a package not installed), else None; the config's
    validation raises it, so the launcher refuses it before anything starts."""
    if not names:
        return None
    from accelerate.tracking import get_available_trackers

    available = {str(t) for t in get_available_trackers()}
    for name in names:
        if name not in TRACKER_PACKAGES:
            return f"log_with={name!r}: choose from {', '.join(TRACKER_PACKAGES)}"
        if name not in available:
            return (f"log_with={name!r}: the {TRACKER_PACKAGES[name]} package is not installed; "
                    f"pip install {TRACKER_PACKAGES[name]}")
    return None


class Trackers:
    """The job's experiment trackers (``config.log_with``) through accelerate's tracker API; main process only.

    Everything is logged at epoch end from rows already on the host (no extra sync per step), on the writer
    thread. File-based trackers write under ``JOB/trackers/``, so ``tensorboard --logdir outputs/RUN`` shows
    every job of a run.
    """

    def __init__(self, acc, settings: dict, job_name: str, job_dir: Path):
        """``settings``: the job's config as a dict (its plain values become the trackers' hyperparameters)."""
        self.acc, self.job_dir, self.names = acc, Path(job_dir), list(acc.log_with or [])
        if not self.names:
            return
        hparams = {k: v for k, v in settings.items() if isinstance(v, (int, float, str, bool))}
        wandb = {"dir": str(self.job_dir), "name": job_name, "mode": os.environ.get("WANDB_MODE", "offline")}
        acc.init_trackers(TRACKER_DIR, config=hparams, init_kwargs={"wandb": wandb})

    def log_epoch(self, submit, epoch: int, epoch_row: dict, step_rows: list[dict]) -> None:
        """Log an epoch through ``submit`` (the background writer's), after the files submitted before it."""
        if not self.names:
            return
        grids = sorted(self.job_dir.glob(f"**/*epoch_{epoch:03d}.png"))
        submit(self._log, epoch_row, step_rows, grids)

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
        # Not acc.end_training(): it also destroys the process group, and this runs on the main process only,
        # before the job's last barrier.
        for tracker in self.acc.trackers if self.names else ():
            tracker.finish()


def _grid_tag(relative: Path) -> str:
    """samples/epoch_003.png -> samples; sweeps/c1_epoch_003.png -> sweeps/c1."""
    stem = relative.stem.rsplit("epoch_", 1)[0].rstrip("_")
    return str(relative.parent / stem) if stem else str(relative.parent)
