#!/usr/bin/env python
"""Does the compiled path (config ``compile``) train what eager training trains, on this machine's device?
For every GAN: a few plain-SGD steps of batches of 64, eager and compiled (CUDA graphs on a GPU), from the
same weights and noise; printed: the largest relative difference of the logged losses, and the largest
weight difference as a fraction of how far eager training moved the weights.

    python benchmarks/compiled_equivalence.py                 # every GAN, on the GPU if there is one
    python benchmarks/compiled_equivalence.py --gans gan --steps 2 --cpu

tests/test_compile.py holds the CPU equivalence the test suite checks; this script is its GPU counterpart,
run where a GPU is (the tests never need one).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import torch

import jobs
from fashion.data import load_fashion
from fashion.gans import REGISTRY
from fashion.runtime import make_accelerator
from fashion.task import Noise, prepare_task


def train(name: str, compile: bool, steps: int, cpu: bool) -> tuple[list[dict], dict, dict, float]:
    job = jobs.get(f"gan/{name}")
    config = dataclasses.replace(job.make_config(), compile=compile, cpu=cpu, precision="no")
    acc = make_accelerator(config, job.task.auto_precision)
    data = load_fashion()
    data.train = data.train.to(acc.device)
    torch.manual_seed(0)
    task = job.task(config, acc, data)
    task.opts = {n: torch.optim.SGD(net.parameters(), lr=1e-3) for n, net in task.nets.items()}
    before = {n: torch.cat([p.detach().flatten() for p in net.parameters()]).cpu() for n, net in task.nets.items()}
    task = prepare_task(task, acc)
    steps = max(steps, task.config.n_critic + 1)
    t0 = time.perf_counter()
    losses = []
    for i in range(steps):
        terms = task.train_step(data.train.images[64 * i:64 * (i + 1)], data.train.labels[64 * i:64 * (i + 1)],
                                Noise(acc.device, i))
        losses.append({k: float(v) for k, v in terms.items()})
    seconds = time.perf_counter() - t0
    after = {n: torch.cat([p.detach().flatten() for p in task.unwrap(n).parameters()]).cpu() for n in task.nets}
    return losses, before, after, seconds


def compare(name: str, steps: int, cpu: bool) -> dict:
    eager_losses, before, eager, _ = train(name, False, steps, cpu)
    torch.compiler.reset()
    compiled_losses, _, compiled, seconds = train(name, True, steps, cpu)
    loss_gap = max(abs(b[k] - a[k]) / max(abs(a[k]), 1e-6) for a, b in zip(eager_losses, compiled_losses) for k in a)
    weight_gap = max(float((compiled[n] - eager[n]).abs().max() / (eager[n] - before[n]).abs().max())
                     for n in eager)
    return {"model": name, "steps": len(eager_losses), "loss_rel_diff": loss_gap, "weights_vs_travel": weight_gap,
            "compiled_seconds_incl_compile": round(seconds, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gans", default=",".join(sorted(REGISTRY)))
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--cpu", action="store_true", help="stay on the CPU even if a GPU is present")
    args = p.parse_args(argv)
    device = "cpu" if args.cpu or not torch.cuda.is_available() else torch.cuda.get_device_name()
    print(f"device: {device}; torch {torch.__version__}", flush=True)
    for name in args.gans.split(","):
        print(json.dumps(compare(name.strip(), args.steps, args.cpu or not torch.cuda.is_available())), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
