#!/usr/bin/env python
"""How long the report takes to collate runs whose jobs measured themselves, and how long a job takes to
measure itself; every figure printed with the machine, each size timed in its own interpreter.

    python benchmarks/collate.py                       # 30 jobs, 1,000 jobs, a 3,000-job sweep; self-measurement
    python benchmarks/collate.py --sizes 30 --no-measure

A synthetic run is what finished jobs leave for the report: status, config, history, one sample grid and
two snapshots per job, and metrics.json holding the job's own numbers (its final generator's and its best
checkpoint's) under the shipped evaluator's stamp (tiny evaluation and snapshot files stand in for the real
ones, which the report does not read when the numbers are there). ``--aggregate`` of such a run measures nothing: it is the collation alone.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fashion import artifacts, runfolder, selection
from fashion.data import load_fashion
from fashion.measure import Yardstick

GANS = ("gan/gan", "gan/lsgan", "gan/wgan", "gan/wgan_gp", "gan/dragan", "gan/cgan", "gan/acgan", "gan/infogan",
        "gan/ebgan", "gan/began")
SIZES = {30: (10, 0, 3), 1000: (10, 0, 100), 3000: (10, 100, 3)}
"Jobs -> (models, trials per model (0: no sweep), seeds)."


def make_run(run: Path, models: int, trials: int, seeds: int, yardstick: Yardstick, epochs: int = 10) -> int:
    """Write a run of finished, measured jobs: ``models`` GANs x ``trials`` sweep trials x ``seeds`` seeds."""
    import jobs

    gen, gen_best = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
    grid = (torch.rand(3, 62, 62, generator=gen) * 255).to(torch.uint8)
    tiny = runfolder.EvalSamples(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), None, ["a"], "class", 0, epochs)
    stamp = dataclasses.asdict(yardstick.stamp(10_000))
    best_stamp = selection.best_stamp(yardstick.stamp(10_000))
    snap_stamp = dataclasses.asdict(yardstick.stamp(2000))
    sweep = {"seed": 0, "models": {}}
    count = 0
    for m, model in enumerate(GANS[:models]):
        names = [f"{model}.t{t:03d}" for t in range(trials)] if trials else [model]
        if trials:
            sweep["models"][model] = {"space": ["lr_g+lr_d=loguniform(1e-05,0.01)"],
                                      "trials": {n.rsplit(".", 1)[1]: {"lr_g": 1e-4 * (1 + i), "lr_d": 1e-4 * (1 + i)}
                                                 for i, n in enumerate(names)}}
        config = dataclasses.asdict(jobs.get(model).make_config({"epochs": str(epochs)}))
        for name in names:
            for seed in range(seeds):
                job = name if seed == 0 else f"{name}.seed{seed}"
                folder = run / job
                fid = 20.0 + m + float(torch.rand(1, generator=gen)) * 5
                values = {"fid": fid, "kid": fid / 1000, "kid_std": 0.001, "precision": 0.7, "recall": 0.5,
                          "density": 0.9, "coverage": 0.6, "is": 7.0, "is_std": 0.1}
                points = [{"epoch": e, "fid": fid * (1 + 10 / e)} for e in (5, 10)]
                best_fid = fid - float(torch.rand(1, generator=gen_best)) * 4  # the best snapshot (epoch 5)
                chosen = {"split": "train", "images": 10_000, "seed": 0, "data": "", "evaluator": "",
                          "points": [{"epoch": 5, "fid": best_fid}, {"epoch": 10, "fid": fid}],
                          "best": {"epoch": 5, "fid": best_fid, "samples": 2000}}
                artifacts.write_json(folder / "config.json", {"job": job, "config": {**config, "seed": seed},
                                                              "device": "cpu", "world_size": 1})
                artifacts.write_text(folder / "history.csv", "epoch,D,G,seconds,images_per_s\n"
                                     + "".join(f"{e},0.5,1.5,100,600\n" for e in range(1, epochs + 1)))
                artifacts.save_grid(grid.float() / 127.5 - 1, folder / f"samples/epoch_{epochs:03d}.png", nrow=3)
                runfolder.write_eval_samples(folder, tiny)
                for e in (5, 10):
                    runfolder.write_snapshot(folder, e, tiny.images)
                artifacts.write_json(folder / "metrics.json", {
                    "job": job, "state": "completed", "epochs": epochs, "seconds_per_epoch": 100.0,
                    "quality": {yardstick.stamp(10_000).key: {"stamp": stamp, "epoch": epochs, "values": values},
                                best_stamp.key: {"stamp": dataclasses.asdict(best_stamp), "epoch": epochs,
                                                 "checkpoint_epoch": 5, "selection_fid": best_fid,
                                                 "values": {**values, "fid": best_fid}}},
                    "fid_curve": {yardstick.stamp(2000).key: {"stamp": snap_stamp, "points": points}},
                    "selection": chosen})
                artifacts.write_status(folder, "completed", job=job, epoch=epochs, epochs=epochs)
                count += 1
    if trials:
        artifacts.write_json(run / "sweep.json", sweep)
    return count


def cpu_name() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def time_collation(size: int, folder: Path, yardstick: Yardstick) -> dict:
    models, trials, seeds = SIZES[size]
    run = folder / f"run{size}"
    jobs_written = make_run(run, models, trials, seeds, yardstick)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "launch.py", "--aggregate", run.name, "--outputs", str(folder)],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"--aggregate of the {size}-job run failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    measured = done.stdout.count("measured ")
    return {"jobs": jobs_written, "sweep": bool(trials), "aggregate_s": round(seconds, 1), "measured_jobs": measured}


def time_measurement(yardstick: Yardstick, repeats: int) -> dict:
    """What a finished job spends measuring itself: its 10,000 evaluation samples (every metric) and one
    2,000-image snapshot (FID), after the real set is cached as it is on a machine that ran a job before."""
    test = load_fashion().test.images
    yardstick.real()
    fake, snapshot = test.flip(-1), test[:2000].flip(-2)  # stand-ins: real images, mirrored
    full, snap = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        yardstick.measure(fake)
        full.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        yardstick.fid(snapshot)
        snap.append(time.perf_counter() - t0)
    return {"evaluation_samples_s": round(min(full), 2), "snapshot_s": round(min(snap), 2), "repeats": repeats}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="30,1000,3000", help="runs to collate, by number of jobs (30, 1000, 3000)")
    p.add_argument("--no-measure", action="store_true", help="skip timing the self-measurement")
    p.add_argument("--repeats", type=int, default=3, help="self-measurement rounds (the fastest is printed)")
    p.add_argument("--json", action="store_true", help="one JSON line per figure")
    args = p.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    machine = torch.cuda.get_device_name() if device == "cuda" else f"{cpu_name()}, {torch.get_num_threads()} threads"
    yardstick = Yardstick.shipped(load_fashion().test.images, device)
    rows = []
    with tempfile.TemporaryDirectory(prefix="collate-") as tmp:
        for size in (int(s) for s in args.sizes.split(",") if s):
            if size not in SIZES:
                p.error(f"--sizes: {size} is not one of {', '.join(map(str, SIZES))}")
            rows.append({"figure": "aggregate", **time_collation(size, Path(tmp), yardstick)})
    if not args.no_measure:
        rows.append({"figure": "self-measurement", "device": device, **time_measurement(yardstick, args.repeats)})
    print(f"machine: {machine}")
    for row in rows:
        print(json.dumps(row) if args.json else "  ".join(f"{k} {v}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
