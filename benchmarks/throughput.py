#!/usr/bin/env python
"""GAN training throughput, side by side in one run, for the same networks and batches:

  baseline  a reference-style loop: torchvision FashionMNIST-style dataset reading the IDX files, a
            DataLoader with per-sample ToTensor + Normalize, ``.item()`` on every loss every step
  step      the bare training step (Task.train_step on batches already on the device), fast path off
            (``fast=False``: torch's default kernels and allocator)
  fast      the same bare step with the fast path on, as jobs run by default (fused optimiser steps; on the
            CPU, glibc's malloc keeping freed buffers)
  compiled  the fast step with the training networks compiled (config ``compile``: torch.compile, CUDA
            graphs on a GPU; compiling happens in the warm-up steps)
  loop      fit's epoch loop (fashion.training.train_epoch: seeded batches, status ticks, loss summary)
  job       a whole short job: ``fit`` for one epoch of ``--job-steps`` steps on the real data, timed from
            the call to its return (data loading, networks, per-epoch and final pictures, snapshot,
            checkpoint, GIF and generator file included; the interpreter's and torch's import excluded)

Every mode runs in its own interpreter (this script with ``--only``): what one mode leaves in a process
(the fast path's allocator setting, torch's one-time imports and caches) cannot speed up or slow down the
next. loop and job run with the fast path, as jobs do; their ratios are taken to ``fast``.

    python benchmarks/throughput.py                              # all ten GANs
    python benchmarks/throughput.py --gans gan,wgan_gp --steps 40 --precision bf16
    python benchmarks/throughput.py --gans gan --steps 150 --repeats 5   # medians; loop/fast paired per round

Figures are images/s over the timed steps after warm-up, and the ratio to the baseline.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import jobs
from fashion.data import DataError, Dataset, Split, find_data_dir, load_fashion
from fashion.gans import REGISTRY
from fashion.runtime import make_accelerator, prepare_process
from fashion.task import Noise, prepare_task
from fashion.training import fit, train_epoch
from fashion.writer import StatusTicker, Writer

MODES = ("baseline", "step", "fast", "compiled", "loop", "job")


def synthetic(n: int = 4096) -> Dataset:
    images = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8)
    return Dataset(Split(images, torch.randint(0, 10, (n,))), Split(images[:512], torch.randint(0, 10, (512,))))


def bench_config(name: str, args, **changes):
    """The catalogue job's config at the benchmark's batch size, precision and device (fast path on, as
    jobs run, unless ``changes`` turns it off)."""
    return dataclasses.replace(jobs.get(f"gan/{name}").make_config(), batch_size=args.batch_size,
                               precision=args.precision, cpu=args.cpu, **changes)


def build(name: str, data: Dataset, args, fast: bool = True, compile: bool = False):
    config = bench_config(name, args, limit_batches=args.steps, fast=fast, compile=compile)
    prepare_process(config)  # as a job's process does (each mode runs in its own interpreter)
    acc = make_accelerator(config, REGISTRY[name].auto_precision)
    data = Dataset(data.train.to(acc.device), data.test.to(acc.device))
    return config, acc, prepare_task(REGISTRY[name](config, acc, data), acc)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_step(name, data, args, fast: bool, compile: bool = False) -> float:
    """The bare step: slices of tensors already on the device, no bookkeeping (compiling happens in warm-up)."""
    config, acc, task = build(name, data, args, fast, compile)
    images, labels = task.data.train.images, task.data.train.labels
    noise, n, bs = Noise(acc.device, 0), len(images), config.batch_size

    def step(i):
        lo = (i * bs) % (n - bs)
        return task.train_step(images[lo:lo + bs], labels[lo:lo + bs], noise)

    for i in range(args.warmup):
        step(i)
    _sync(acc.device)
    t0 = time.perf_counter()
    for i in range(args.steps):
        step(i)
    _sync(acc.device)
    return args.steps * bs / (time.perf_counter() - t0)


def time_loop(name, data, args) -> float:
    """fit's epoch loop as jobs run it: one warm-up epoch of ``warmup`` steps, then one timed epoch."""
    config, acc, task = build(name, data, args)
    with tempfile.TemporaryDirectory(prefix="throughput-") as tmp:
        writer = Writer()
        tick = StatusTicker(Path(tmp), writer.submit)
        train_epoch(task, dataclasses.replace(config, limit_batches=args.warmup), 0, tick)
        _sync(acc.device)
        t0 = time.perf_counter()
        train_epoch(task, config, 1, tick)  # ends in the epoch's one host sync
        seconds = time.perf_counter() - t0
        writer.close()
    return args.steps * config.batch_size / seconds


