"""The job catalogue: every experiment's unique name, its suite, its task, its config and its resources."""
from __future__ import annotations

import dataclasses
import fnmatch
import typing
from dataclasses import dataclass, field
from typing import Callable

from fashion.runfolder import split_seed, split_trial
from fashion.task import ConfigError, Task, TrainConfig

@dataclass(frozen=True)
class Resources:
    """What one job asks SLURM for by default; launcher flags override it."""

    gpus_per_node: int = 1
    nodes: int = 1
    cpus_per_task: int = 4
    mem_gb: int = 16
    timeout_min: int = 120


@dataclass(frozen=True)
class Job:
    name: str
    "Unique name; also the output folder and the report row (``gan/wgan_gp``)."
    suite: str
    task: type[Task]
    description: str = ""
    defaults: dict = field(default_factory=dict)
    "Config values that differ from the task's defaults (how ablations are made)."
    resources: Resources = Resources()
    unavailable: Callable[[TrainConfig], str | None] | None = None
    "Returns why the job cannot run with this config (e.g. its data is missing), or None."

    @property
    def config_class(self) -> type[TrainConfig]:
        return self.task.config_class


    def make_config(self, overrides: dict[str, str] | None = None) -> TrainConfig:
        """The job's config with ``key=value`` strings applied, typed and validated."""
        values = dict(self.defaults)
        values.update(parse_values(self.config_class, overrides or {}, self.name))
        if "seed" in self.defaults and values["seed"] != self.defaults["seed"]:
            raise ConfigError(f"{self.name}: seed={values['seed']} contradicts its name "
                              f"(seed {self.defaults['seed']}); choose seeds with --seeds")
        config = self.config_class(**values)
        config.validate()
        return config

    @property
    def model(self) -> str:
        """The catalogue name this job is a seed or a sweep trial of (``gan/gan`` for ``gan/gan.t007.seed2``)."""
        return split_trial(self.name)[0]

    def with_seed(self, seed: int) -> "Job":
        """This job (a catalogue job or a sweep trial) trained from ``seed``: its own name (and folder) unless
        seed is 0."""
        if seed < 0:
            raise ValueError(f"seed {seed}: seeds are 0 or more")
        stem = split_seed(self.name)[0]
        base = CATALOGUE.get(stem, self)  # a trial keeps its settings, which are its own defaults
        name = stem if seed == 0 else f"{stem}.seed{seed}"
        return dataclasses.replace(base, name=name, defaults={**base.defaults, "seed": seed})


CATALOGUE: dict[str, Job] = {}


def add(job: Job) -> Job:
    if job.name in CATALOGUE:
        raise ValueError(f"duplicate job name {job.name}")
    bad = set(job.defaults) - {f.name for f in dataclasses.fields(job.config_class)}
    if bad:
        raise ValueError(f"{job.name}: defaults {sorted(bad)} are not fields of {job.config_class.__name__}")
    CATALOGUE[job.name] = job
    return job


def suites() -> list[str]:
    """Every suite some job belongs to, in catalogue order: a new family's suite needs no other edit."""
    return list(dict.fromkeys(job.suite for job in CATALOGUE.values()))


def get(name: str) -> Job:
    """A catalogue job by name; ``X.seed<k>`` is seed k of job X, ``X.t007`` a sweep trial of it (its task
    and resources; its settings are in the run's sweep.json and its config)."""
    if name in CATALOGUE:
        return CATALOGUE[name]
    model, trial, seed = split_trial(name)
    if model in CATALOGUE and (trial or seed):
        job = CATALOGUE[model]
        job = dataclasses.replace(job, name=f"{model}.{trial}") if trial else job
        return job.with_seed(seed) if seed else job
    raise KeyError(f"unknown job {name!r}; `python launch.py --list` shows the catalogue")


def find(name: str) -> Job | None:
    """``get`` that answers None for a name outside the catalogue."""
    try:
        return get(name)
    except KeyError:
        return None


