#!/usr/bin/env python
"""Training throughput of every GAN (images/s over timed steps after warm-up), on this machine's device.

    python benchmarks/throughput.py                     # all GANs, fp32, batch 64
    python benchmarks/throughput.py gan wgan_gp --precision bf16 --steps 30

Uses the real training step (Task.train_step under accelerate) on the real data if present, else on
random images of the same shape; prints a rich table and optionally a JSON line per model.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

import jobs
from fashion.data import DataError, Dataset, Split, load_fashion
from fashion.gans import REGISTRY
from fashion.training import Noise, make_accelerator


def synthetic(n: int = 4096) -> Dataset:
    images = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8)
    return Dataset(Split(images, torch.randint(0, 10, (n,))), Split(images[:512], torch.randint(0, 10, (512,))))


def measure(name: str, data: Dataset, args) -> dict:
    config = dataclasses.replace(jobs.get(f"gan/{name}").make_config(), batch_size=args.batch_size,
                                 precision=args.precision, cpu=args.cpu)
    acc = make_accelerator(config)
    task = REGISTRY[name](config, acc, data)
    for owner in (task.nets, task.opts):
        for key in list(owner):
            owner[key] = acc.prepare(owner[key])
    images = data.train.images.to(acc.device)
    labels = data.train.labels.to(acc.device)
    noise = Noise(acc.device, 0)
    n, bs = len(images), config.batch_size

    def step(i):
        lo = (i * bs) % (n - bs)
        return task.train_step(images[lo:lo + bs], labels[lo:lo + bs], noise)

    for i in range(args.warmup):
        step(i)
    sync = torch.cuda.synchronize if acc.device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for i in range(args.steps):
        step(i)
    sync()
    seconds = time.perf_counter() - t0
    return {"model": name, "device": acc.device.type, "precision": acc.mixed_precision, "batch": bs,
            "ms_per_step": 1000 * seconds / args.steps, "images_per_s": args.steps * bs / seconds,
            "epoch_s": (60000 // bs) * seconds / args.steps}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", default=sorted(REGISTRY), help="GAN names (default: all)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--precision", default="no", choices=("no", "bf16", "fp16"))
    p.add_argument("--cpu", action="store_true", help="stay on the CPU even if a GPU is present")
    p.add_argument("--json", action="store_true", help="also print one JSON line per model")
    args = p.parse_args(argv)
    unknown = set(args.models) - set(REGISTRY)
    if unknown:
        p.error(f"unknown GAN {sorted(unknown)}; choose from {', '.join(sorted(REGISTRY))}")
    try:
        data, source = load_fashion(), "Fashion-MNIST"
    except DataError:
        data, source = synthetic(), "random images (Fashion-MNIST not found)"

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"GAN training throughput ({source}, {torch.get_num_threads()} threads)")
    for col in ("model", "device", "precision", "batch", "ms/step", "images/s", "epoch (60k) s"):
        table.add_column(col, justify="right")
    for name in args.models:
        r = measure(name, data, args)
        table.add_row(r["model"], r["device"], r["precision"], str(r["batch"]), f"{r['ms_per_step']:.1f}",
                      f"{r['images_per_s']:.0f}", f"{r['epoch_s']:.0f}")
        if args.json:
            print(json.dumps(r))
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
