"""Train the shipped evaluation network once: ``python -m fashion.evaluator.train``.

The recipe is fixed (:class:`Recipe`) and trains on the 60k training split only; the 10k test split is
touched once, at the end, for the accuracy recorded in the metadata. fp32 on the CPU with a fixed seed and
thread count, so a retrain on the same machine and torch reproduces the run.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# Before torch loads OpenMP (it reads this once): on a shared 2-core machine, threads spinning at OpenMP
# barriers made a step 3x slower than sleeping ones; the numbers computed are the same either way.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from fashion.artifacts import write_bytes, write_json  # noqa: E402
from fashion.data import epoch_batches, load_fashion, to_unit_range  # noqa: E402
from fashion.evaluator import METADATA, NAME, WEIGHTS  # noqa: E402
from fashion.evaluator.network import FEATURE_LAYER, EvalNet  # noqa: E402

TRAINED_BY = "python -m fashion.evaluator.train"


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the trained weights (besides the data, torch and the machine)."""

    seed: int = 0
    epochs: int = 15
    batch_size: int = 128
    optimizer: str = "SGD, Nesterov momentum 0.9"
    peak_lr: float = 0.1
    warmup_fraction: float = 0.15
    "Linear warm-up from 0 to peak_lr over this share of the steps, then a cosine decay to 0 (per step)."
    weight_decay: float = 5e-4
    augmentation: str = "per image: mirrored left-right with probability 1/2, then translated by up to max_shift px"
    max_shift: int = 2
    "Translation by zero padding and a random crop (the background is black, so padding adds nothing visible)."
    width: int = 32
    convs: tuple[int, ...] = (1, 1, 2)
    "Network: 3x3 conv layers per stage (see fashion.evaluator.network)."
    feature_dim: int = 128
    dropout: float = 0.3
    precision: str = "fp32"
    threads: int = 2

    def network_kwargs(self) -> dict:
        return {"width": self.width, "convs": self.convs, "feature_dim": self.feature_dim, "dropout": self.dropout}


def learning_rate(recipe: Recipe, step: int, total: int) -> float:
    warmup = max(1, round(recipe.warmup_fraction * total))
    if step < warmup:
        return recipe.peak_lr * (step + 1) / warmup
    return 0.5 * recipe.peak_lr * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def train_network(recipe: Recipe, images: torch.Tensor, labels: torch.Tensor, log=print) -> tuple[EvalNet, list]:
    """Train on uint8 ``images`` (N, 1, 28, 28); returns the network in eval mode and per-epoch history."""
    # Imported here: the training stack (accelerate, ...) is not needed just to load the evaluator.
    from fashion.classify.task import shift_and_flip
    from fashion.training import Noise

    torch.manual_seed(recipe.seed)
    net = EvalNet(**recipe.network_kwargs())
    opt = torch.optim.SGD(net.parameters(), lr=recipe.peak_lr, momentum=0.9, nesterov=True,
                          weight_decay=recipe.weight_decay)
    steps_per_epoch = len(images) // recipe.batch_size
    total = recipe.epochs * steps_per_epoch
    step, history = 0, []
    net.train()
    for epoch in range(recipe.epochs):
        start, loss_sum, correct = time.perf_counter(), 0.0, 0
        noise = Noise.for_epoch("cpu", recipe.seed, epoch, 0)
        for index in epoch_batches(len(images), recipe.batch_size, epoch, recipe.seed):
            for group in opt.param_groups:
                group["lr"] = learning_rate(recipe, step, total)
            x, y = to_unit_range(images[index]), labels[index]
            x = shift_and_flip(x, noise, recipe.max_shift)
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            loss_sum += loss.item()
            correct += (logits.argmax(1) == y).sum().item()
        seconds = time.perf_counter() - start
        row = {"epoch": epoch + 1, "train_loss": loss_sum / steps_per_epoch,
               "train_accuracy_augmented": correct / (steps_per_epoch * recipe.batch_size), "seconds": seconds}
        history.append(row)
        log(f"epoch {epoch + 1}/{recipe.epochs}: loss {row['train_loss']:.4f}, "
            f"augmented train accuracy {row['train_accuracy_augmented']:.4f}, {seconds:.0f} s")
    return net.eval(), history