def select(patterns: list[str], seeds: list[int] | None = None) -> list[Job]:
    """Jobs matching names, globs (``gan/*``) or suite names, in catalogue order; unknown -> KeyError.
    With ``seeds``, each job becomes one job per seed (``gan/gan``, ``gan/gan.seed1``...), seeds of a job together."""
    chosen: dict[str, Job] = {}
    for pattern in patterns:
        if pattern in ("all", "*"):
            matches = list(CATALOGUE)
        elif pattern in suites():
            matches = [n for n, j in CATALOGUE.items() if j.suite == pattern]
        else:
            matches = fnmatch.filter(CATALOGUE, pattern)
        if not matches:
            raise KeyError(f"no job matches {pattern!r}. Valid names: {', '.join(CATALOGUE)}; "
                           f"suites: {', '.join(suites())}; globs like 'gan/*' work too")
        chosen.update((n, CATALOGUE[n]) for n in matches)
    selected = [CATALOGUE[n] for n in CATALOGUE if n in chosen]
    if seeds is None:
        return selected
    return [job.with_seed(seed) for job in selected for seed in seeds]


MAX_SEEDS = 1000
"Seeds per launch: Lucic et al. retrain a setting from 50; past this a typo would only build bookkeeping."


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: a count (``3`` -> seeds 0, 1, 2) or a comma list (``0,4,7``; one seed: ``5,``)."""
    parts = [t.strip() for t in str(text).split(",")]
    try:
        numbers = [int(t) for t in parts if t]
    except ValueError:
        raise ConfigError(f"--seeds {text!r}: expected a count (3) or a comma list of seeds (0,4,7)") from None
    if not numbers:
        raise ConfigError(f"--seeds {text!r}: expected a count (3) or a comma list of seeds (0,4,7)")
    if len(parts) == 1:
        if numbers[0] < 1:
            raise ConfigError(f"--seeds {text}: the number of seeds must be at least 1 (--seeds 3 runs seeds 0, 1, 2; "
                              "a comma list names seeds: --seeds 0,4,7, or --seeds 5, for seed 5 alone)")
        if numbers[0] > MAX_SEEDS:
            raise ConfigError(f"--seeds {text}: at most {MAX_SEEDS} seeds per launch; launch more into the same "
                              "--run afterwards with a list (--seeds 1000,1001,...): completed seeds are skipped")
        return list(range(numbers[0]))
    if any(n < 0 for n in numbers):
        raise ConfigError(f"--seeds {text}: seeds are 0 or more")
    if len(numbers) > MAX_SEEDS:
        raise ConfigError(f"--seeds: {len(numbers)} seeds, at most {MAX_SEEDS} per launch; launch the rest into the "
                          "same --run afterwards: completed seeds are skipped")
    if len(set(numbers)) != len(numbers):
        repeated = sorted({n for n in numbers if numbers.count(n) > 1})
        raise ConfigError(f"--seeds {text}: seed {', '.join(map(str, repeated))} given twice; list each seed once")
    return numbers


def parse_values(config_class: type, raw: dict[str, str], job_name: str = "") -> dict:
    """Turn ``{"lr_g": "1e-4"}`` into typed values, naming the valid keys on an unknown one."""
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    hints = typing.get_type_hints(config_class)
    values = {}
    for key, text in raw.items():
        if key not in fields:
            raise ConfigError(f"{job_name}: unknown setting {key!r}. Valid settings: {', '.join(fields)}")
        values[key] = convert(hints[key], text, key)
    return values


def convert(kind, text, key):
    """A setting's text as its config type (``true``/``yes``/``1`` for a bool, ``a,b`` for a tuple)."""
    if not isinstance(text, str):
        return text
    try:
        if kind is bool:
            if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError
            return text.lower() in ("1", "true", "yes")
        if kind in (int, float, str):
            return kind(text)
        origin = typing.get_origin(kind)
        if origin in (tuple, list):
            (inner, *_) = typing.get_args(kind)
            return origin(inner(t) for t in text.split(",") if t)
    except ValueError:
        forms = " (true/false, yes/no or 1/0)" if kind is bool else ""
        raise ConfigError(f"{key}={text!r}: expected {getattr(kind, '__name__', kind)}{forms}") from None
    return text


def field_docs(config_class: type) -> list[tuple[str, str, str]]:
    """(name, default, docstring) of each field, read from the field docstrings in the source."""
    import ast
    import inspect

    docs: dict[str, str] = {}
    for cls in reversed(config_class.__mro__):
        try:
            tree = ast.parse(inspect.getsource(cls))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr)
                    and isinstance(getattr(nxt, "value", None), ast.Constant)):
                docs[node.target.id] = str(nxt.value.value)
    return [(f.name, repr(f.default), docs.get(f.name, "")) for f in dataclasses.fields(config_class)]