def time_job(name, args) -> tuple[float | None, float | None]:
    """A whole job as ``--local`` runs it (one epoch of ``job_steps`` steps), start to finish: images/s,
    and the seconds spent outside the epoch loop (start-up, pictures, evaluation samples, files)."""
    if not args.job_steps:
        return None, None
    config = bench_config(name, args, epochs=1, limit_batches=args.job_steps)
    with tempfile.TemporaryDirectory(prefix="throughput-job-") as tmp:
        t0 = time.perf_counter()
        metrics = fit(REGISTRY[name], config, Path(tmp) / name, f"gan/{name}")
        seconds = time.perf_counter() - t0
    return args.job_steps * config.batch_size / seconds, seconds - metrics["seconds_per_epoch"] * metrics["epochs"]


def time_baseline(name, data_dir, args) -> float:
    """The reference collection's loop: Dataset + DataLoader with per-sample transforms, .item() each step."""
    from torch.utils.data import DataLoader
    from torchvision import transforms

    config, acc, task = build(name, synthetic(256), args, fast=False)
    if data_dir is not None:
        dataset = IdxFashionMNIST(data_dir, transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5], [0.5])]))
    else:
        dataset = FashionMNISTLike(transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5], [0.5])]))
    loader = DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=True)
    noise = Noise(acc.device, 0)
    batches = iter(loader)

    def step():
        x, y = next(batches)
        # The tasks take uint8 images; the reference feeds floats in [-1, 1]: map back so the step is identical.
        x = ((x + 1) * 127.5).round().to(torch.uint8).to(acc.device)
        terms = task.train_step(x, y.to(acc.device), noise)
        return {k: v.item() for k, v in terms.items()}  # the reference prints/logs every step

    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    return args.steps * config.batch_size / (time.perf_counter() - t0)


def _fashion_mnist_class():
    from torchvision.datasets import FashionMNIST

    class Idx(FashionMNIST):
        """torchvision's FashionMNIST over a folder of IDX files (its own layout wants root/FashionMNIST/raw)."""

        def __init__(self, folder, transform):
            self.folder = Path(folder)
            super().__init__(str(folder), train=True, transform=transform, download=False)

        @property
        def raw_folder(self) -> str:
            return str(self.folder)

        def _check_exists(self) -> bool:
            return True

        def _load_data(self):
            from fashion.data import load_split

            images, labels = load_split("train", self.folder)
            return torch.from_numpy(images.copy()), torch.from_numpy(labels)

    return Idx


def IdxFashionMNIST(folder, transform):
    return _fashion_mnist_class()(folder, transform)


def FashionMNISTLike(transform):
    """Random uint8 images behind the same per-sample PIL + transform path, when the data is missing."""
    Idx = _fashion_mnist_class()
    dataset = Idx.__new__(Idx)
    dataset.transform, dataset.target_transform = transform, None
    dataset.data, dataset.targets = torch.randint(0, 256, (4096, 28, 28), dtype=torch.uint8), torch.randint(0, 10, (4096,))
    return dataset


def one_mode(mode: str, name: str, args) -> dict:
    """``mode`` of GAN ``name`` in this process: {"value": images/s, "outside": job seconds outside the loop}."""
    data, data_dir, _ = load_data()
    if mode == "job":
        value, outside = time_job(name, args) if data_dir is not None else (None, None)
        return {"value": value, "outside": outside}
    run = {"baseline": lambda: time_baseline(name, data_dir, args),
           "step": lambda: time_step(name, data, args, fast=False),
           "fast": lambda: time_step(name, data, args, fast=True),
           "compiled": lambda: time_step(name, data, args, fast=True, compile=True),
           "loop": lambda: time_loop(name, data, args)}[mode]
    return {"value": run(), "outside": None}


