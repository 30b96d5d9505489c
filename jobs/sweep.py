"""Hyperparameter sweeps: each selected model gets trials, settings drawn from a space, one job per
(model, trial, seed), so models can be compared at an equal search budget (Lucic et al. 2018).

    --sweep KEY=V1,V2,...          a grid (repeatable: several grid keys multiply)
    --sweep 'KEY=loguniform(A,B)'  random: also uniform(A,B), int(A,B) (both ends included), choice(a,b,...);
                                   --trials N draws N settings (every grid point gets the same N)
    --sweep JOB:KEY=...            that model only, as --set JOB:KEY=V
    --sweep 'lr_g+lr_d=...'        one draw for both keys (Lucic et al. tie G's and D's learning rates)
    --sweep-space lucic            the named space of the model's family (``SPACES``; ``--list -v`` prints it)

Trial k of a model is a pure function of the space, ``--sweep-seed`` and k: the same command draws the same
settings, and ``--trials 20`` after ``--trials 10`` adds only trials 10-19. A trial's job is ``MODEL.tNNN``
(``MODEL.gNN`` for a grid point, ``MODEL.gNN.tNNN`` for both), its seeds ``MODEL.tNNN.seedK``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import re
import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashion import artifacts
from fashion.task import ConfigError
from jobs.catalogue import Job, convert, get

SWEEP_FILE = "sweep.json"
MAX_TRIALS = 1000
"Trials per model in one sweep (grid points x random trials): Lucic et al. drew 100."
RANDOM = ("loguniform", "uniform", "int", "choice")
SIGNIFICANT = 6  # drawn floats keep 6 significant digits: readable tables, and exact in JSON


class SweepError(ConfigError):
    """A sweep that cannot be drawn; the message names the flag, the problem and the fix."""


@dataclass(frozen=True)
class Dim:
    """One axis of a space: the keys it sets (one draw for all), how it draws, and for which model."""

    keys: tuple[str, ...]
    kind: str
    "grid, loguniform, uniform, int or choice."
    values: tuple
    "grid and choice: the values as written; the ranges: (low, high)."
    target: str = ""
    "A model's name, or '' for every selected model."

    @property
    def text(self) -> str:
        """The dimension as --sweep takes it (its canonical form in sweep.json)."""
        head = (f"{self.target}:" if self.target else "") + "+".join(self.keys)
        if self.kind == "grid":
            return f"{head}={','.join(self.values)}"
        values = ",".join(self.values) if self.kind == "choice" else ",".join(f"{v:g}" for v in self.values)
        return f"{head}={self.kind}({values})"


@dataclass(frozen=True)
class Trial:
    model: str
    id: str
    "``t007``, ``g02`` or ``g02.t007``."
    settings: dict

    @property
    def name(self) -> str:
        return f"{self.model}.{self.id}"


# The named spaces: per suite, dimensions for all its models and extra ones per model.
# lucic: compare_gan's wide ranges (Lucic et al. 2018, compare_gan/src/params.py): one learning rate for G and
# D, log-uniform in [1e-5, 1e-2]; beta1 in [0, 1]; 1-5 D steps per G step; each model's own weight. Its beta2
# stays 0.999 (compare_gan searches beta1 alone) and its D-BatchNorm switch has no counterpart here.
SPACES = {
    "lucic": {"gans": ["lr_g+lr_d=loguniform(1e-05,0.01)", "beta1=uniform(0,1)", "n_critic=int(1,5)"],
              "gan/wgan": ["clip=loguniform(0.001,1)"],
              "gan/wgan_gp": ["gp_weight=loguniform(0.1,100)"],
              "gan/dragan": ["gp_weight=loguniform(0.1,100)"],
              "gan/began": ["lambda_k=loguniform(0.0001,0.01)", "gamma=uniform(0,1)"]},
}

_CALL = re.compile(r"^(?P<kind>[a-z]+)\((?P<args>.*)\)$")


def parse_dim(text: str) -> Dim:
    """One ``--sweep`` value; SweepError naming what is wrong and how to write it."""
    head, eq, body = text.partition("=")
    target, _, keys = head.rpartition(":") if ":" in head else ("", "", head)
    keys = tuple(k.strip() for k in keys.split("+"))
    if not eq or not all(keys) or not body.strip():
        raise SweepError(f"--sweep {text!r}: expected KEY=V1,V2 (a grid) or KEY=loguniform(A,B), uniform(A,B), "
                         "int(A,B), choice(a,b) (with --trials N); JOB:KEY=... for one model")
    if "seed" in keys:
        raise SweepError(f"--sweep {text!r}: seeds are not a setting to sweep; use --seeds N (each trial then "
                         "trains from every seed)")
    body = body.strip()
    call = _CALL.match(body)
    if call is None:
        values = tuple(v.strip() for v in body.split(","))
        if not all(values) or len(set(values)) != len(values):
            raise SweepError(f"--sweep {text!r}: a grid lists distinct values, comma-separated (KEY=1e-4,2e-4)")
        return Dim(keys, "grid", values, target)
    kind, args = call["kind"], [a.strip() for a in call["args"].split(",") if a.strip()]
    if kind not in RANDOM:
        raise SweepError(f"--sweep {text!r}: unknown distribution {kind!r}; use one of {', '.join(RANDOM)}")
    if kind == "choice":
        if len(args) < 2 or len(set(args)) != len(args):
            raise SweepError(f"--sweep {text!r}: choice(...) needs two or more distinct values")
        return Dim(keys, kind, tuple(args), target)
    try:
        low, high = (int(a) for a in args) if kind == "int" else (float(a) for a in args)
    except ValueError:
        form = "two whole numbers, int(1,5)" if kind == "int" else f"two numbers, {kind}(1e-5,1e-2)"
        raise SweepError(f"--sweep {text!r}: {kind}(A,B) takes {form}") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise SweepError(f"--sweep {text!r}: the range must be finite")
    if not low < high:
        raise SweepError(f"--sweep {text!r}: an empty or inverted range ({low:g} is not below {high:g}); "
                         "write the lower end first")
    if kind == "loguniform" and low <= 0:
        raise SweepError(f"--sweep {text!r}: loguniform needs 0 < A < B (a log scale has no zero or negatives); "
                         "use uniform(A,B) for ranges that reach 0")
    return Dim(keys, kind, (low, high), target)


def space_of(job: Job, name: str) -> list[Dim]:
    """The named space's dimensions for one model (its suite's and its own)."""
    if name not in SPACES:
        raise SweepError(f"--sweep-space {name!r}: unknown; spaces: {', '.join(SPACES)}")
    space = SPACES[name]
    dims = space.get(job.suite, []) + space.get(job.model, [])
    if not dims:
        covered = [f"every model of {key}" for key in sorted(space) if "/" not in key]  # its suites, then models
        covered += [key for key in sorted(space) if "/" in key and get(key).suite not in space]  # outside them
        raise SweepError(f"--sweep-space {name}: no dimensions for {job.model} (the space covers "
                         f"{', '.join(covered)}); select those models, or give --sweep dimensions instead")
    return [parse_dim(text) for text in dims]


@dataclass(frozen=True)
class Sweep:
    """Each selected model's dimensions and trials: what one launch sweeps."""

    dims: dict[str, list[Dim]]
    "Per model (catalogue name), its dimensions in the order given."
    trials: int
    "Random draws per grid point (0: the grid alone)."
    seed: int = 0

    def size(self, model: str) -> int:
        """How many trials the model gets: grid points x random draws (1 for a model not swept)."""
        if model not in self.dims:
            return 1
        return math.prod(len(d.values) for d in self.dims[model] if d.kind == "grid") * max(1, self.trials)

    def trials_of(self, job: Job) -> list[Trial]:
        """The model's trials: every grid point, each with the same ``trials`` random draws."""
        dims = self.dims[job.model]
        grid = [d for d in dims if d.kind == "grid"]
        drawn = sorted((d for d in dims if d.kind != "grid"), key=lambda d: d.text)
        points = list(itertools.product(*(d.values for d in grid)))
        width = max(2, len(str(len(points) - 1)))
        out = []
        for g, point in enumerate(points):
            fixed = {key: value for d, value in zip(grid, point) for key in d.keys}
            for k in range(self.trials if drawn else 1):
                parts = ([f"g{g:0{width}d}"] if grid else []) + ([f"t{k:03d}"] if drawn else [])
                settings = {**fixed, **draw(drawn, self.seed, job.model, k)}
                out.append(Trial(job.model, ".".join(parts), typed(job, settings)))
        return out

    def record(self) -> dict:
        """What sweep.json keeps of this sweep, per model: its space as --sweep texts and its trials."""
        return {"seed": self.seed, "models": {model: {"space": sorted(d.text for d in dims)}
                                              for model, dims in self.dims.items()}}


