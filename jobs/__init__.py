"""The job catalogue. Each module here adds one family's jobs with ``catalogue.add``; importing the
package imports them all, so a new family is one new file (its suite comes with its jobs)."""
import importlib
import pkgutil

from jobs.catalogue import CATALOGUE, Job, Resources, add, find, get, parse_seeds, select, split_seed, suites

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("catalogue", "runner", "local"):
        importlib.import_module(f"{__name__}.{_module.name}")

SUITES = tuple(suites())

__all__ = ["CATALOGUE", "SUITES", "Job", "Resources", "add", "find", "get", "parse_seeds", "select", "split_seed",
           "suites"]