def in_own_process(argv: list[str], mode: str, name: str) -> dict:
    """:func:`one_mode` in a fresh interpreter running this script with ``--only``."""
    command = [sys.executable, str(Path(__file__).resolve()), *argv, "--gans", name, "--repeats", "1", "--only", mode]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{mode} of {name} failed ({' '.join(command)}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(name: str, argv: list[str], args) -> dict:
    """Each mode ``--repeats`` times, the modes interleaved in every round so that a slow spell of a shared
    machine hits them alike; a mode's figure is its median over the rounds, and ``rounds`` keeps them all."""
    rounds = []
    for _ in range(args.repeats):
        row = {"job": None, "job_outside_loop_s": None}
        for mode in [m for m in ("job", *MODES[:-1]) if m in args.modes and (m != "job" or args.job_steps)]:
            result = in_own_process(argv, mode, name)
            row[mode] = result["value"]
            if mode == "job":
                row["job_outside_loop_s"] = result["outside"]
        rounds.append(row)
    keys = ("job", "job_outside_loop_s", *MODES)
    medians = {key: median([r[key] for r in rounds if r.get(key) is not None]) for key in keys}
    return {"model": name, **medians, "rounds": rounds}


def load_data() -> tuple[Dataset, Path | None, str]:
    try:
        return load_fashion(), find_data_dir(), "Fashion-MNIST"
    except DataError:
        return synthetic(), None, "random images (Fashion-MNIST not found)"


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def paired_ratio(row: dict, mode: str, to: str = "fast") -> str:
    """``mode / to`` of each round (the two ran minutes apart at most): the median, and the range if several."""
    ratios = [r[mode] / r[to] for r in row["rounds"] if r.get(mode) and r.get(to)]
    if not ratios:
        return ""
    spread = f" [{min(ratios):.3f}-{max(ratios):.3f}]" if len(ratios) > 1 else ""
    return f"{row['model']} {median(ratios):.3f}{spread}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gans", default=",".join(sorted(REGISTRY)), help="comma-separated GAN names (default: all)")
    p.add_argument("--steps", type=int, default=40, help="timed steps per model and mode")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--precision", default="no", choices=("no", "bf16", "fp16"))
    p.add_argument("--cpu", action="store_true", help="stay on the CPU even if a GPU is present")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--job-steps", type=int, default=300,
                   help="steps of the whole-job mode (one epoch, Fashion-MNIST only; 0: skip it)")
    p.add_argument("--repeats", type=int, default=1,
                   help="rounds of every mode, interleaved; figures are medians, ratios paired per round")
    p.add_argument("--json", action="store_true", help="also print one JSON line per model")
    p.add_argument("--modes", default=",".join(MODES), help=f"modes to time, comma-separated (default: {','.join(MODES)}; "
                   "baseline is always timed: every figure is a ratio to it)")
    p.add_argument("--only", choices=MODES, help=argparse.SUPPRESS)  # one mode of one GAN: what measure() runs
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats {args.repeats}: give 1 or more rounds")
    args.modes = {"baseline", *(m.strip() for m in args.modes.split(",") if m.strip())}
    if unknown_modes := args.modes - set(MODES):
        p.error(f"--modes: unknown {', '.join(sorted(unknown_modes))}; choose from {', '.join(MODES)}")
    names = [n.strip() for n in args.gans.split(",") if n.strip()]
    unknown = set(names) - set(REGISTRY)
    if unknown:
        p.error(f"unknown GAN {sorted(unknown)}; choose from {', '.join(sorted(REGISTRY))}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.only:
        print(json.dumps(one_mode(args.only, names[0], args)))
        return 0
    _, data_dir, source = load_data()

    from rich.console import Console
    from rich.table import Table

    cuda = torch.cuda.is_available() and not args.cpu
    device = torch.cuda.get_device_name(0) if cuda else f"CPU, {torch.get_num_threads()} threads"
    rounds = f", median of {args.repeats} rounds" if args.repeats > 1 else ""
    table = Table(title=f"GAN training throughput, images/s (x baseline): {device}, {args.precision}, "
                        f"batch {args.batch_size}, {args.steps} steps{rounds}, {source}")
    table.add_column("model")
    for mode in MODES:
        table.add_column(mode, justify="right")
    rows = []
    for name in names:
        r = measure(name, argv, args)
        rows.append(r)
        cells = [f"{r['baseline']:.0f}"]
        for mode in MODES[1:]:
            v = r[mode]
            cells.append(f"{v:.0f} ({v / r['baseline']:.2f}x)" if v else
                         "skipped" if mode not in args.modes or data_dir is not None else "n/a (needs Fashion-MNIST)")
        table.add_row(name, *cells)
        if args.json:
            print(json.dumps({**r, "device": device, "precision": args.precision, "batch": args.batch_size}))
    Console().print(table)
    for mode, to in (("fast", "step"), ("compiled", "fast"), ("loop", "fast"), ("job", "fast")):
        ratios = [text for r in rows if (text := paired_ratio(r, mode, to))]
        if ratios:
            Console().print(f"{mode} / {to}{' per round, median [range]' if args.repeats > 1 else ''}: "
                            f"{', '.join(ratios)}", markup=False, highlight=False)
    outside = [f"{r['model']} {r['job_outside_loop_s']:.1f}" for r in rows if r["job"]]
    if outside:
        Console().print(f"job seconds outside the epoch loop: {', '.join(outside)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
