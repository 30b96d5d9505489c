"""The suite's fixed evaluation network: one Fashion-MNIST classifier, trained once, whose weights ship
in this folder, so every FID/KID/PRDC/IS/accuracy number of any run is measured in the same feature space.

:func:`load_evaluator` checks the weights against the SHA-256 in the metadata before using them: a changed
or damaged file would silently move every number, so it is an error instead. :func:`stamp` is the short
identity that results carry to say which evaluator measured them.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

NAME = "fashion-eval-v1"
HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "fashion_eval.pt"
METADATA = HERE / "fashion_eval.json"
RESTORE = ("restore the shipped files with `git checkout -- fashion/evaluator/` "
           "or retrain with `python -m fashion.evaluator.train`")


class EvaluatorError(RuntimeError):
    """The evaluator's weights or metadata are missing, damaged or do not match; the message says how to fix it."""


def _paths(path) -> tuple[Path, Path]:
    """(weights, metadata); the metadata sits beside the weights with a .json suffix."""
    weights = Path(path) if path is not None else WEIGHTS
    return weights, weights.with_suffix(".json")


def read_metadata(path=None) -> dict:
    _, meta_path = _paths(path)
    try:
        metadata = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise EvaluatorError(f"{meta_path}: missing; {RESTORE}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EvaluatorError(f"{meta_path}: unreadable ({err}); {RESTORE}") from err
    if not isinstance(metadata, dict) or not isinstance(metadata.get("sha256"), str):
        raise EvaluatorError(f"{meta_path}: no sha256 in it; {RESTORE}")
    return metadata


def load_evaluator(device="cpu", path=None):
    """The evaluation network in eval mode on ``device``, and its metadata (accuracy, recipe, sha256, ...).

    ``path`` is the weights file (default: the shipped one); its metadata is the .json beside it.
    """
    # torch is imported here, not at the top: the trainer must set OpenMP's wait policy before torch loads.
    import torch

    from fashion.evaluator.network import EvalNet

    weights, _ = _paths(path)
    metadata = read_metadata(weights)
    try:
        data = weights.read_bytes()
    except FileNotFoundError:
        raise EvaluatorError(f"{weights}: missing; {RESTORE}") from None
    except OSError as err:
        raise EvaluatorError(f"{weights}: unreadable ({err}); {RESTORE}") from err
    digest = hashlib.sha256(data).hexdigest()
    if digest != metadata["sha256"]:
        raise EvaluatorError(f"{weights}: SHA-256 {digest[:12]}... does not match the metadata's "
                             f"{metadata['sha256'][:12]}... (changed or damaged); {RESTORE}")
    try:
        state = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
        with torch.random.fork_rng(devices=[]):  # the throw-away initial weights leave the caller's RNG as it was
            net = EvalNet(**state["kwargs"])
        net.load_state_dict(state["state_dict"])
    except Exception as err:  # a hash-valid file that still fails to load: written by an incompatible version
        raise EvaluatorError(f"{weights}: cannot be loaded ({err}); {RESTORE}") from err
    return net.to(device).eval(), metadata


def stamp(metadata: dict) -> dict:
    """Which evaluator measured a result: its name and the first 12 hex digits of its weights' SHA-256."""
    return {"evaluator": metadata["name"], "sha256": metadata["sha256"][:12]}