def draw(dims: list[Dim], seed: int, model: str, k: int) -> dict:
    """Trial k's values of the random dimensions: its own stream, seeded by (sweep seed, model, k)."""
    stream = np.random.default_rng([seed, int(hashlib.sha256(model.encode()).hexdigest()[:8], 16), k])
    values = {}
    for d in dims:
        if d.kind == "choice":
            value = d.values[int(stream.integers(len(d.values)))]
        elif d.kind == "int":
            value = int(stream.integers(d.values[0], d.values[1] + 1))
        else:
            low, high = (math.log(v) for v in d.values) if d.kind == "loguniform" else d.values
            u = stream.uniform(low, high)
            value = float(f"{math.exp(u) if d.kind == 'loguniform' else u:.{SIGNIFICANT}g}")
        values.update({key: value for key in d.keys})
    return values


def typed(job: Job, settings: dict) -> dict:
    """Trial values as the config's types (a grid's text, an int draw for a float setting)."""
    hints = typing.get_type_hints(job.config_class)
    return {key: convert(hints[key], value, key) if isinstance(value, str) else hints[key](value)
            for key, value in settings.items()}


def build(selected: list[Job], texts: list[str], space: str | None, trials: int | None, seed: int,
          set_items: list[str]) -> Sweep | None:
    """The launch's sweep from its flags (None without --sweep/--sweep-space), checked against each
    selected model's settings; SweepError names the flag and the fix."""
    if not texts and not space:
        if trials is not None:
            raise SweepError(f"--trials {trials}: there is nothing to draw; add --sweep KEY=loguniform(A,B) (or "
                             "another range) or --sweep-space NAME")
        return None
    if seed < 0:
        raise SweepError(f"--sweep-seed {seed}: seeds are 0 or more")
    given = [parse_dim(text) for text in texts]
    models = list(dict.fromkeys(job.model for job in selected))
    by_model = {job.model: job for job in selected}
    for d in given:
        if d.target and d.target not in by_model:
            raise SweepError(f"--sweep {d.text}: {d.target} is not among the selected models "
                             f"({', '.join(models)}); select it, or drop the prefix")
    dims = {}
    for model in models:
        job = by_model[model]
        mine = space_of(job, space) if space else []
        explicit = [d for d in given if d.target in ("", model)]
        overridden = {k for d in explicit for k in d.keys}
        dims[model] = [d for d in mine if not overridden & set(d.keys)] + explicit
        if not dims[model]:
            continue
        fields = {f.name: f for f in dataclasses.fields(job.config_class)}
        hints = typing.get_type_hints(job.config_class)
        for d in dims[model]:
            for key in d.keys:
                if key not in fields:
                    where = "" if d.target else f" (it is not a setting of {model}; give it to the models that " \
                                                "have it: --sweep JOB:KEY=...)"
                    raise SweepError(f"--sweep {d.text}: unknown setting {key!r} for {model}{where}. Its "
                                     f"settings: {', '.join(fields)}")
                check_kind(d, key, hints[key], model)
        keys = [k for d in dims[model] for k in d.keys]
        if twice := sorted({k for k in keys if keys.count(k) > 1}):
            raise SweepError(f"{model}: {', '.join(twice)} swept twice; give each key one --sweep")
        for item in set_items:
            head = item.split("=", 1)[0]
            target, _, key = head.rpartition(":") if ":" in head else ("", "", head)
            if key in keys and target in ("", model, job.name):
                raise SweepError(f"--set {item} and --sweep both set {key} of {model}: a swept key takes its "
                                 "values from the sweep; drop one of them")
    random = any(d.kind != "grid" for ds in dims.values() for d in ds)
    if random and not trials:
        raise SweepError("--sweep: random ranges need --trials N (how many settings to draw per model)")
    if trials is not None and (trials < 1 or not random):
        raise SweepError(f"--trials {trials}: " + ("must be at least 1" if trials < 1 else
                         "there is nothing to draw: the sweep is a grid alone; drop --trials"))
    sweep = Sweep({m: ds for m, ds in dims.items() if ds}, trials or 0, seed)
    for model in sweep.dims:
        if (points := sweep.size(model)) > MAX_TRIALS:
            raise SweepError(f"{model}: {points} trials (grid points x --trials), at most {MAX_TRIALS} per model; "
                             "sweep a coarser grid or fewer trials, and add more later into the same --run")
    return sweep


