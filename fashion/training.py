"""The one training loop every job runs, on HuggingFace accelerate.

A job is a :class:`~fashion.task.Task`: it builds its networks and optimisers, defines one training step
that returns named loss terms, and draws its pictures. :func:`fit` owns everything else, in the order it
reads: data, devices and DDP, resume, seeded batches with on-device loss accumulation (one host sync per
epoch), divergence, and what the job's recorder writes (fashion/recorder.py) after each epoch and at the end.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from fashion.checkpoint import load_checkpoint, restore
from fashion.data import epoch_batches
from fashion.recorder import Recorder, recorder
from fashion.runtime import make_accelerator
from fashion.task import Noise, Task, TrainConfig, prepare_task


def fit(task_class: type[Task], config: TrainConfig, job_dir, job_name: str = "") -> dict:
    """Train ``task_class`` to ``config.epochs``, resuming from the job folder's checkpoint if present.

    The main process holds the job folder's lock for the whole run (a second trainer of the same folder is
    refused), and SIGINT (KeyboardInterrupt) leaves the job ``interrupted``, resumable from its last epoch.
    """
    config.validate()
    acc = make_accelerator(config, task_class.auto_precision, project_dir=Path(job_dir))
    with recorder(job_dir, job_name, config, acc) as record:
        return _fit(task_class, config, acc, record)


def build_task(task_class: type[Task], config: TrainConfig, acc, data) -> Task:
    """The task as it trains: ``data`` cut to the config's subsets on the accelerator's device, the nets and
    optimisers prepared."""
    data.train, data.test = data.train.head(config.train_subset), data.test.head(config.test_subset)
    data.train, data.test = data.train.to(acc.device), data.test.to(acc.device)
    return prepare_task(task_class(config, acc, data), acc)


def _fit(task_class: type[Task], config: TrainConfig, acc, record: Recorder) -> dict:
    data = task_class.load_data(config)
    record.measure_against(task_class, data.test.images, data.train.images)  # whole splits, whatever the subsets
    torch.manual_seed(config.seed)  # here, so the networks' initial weights are the seed's alone, on every rank
    task = build_task(task_class, config, acc, data)

    state = load_checkpoint(record.job_dir)
    changes = restore(task, state, record.job_dir)
    start = state["epoch"] if state is not None else 0
    steps_per_epoch = len(epoch_batches(len(data.train), config.batch_size, 0, config.seed, acc.process_index,
                                        acc.num_processes, "cpu", config.limit_batches))
    record.start(task, state, changes, steps_per_epoch)

    outcome = "completed"
    for epoch in range(start, config.epochs):
        row, steps = train_epoch(task, config, epoch, record.tick)
        diverged = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
        if not diverged:  # every rank: schedules that follow the epoch's means (BEGAN's lr decay)
            row.update(task.after_epoch(epoch + 1, row))
        record.epoch(task, row, steps, diverged)
        if diverged:
            outcome = "diverged"
            break
        record.checkpoint(task)
        acc.wait_for_everyone()

    metrics = record.finish(task, outcome)
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
