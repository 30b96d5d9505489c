"""Standalone generators: what a finished generative job keeps (``generator.pt``), and drawing from it.

``generator.pt`` holds the generating network's weights only (no discriminator, encoder or optimiser
state) with what rebuilds it: a dotted path to its class or builder and the keyword arguments, the latent
layout and distribution, and for conditional models the class names with the condition vector of each.
Everything is plain Python types and tensors, so ``torch.load(path, weights_only=True)`` reads it.
Drawing needs neither the training data nor the job's config: ``python launch.py --sample RUN/JOB``.
"""
from __future__ import annotations

import importlib
import io
from pathlib import Path

import torch
from torch import nn

from fashion import artifacts

FILE = "generator.pt"
FORMAT = 1
MAX_SAMPLES = 10_000
GRID = 10


class SampleError(ValueError):
    """A request the sampler cannot serve; the message names the problem and the fix."""


def dotted(obj) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def vae_decoder(arch: str, shape, latent: int, cond_dim: int, filters, hidden) -> nn.Module:
    """A VAE job's decoder alone (the builder stored in a VAE's generator.pt)."""
    from fashion.vae.networks import build

    return build(arch, shape, latent, cond_dim, filters, hidden)[1]


def export(task, job_dir, job_name: str, file: str = FILE, **extra) -> Path | None:
    """Write ``generator.pt`` (or ``file``) for a task whose ``generator_spec`` describes its generating
    network; ``extra``: more plain fields to keep beside it."""
    spec = stored(task, job_name, **extra)
    return None if spec is None else write(spec, Path(job_dir) / file)


def stored(task, job_name: str, **extra) -> dict | None:
    """What a generator file keeps, its weights copied to the CPU (so training may go on while it is written)."""
    spec = task.generator_spec()
    if spec is None:
        return None
    net = spec.pop("net")
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    spec.update(format=FORMAT, job=job_name, builder=spec.get("builder") or dotted(type(net)),
                state_dict=state, params=sum(p.numel() for p in net.parameters()), **extra)
    if spec.get("conditions") is not None:
        spec["conditions"] = spec["conditions"].detach().float().cpu()
    return spec


def write(spec: dict, path) -> Path:
    """A stored generator written atomically to ``path``."""
    buf = io.BytesIO()
    torch.save(spec, buf)
    return artifacts.write_bytes(Path(path), buf.getvalue())


def load(path) -> tuple[dict, nn.Module]:
    """The stored spec and the rebuilt network in eval mode, on the CPU."""
    spec = torch.load(path, map_location="cpu", weights_only=True)
    module, _, name = spec["builder"].rpartition(".")
    if not module.startswith("fashion."):  # the path is data from a file: never call just anything it names
        raise SampleError(f"{path}: builder {spec['builder']!r} is not part of this suite; the file is not "
                          "a generator this suite wrote")
    builder = getattr(importlib.import_module(module), name)
    net = builder(**spec["kwargs"])
    net.load_state_dict(spec["state_dict"])
    return spec, net.eval()


def class_index(spec: dict, label: str) -> int:
    names = list(spec.get("classes") or [])
    lowered = [n.lower() for n in names]
    if label.lower() not in lowered:
        raise SampleError(f"--label {label!r}: not a class of {spec['job']}; choose one of "
                          + ", ".join(repr(n) for n in names))
    return lowered.index(label.lower())


@torch.no_grad()
def draw(spec: dict, net: nn.Module, n: int, label: str | None = None, seed: int = 0) -> torch.Tensor:
    """n images in [0, 1] (N, C, H, W), the same for the same seed; conditional models draw ``label`` (by
    name) or, without one, a random class per image."""
    if not 1 <= n <= MAX_SAMPLES:
        raise SampleError(f"-n {n}: draw between 1 and {MAX_SAMPLES} images")
    if spec["kind"] == "colorize":
        raise SampleError(f"{spec['job']} colours grey images: give --input grey.png (or none for test images)")
    if label is not None and not spec["conditional"]:
        raise SampleError(f"{spec['job']} is unconditional: drop --label (conditional jobs, e.g. gan/cgan, "
                          "gan/acgan, vae/cond, take one)")
    gen = torch.Generator().manual_seed(seed)
    condition = None
    if spec["conditional"]:
        conditions = spec["conditions"]
        which = (torch.full((n,), class_index(spec, label), dtype=torch.long) if label is not None
                 else torch.randint(len(conditions), (n,), generator=gen))
        condition = conditions[which]
    parts = []
    for part in spec["latent"]:
        if part["kind"] == "uniform":
            parts.append(torch.rand(n, part["size"], generator=gen) * (part["high"] - part["low"]) + part["low"])
        elif part["kind"] == "normal":
            parts.append(torch.randn(n, part["size"], generator=gen))
        elif part["kind"] == "onehot":  # an unsupervised categorical code (infoGAN), drawn uniformly
            parts.append(nn.functional.one_hot(torch.randint(part["size"], (n,), generator=gen), part["size"]).float())
        elif part["kind"] == "condition":
            parts.append(condition)
        else:
            raise SampleError(f"{spec['job']}: unknown latent part {part['kind']!r}; this suite is older than the file")
    latent = torch.cat(parts, 1)
    chunks = []
    for start in range(0, n, 500):
        cond = None if condition is None else condition[start:start + 500]
        chunks.append(_forward(spec, net, latent[start:start + 500], cond))
    return torch.cat(chunks).clamp(0, 1)