def check_kind(d: Dim, key: str, kind, model: str) -> None:
    """A dimension's values fit the setting's type (a float range for an integer setting does not)."""
    if kind is int and d.kind in ("loguniform", "uniform"):
        raise SweepError(f"--sweep {d.text}: {key} of {model} is a whole number; use int(A,B) or a grid")
    if kind not in (int, float) and d.kind in ("loguniform", "uniform", "int"):
        raise SweepError(f"--sweep {d.text}: {key} of {model} is not a number; use a grid or choice(...)")
    if typing.get_origin(kind) in (tuple, list):
        raise SweepError(f"--sweep {d.text}: {key} of {model} is a list setting, which cannot be swept")
    for value in d.values if d.kind in ("grid", "choice") else ():
        try:
            convert(kind, value, key)
        except ConfigError as err:
            raise SweepError(f"--sweep {d.text}: {err}") from None


def trial_jobs(selected: list[Job], sweep: Sweep | None) -> list[Job]:
    """Every (model, trial, seed) as a job: each selected job's trials at its seed."""
    if sweep is None:
        return selected
    seeds: dict[str, list[Job]] = {}
    for job in selected:
        seeds.setdefault(job.model, []).append(job)
    out = []
    for model, group in seeds.items():  # a trial's seeds together, as a model's seeds are
        if model not in sweep.dims:
            out += group
            continue
        out += [dataclasses.replace(job, name=job.name.replace(model, trial.name, 1),
                                    defaults={**job.defaults, **trial.settings})
                for trial in sweep.trials_of(group[0]) for job in group]
    return out