def count_errors(net, images: torch.Tensor, labels: torch.Tensor) -> int:
    """Misclassified uint8 images, through the very path the metrics use (``fashion.metrics.embed``)."""
    from fashion.metrics import embed

    predicted = embed(net, to_unit_range(images)).logits.argmax(1)
    return int((predicted != labels).sum())


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def save(out_dir: Path, net: EvalNet, metadata: dict) -> tuple[Path, Path]:
    """Write the weights, then the metadata holding their SHA-256 (so a crash between the two is caught
    by the hash check at load time, never by a silently wrong network)."""
    buf = io.BytesIO()
    state = {"format": 1, "name": metadata["name"], "kwargs": dict(net.hparams),
             "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}
    torch.save(state, buf)
    data = buf.getvalue()
    metadata = {**metadata, "sha256": hashlib.sha256(data).hexdigest(), "weights_bytes": len(data)}
    weights = write_bytes(out_dir / WEIGHTS.name, data)
    return weights, write_json(out_dir / METADATA.name, metadata)


def add_references(weights: Path, data) -> Path:
    """Measure the reference rows (real training images and uniform noise against the test set) with the
    evaluator just written, and keep them in its metadata: they depend on the evaluator and the data alone,
    so every report shows them without measuring them again."""
    from fashion.evaluator import load_evaluator
    from fashion.measure import Yardstick

    network, metadata = load_evaluator("cpu", weights)
    yardstick = Yardstick(network, metadata["name"], metadata["sha256"], data.test.images)
    stamp = yardstick.stamp(len(yardstick.real_images))
    rows = yardstick.references(data.train.images, data.train.labels)
    return write_json(weights.with_suffix(".json"), {**metadata, "references": {stamp.key: rows}})


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=TRAINED_BY, description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", type=Path, default=WEIGHTS.parent,
                   help="where fashion_eval.pt/.json go (default: the package folder, %(default)s)")
    p.add_argument("--epochs", type=int, default=Recipe.epochs, help="default %(default)s (the recipe's)")
    p.add_argument("--train-subset", type=int, default=0, help="train on the first N training images only "
                   "(a quick check; 0: all 60,000)")
    p.add_argument("--data-dir", help="folder with the IDX files (default: $FASHION_MNIST_DIR or the system copy)")
    p.add_argument("--references-only", action="store_true",
                   help="keep the weights; measure the reference rows again into the metadata")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.train_subset < 0:
        p.error("--epochs must be >= 1 and --train-subset >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.references_only:
        print(f"wrote {add_references(args.out_dir / WEIGHTS.name, load_fashion(args.data_dir))}")
        return 0
    recipe = dataclasses.replace(Recipe(), epochs=args.epochs)
    torch.set_num_threads(recipe.threads)
    commit = git_commit()  # before anything is written: the code that trains, not the files it leaves
    data = load_fashion(args.data_dir)
    train, test = data.train.head(args.train_subset), data.test
    print(f"training {NAME} on {len(train)} images, {recipe.epochs} epochs, {recipe.threads} threads", flush=True)
    load_before, start = os.getloadavg()[1], time.perf_counter()
    net, history = train_network(recipe, train.images, train.labels, log=lambda s: print(s, flush=True))
    train_seconds = time.perf_counter() - start
    errors = count_errors(net, test.images, test.labels)
    metadata = {
        "name": NAME, "feature_layer": FEATURE_LAYER, "feature_dim": net.feature_dim,
        "parameters": sum(p.numel() for p in net.parameters()),
        "recipe": dataclasses.asdict(recipe), "train_images": len(train), "test_images": len(test),
        "test_accuracy": round(1 - errors / len(test), 6), "test_errors": errors,
        "train_seconds": round(train_seconds, 1), "history": history,
        # The load average says how much other work shared the cores, i.e. how far train_seconds is inflated.
        "machine": {"cpu": cpu_model(), "threads": torch.get_num_threads(), "os_cpus": os.cpu_count(),
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                    "load_average_5min": [round(load_before, 2), round(os.getloadavg()[1], 2)]},
        "torch": torch.__version__, "python": sys.version.split()[0], "git_commit": commit,
        "trained_by": TRAINED_BY,
    }
    weights, meta = save(args.out_dir, net, metadata)
    add_references(weights, data)
    print(f"test accuracy {metadata['test_accuracy']:.4f} ({errors} errors of {len(test)}), "
          f"trained in {train_seconds:.0f} s; wrote {weights} and {meta}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
