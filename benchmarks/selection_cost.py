#!/usr/bin/env python
"""What choosing the best checkpoint on training images costs a CPU job, against the job's own training time.

    python benchmarks/selection_cost.py                         # gan/gan, and vae/mlp (the fastest epoch)
    python benchmarks/selection_cost.py --jobs vae/conv --steps 40

For each job, on the real data and this machine's CPU, in CPU seconds (all threads; less swayed than wall time
by other work on the machine): a training epoch (fit's epoch loop over ``--steps`` steps, scaled to a whole
epoch); and each piece the selection adds (fashion/selection.py), the fastest of ``--repeats``: the FID of one
snapshot against the selection set, copying the generator on the training thread and writing
best_generator.pt, and at the end drawing and measuring the best generator's evaluation samples. Beside them,
in the same run, the snapshot's test-set FID that every job already pays. The share is for the catalogue's
epochs at the default ``snapshot_every``, in the worst case: every snapshot is a new best (a copy and a write
each) and the best is not the final generator (its own 10,000 samples drawn and measured). Embedding the
selection set is once per machine (cached, like the test set's) and printed apart.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

import jobs
from fashion import generator, measure, selection
from fashion.data import load_fashion
from fashion.runtime import make_accelerator
from fashion.task import Noise
from fashion.training import build_task, train_epoch


def cpu_name() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def fastest(fn, repeats: int) -> float:
    """The least CPU time (every thread of this process) of ``repeats`` calls: on a machine shared with other
    work, wall time counts the waits for a core, which the pieces and the training suffer unequally."""
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


def cost(name: str, steps: int, repeats: int, data, yardstick: measure.Yardstick) -> dict:
    job = jobs.get(name)
    config = dataclasses.replace(job.make_config(), cpu=True, limit_batches=steps)
    acc = make_accelerator(config, job.task.auto_precision)
    torch.manual_seed(config.seed)
    task = build_task(job.task, config, acc, job.task.load_data(config))
    train_epoch(task, config, 0)  # warm-up: first-step allocations and kernel choices
    epochs = iter(range(1, 1 + repeats))
    steps_per_epoch = math.ceil(len(data.train.images) / config.batch_size)
    epoch_s = fastest(lambda: train_epoch(task, config, next(epochs)), repeats) / steps * steps_per_epoch
    chosen = selection.Selection(yardstick, data.train.images)
    with torch.no_grad():
        snapshot = (task.metric_samples(config.snapshot_samples, Noise("cpu", 1))[0] * 255).round().to(torch.uint8)
    chosen.ruler.fid(snapshot)  # the selection set's embedding: from the cache from here on
    out = Path(tempfile.mkdtemp(prefix="selection-cost-"))
    spec = generator.stored(task, name)
    pieces = {
        "snapshot_fid_test_s": fastest(lambda: yardstick.fid(snapshot), repeats),  # paid already: the baseline
        "selection_fid_s": fastest(lambda: chosen.ruler.fid(snapshot), repeats),
        "copy_generator_s": fastest(lambda: generator.stored(task, name), repeats),
        "write_best_s": fastest(lambda: generator.write(spec, out / selection.BEST_FILE), repeats),
    }

    def final_measurement():
        with torch.no_grad():
            images, labels = task.metric_samples(config.eval_samples, Noise("cpu", 2))
        yardstick.measure(images, labels, task.label_kind)

    pieces["best_samples_measured_s"] = fastest(final_measurement, max(1, repeats // 2))
    snapshots = config.epochs // config.snapshot_every + (config.epochs % config.snapshot_every > 0)
    per_snapshot = pieces["selection_fid_s"] + pieces["copy_generator_s"] + pieces["write_best_s"]
    selection_s = snapshots * per_snapshot + pieces["best_samples_measured_s"]
    training_s = config.epochs * epoch_s
    return {"job": name, "epochs": config.epochs, "snapshot_every": config.snapshot_every, "snapshots": snapshots,
            "epoch_s": round(epoch_s, 1), **{k: round(v, 3) for k, v in pieces.items()},
            "selection_s": round(selection_s, 1), "training_s": round(training_s),
            "share": f"{selection_s / training_s:.2%}"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", default="gan/gan,vae/mlp", help="catalogue jobs, comma-separated")
    p.add_argument("--steps", type=int, default=30, help="training steps timed per job (scaled to an epoch)")
    p.add_argument("--repeats", type=int, default=3, help="rounds per piece (the fastest is printed)")
    args = p.parse_args(argv)
    data = load_fashion()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="selection-cache-") as cache:
        import os

        os.environ[measure.CACHE_ENV] = cache  # a cold cache: the once-per-machine cost, then warm
        yardstick = measure.Yardstick.shipped(data.test.images)
        yardstick.real()
        t1 = time.perf_counter()
        selection.Selection(yardstick, data.train.images).ruler.real()
        once = time.perf_counter() - t1
        print(f"machine: {cpu_name()}, {torch.get_num_threads()} threads")
        print(f"once per machine: the selection set's embedding, {once:.1f} s (cached afterwards)")
        for name in args.jobs.split(","):
            row = cost(name.strip(), args.steps, args.repeats, data, yardstick)
            print("  ".join(f"{k} {v}" for k, v in row.items()))
    print(f"runtime {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