def record(run_dir: Path, sweep: Sweep, selected: list[Job], best_of: dict | None = None) -> Path:
    """Merge this launch's sweep into the run's sweep.json (the space, the seed and every trial's settings)."""
    path = Path(run_dir) / SWEEP_FILE
    old = artifacts.read_json(path, {}) or {}
    models = dict(old.get("models", {}))
    firsts = {job.model: job for job in reversed(selected)}
    for model, entry in sweep.record()["models"].items():
        kept = models.get(model, {}).get("trials", {})
        drawn = {t.id: t.settings for t in sweep.trials_of(firsts[model])} if model in firsts else {}
        models[model] = {**entry, "trials": {**kept, **drawn}}
    out = {**old, "seed": sweep.seed, "models": models}
    if best_of is not None:
        out["best_of"] = best_of
    return artifacts.write_json(path, out)


def refusal(run_dir: Path, sweep: Sweep) -> str:
    """Why this sweep cannot go into the run (another space or seed for a model swept there before), or ''."""
    old = artifacts.read_json(Path(run_dir) / SWEEP_FILE, {}) or {}
    problems = []
    for model, entry in sweep.record()["models"].items():
        before = old.get("models", {}).get(model)
        if before is None:
            continue
        if before.get("space") != entry["space"]:
            problems.append(f"{model} was swept over {'; '.join(before.get('space', []))}, now over "
                            f"{'; '.join(entry['space'])}")
        elif old.get("seed") != sweep.seed:
            problems.append(f"{model} was swept with --sweep-seed {old.get('seed')}, now {sweep.seed}")
    if not problems:
        return ""
    return (f"{run_dir}: {'; '.join(problems)}. Trials of two spaces would not be one search: repeat the earlier "
            "space (more --trials add trials to it), or sweep into a new --run")