def _forward(spec, net, latent, condition):
    if spec["condition_input"] == "argument":  # VAE decoders take (z, c) and return logits
        return torch.sigmoid(net(latent, condition).float())
    return (net(latent).float() + 1) / 2


@torch.no_grad()
def colour(net: nn.Module, grey01: torch.Tensor) -> torch.Tensor:
    """The colorizer's RGB (N, 3, H, W) in [0, 1] for grey images (N, 1, H, W) in [0, 1]."""
    return ((net(grey01 * 2 - 1).float() + 1) / 2).clamp(0, 1)


def read_grey(path, size: tuple[int, int]) -> torch.Tensor:
    """A picture file as one grey image (1, H, W) in [0, 1], resized to the model's size if needed."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("L")
            if img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    except (OSError, UnidentifiedImageError) as err:
        raise SampleError(f"--input {path}: cannot read it as an image ({err}); give a PNG or JPEG") from err
    return data.view(1, *size).float() / 255


# -- the --sample command -----------------------------------------------------------------------
def unfinished_reason(job_dir: Path, run: str, job: str, outputs: Path = Path("outputs"),
                      generative: bool = True) -> str:
    """Why a job folder has no generator.pt, and how to get one."""
    if not generative:
        return f"{job} is not a generative job: it draws nothing (generative jobs: gans, vaes, colorize)"
    status = artifacts.read_status(job_dir)
    state, epoch, epochs = status.get("state", "unknown"), status.get("epoch", "?"), status.get("epochs", "?")
    elsewhere = f" --outputs {outputs}" if outputs != Path("outputs") else ""
    relaunch = f"python launch.py {job} --run {run}{elsewhere}"
    fixes = {
        "queued": f"it is still queued; wait for it (python launch.py --status {run})",
        "running": f"it is still running (epoch {epoch}/{epochs}); wait for it to finish "
                   f"(python launch.py --status {run})",
        "failed": f"it failed at epoch {epoch}/{epochs}; see its log (python launch.py --status {run}), then "
                  f"`{relaunch}` resumes it from its last checkpoint",
        "cancelled": f"it was cancelled at epoch {epoch}/{epochs}; `{relaunch}` resumes it from its last checkpoint",
        "diverged": f"it diverged at epoch {epoch} ({status.get('reason', 'non-finite loss')}); retrain it, "
                    f"perhaps with other settings: `{relaunch} --force`",
        "completed": f"it completed before jobs kept their generator; retrain it: `{relaunch} --force`",
    }
    return f"{job_dir} has no {FILE}: " + fixes.get(state, f"it left no status; launch it: `{relaunch}`")


def sample_command(outputs, target: str, n: int = 100, label: str | None = None, seed: int | None = None,
                   out=None, inputs=(), data_dir: str | None = None, generative: bool = True) -> Path:
    """``launch.py --sample RUN/JOB``: draw from a finished job into one PNG (written atomically).
    ``generative`` is False for a job the caller knows draws nothing (the catalogue says so)."""
    outputs = Path(outputs)
    run, _, job = target.strip("/").partition("/")
    if not run or not job:
        raise SampleError(f"--sample {target!r}: write RUN/JOB, e.g. --sample default/gan/cgan")
    job_dir, run_dir = outputs / run / job, outputs / run
    if not any((job_dir / marker).is_file() for marker in ("status.json", "config.json")):
        known = sorted(p.parent.relative_to(run_dir).as_posix() for p in run_dir.rglob("status.json")) \
            if run_dir.is_dir() else []
        raise SampleError(f"--sample {target!r}: no job folder {job_dir}; jobs in {run_dir}: "
                          f"{', '.join(known) or 'none'} (--outputs sets the root, now {outputs})")
    path = job_dir / FILE
    if not path.is_file():
        raise SampleError(unfinished_reason(job_dir, run, job, outputs, generative))
    out = Path(out) if out else Path(f"{job.replace('/', '-')}-samples.png")
    if out.exists() and outputs.resolve() in out.resolve().parents:
        raise SampleError(f"--out {out}: would overwrite a file in the outputs tree; choose another path")
    spec, net = load(path)
    seed = 0 if seed is None else seed
    if spec["kind"] == "colorize":
        if label is not None:
            raise SampleError(f"{job} colours grey images and takes no --label; give --input grey.png")
        if not 1 <= n <= MAX_SAMPLES:
            raise SampleError(f"-n {n}: colour between 1 and {MAX_SAMPLES} test images")
        size = tuple(spec["image_shape"][1:])
        if inputs:
            grey = torch.stack([read_grey(p, size) for p in inputs])
        else:  # a slice of the Fashion-MNIST test split, which is grey already
            from fashion.data import load_fashion

            grey = load_fashion(data_dir).test.images[:n].float() / 255
        coloured = colour(net, grey)
        rows = []
        for g, c in zip(grey.split(GRID), coloured.split(GRID)):  # rows: grey, then its colouring
            pad = GRID - len(g) if len(grey) > GRID else 0
            blank = torch.ones(pad, 3, *size)
            rows += [torch.cat([g.expand(-1, 3, -1, -1), blank]), torch.cat([c, blank])]
        images, nrow = torch.cat(rows), min(GRID, len(grey))
    else:
        if inputs:
            raise SampleError(f"{job} draws from its latent space; --input is for colorize jobs")
        images, nrow = draw(spec, net, n, label, seed), min(GRID, n)
    return artifacts.save_grid(images, out, nrow=nrow, value_range=(0.0, 1.0))