def best_of(run_dir: Path, rank_by: str | None = None) -> tuple[dict[str, Trial], dict]:
    """Each swept model's best trial in a run's report (its settings copied from the run's sweep.json), and
    where they came from: the protocol's last step retrains them from new seeds. ``rank_by``: the checkpoint
    the report must have picked them by (None: the report's own choice)."""
    run_dir = Path(run_dir)
    summary = artifacts.read_json(run_dir / "report" / "summary.json")
    spec = artifacts.read_json(run_dir / SWEEP_FILE)
    if not isinstance(spec, dict) or not spec.get("models"):
        raise SweepError(f"--best-of {run_dir.name}: {run_dir} holds no sweep (no {SWEEP_FILE}); give a run "
                         "launched with --sweep")
    if not isinstance(summary, dict) or not summary.get("sweep"):
        raise SweepError(f"--best-of {run_dir.name}: no report of its sweep yet; run `python launch.py --aggregate "
                         f"{run_dir.name}` first (with the same --outputs)")
    picked_by = summary["sweep"].get("rank_by", "final")  # a report older than the choice ranked by the final
    if rank_by is not None and rank_by != picked_by:
        raise SweepError(f"--best-of {run_dir.name} --rank-by {rank_by}: its report picked the best trials by the "
                         f"{picked_by} checkpoint; run `python launch.py --aggregate {run_dir.name} --rank-by "
                         f"{rank_by}` first (with the same --outputs), or drop --rank-by")
    picked = {}
    provenance = {"run": str(run_dir), "evaluator": summary.get("evaluator"), "rank_by": picked_by, "trials": {}}
    for model, entry in summary["sweep"]["models"].items():
        best = next((t for t in entry["trials"] if t["best"]), None)
        if best is None:
            continue
        settings = spec["models"][model]["trials"][best["trial"]]
        picked[model] = Trial(model, best["trial"], settings)
        provenance["trials"][model] = {"trial": best["trial"], "fid": best["fid"], "score": best.get("score"),
                                       "stamp": best["stamp"], "space": entry["space"],
                                       "trials_in_curve": entry.get("in_curve", entry.get("measured")),
                                       "failed_trials": len(entry.get("failed_trials", []))}
    if not picked:
        raise SweepError(f"--best-of {run_dir.name}: no trial of its sweep has an FID yet; wait for its jobs, "
                         "aggregate, then pick")
    return picked, provenance


def best_jobs(picked: dict[str, Trial], seeds: list[int]) -> list[Job]:
    """Each picked trial as a job of its own settings, from every seed."""
    return [dataclasses.replace(get(trial.name), defaults=dict(trial.settings)).with_seed(seed)
            for trial in picked.values() for seed in seeds]


def record_best(run_dir: Path, picked: dict[str, Trial], provenance: dict) -> Path:
    """The confirming run's sweep.json: the picked trials, their spaces and where they came from."""
    path = Path(run_dir) / SWEEP_FILE
    old = artifacts.read_json(path, {}) or {}
    models = {**old.get("models", {}), **{model: {"space": provenance["trials"][model]["space"],
                                                   "trials": {trial.id: trial.settings}}
                                           for model, trial in picked.items()}}
    return artifacts.write_json(path, {**old, "models": models, "best_of": provenance})


def best_refusal(run_dir: Path, picked: dict[str, Trial], source: Path) -> str:
    """Why the picked trials cannot go into ``run_dir`` (it confirms another run's, or other trials), or ''."""
    old = artifacts.read_json(Path(run_dir) / SWEEP_FILE, {}) or {}
    if Path(run_dir).resolve() == Path(source).resolve():
        return f"--best-of {source.name}: give a new --run for the confirming jobs (the sweep's own run keeps its trials)"
    earlier = (old.get("best_of") or {}).get("run")
    if old.get("models") and earlier != str(source):
        return f"{run_dir} already holds {'the best trials of ' + earlier if earlier else 'a sweep'}; use a new --run"
    for model, trial in picked.items():
        held = old.get("models", {}).get(model, {}).get("trials", {})
        if held and trial.id not in held:
            return (f"{run_dir} confirms {model}.{next(iter(held))}, and {source.name}'s best is now {trial.id}; "
                    "use a new --run")
    return ""
