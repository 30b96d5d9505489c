"""``report/index.html``: one page that works opened from disk, rendered from ``templates/index.html.j2``.

Pictures are linked by relative path into the run tree (``../gan/wgan_gp/samples.gif``) rather than
inlined, so the page stays small and always shows the job's current files.
"""
from __future__ import annotations

import os
from pathlib import Path

from fashion import artifacts
from fashion.report import classifiers
from fashion.report.summary import BY_KEY, COLUMNS, MODEL_KEYS, cells, model_cells
from fashion.runfolder import split_seed, split_trial

TEMPLATE = "index.html.j2"
JOBS_PAGE = "jobs.html"
SECTIONS_ON_INDEX = 60
"Past this many jobs, their pictures move to jobs.html and the per-job table folds away: the page stays usable."


def render(report_dir: Path, run: str, header: dict, rows: list[dict], sections: list[dict],
           fid_curves: Path | None = None, models: list[dict] = (), ranked: list[dict] = (), sweep: dict | None = None,
           budget_plot: Path | None = None, classified: dict | None = None, fgsm_plot: Path | None = None) -> Path:
    """Write index.html (and jobs.html in a run of more than SECTIONS_ON_INDEX jobs). ``sections``: per job,
    {"job", "state", "note", "pictures": [Path], "samples": Path, "log": text or None}; ``fid_curves``: the
    FID-over-epochs plot, if any job kept snapshots; ``models`` and ``ranked``: the numbers over seeds
    (fashion.report.stats); ``sweep``: the sweep view (fashion.report.sweep) and its ``budget_plot``;
    ``classified``: the classifiers beside the write-up (fashion.report.classifiers) and their ``fgsm_plot``."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["anchor"] = lambda name: "job-" + "".join(c if c.isalnum() else "-" for c in name)

    def link(path: Path) -> str:
        return Path(os.path.relpath(path, report_dir)).as_posix()

    table = [{"cells": cells(row), "raw": row} for row in rows]
    shown = [{**s, "pictures": [(link(p), p.relative_to(s["path"]).as_posix()) for p in s["pictures"]],
              "strip": link(s["strip"]) if s.get("strip") else None} for s in sections]
    jobs_page = JOBS_PAGE if len(sections) > SECTIONS_ON_INDEX else ""
    sheet = first_seed(sections)
    if sweep is not None:  # a swept model's best trial stands for it
        best = {f"{model}.{m['best']}" for model, m in sweep["models"].items() if m["best"]}
        swept = set(sweep["models"])
        sheet = [s for s in sheet if split_seed(s["job"])[0] in best or split_trial(s["job"])[0] not in swept]
    html = env.get_template(TEMPLATE).render(
        run=run, header=header, columns=COLUMNS, table=table, jobs_page=jobs_page,
        sheet=[{**s, "samples": link(s["samples"])} for s in sheet], sections=shown,
        problems=[s for s in sections if s.get("log")],
        fid_curves=link(fid_curves) if fid_curves else None,
        model_columns=[BY_KEY[k] for k in MODEL_KEYS], models=[model_view(m) for m in models], ranked=ranked,
        sweep=sweep, budget_plot=link(budget_plot) if budget_plot else None,
        classified=classifiers.table(classified) if classified else None, classified_source=classifiers.SOURCE,
        fgsm_plot=link(fgsm_plot) if fgsm_plot else None,
    )
    if jobs_page:
        artifacts.write_text(report_dir / jobs_page, env.get_template("jobs.html.j2").render(run=run, sections=shown))
    return artifacts.write_text(report_dir / "index.html", html)


def first_seed(sections: list[dict]) -> list[dict]:
    """One section per model, its lowest seed that drew samples: the contact sheet shows one grid per model."""
    from fashion.runfolder import lowest_seeds

    return [{**first, "seed": split_seed(first["job"])[1], "seeds": seeds}
            for first, seeds in lowest_seeds(sections, lambda s: s["job"], lambda s: s.get("samples")).values()]


def model_view(model: dict) -> dict:
    """A model's cells for the page: ``mean ± std (n)``, the interval, and the per-seed values on hover."""
    from fashion.report.stats import format_interval, format_number

    def per_seed(s: dict, fmt: str) -> str:
        return ", ".join(f"seed {seed}: {fmt.format(v)}" for seed, v in zip(s["seeds"], s["values"]))

    numbers = model["numbers"]
    fmts = {k: BY_KEY[k].fmt if k in BY_KEY else "{:.4g}" for k in numbers}
    return {**model, "text": model_cells(model),
            "ci": {k: format_interval(s, fmts[k]) for k, s in numbers.items()},
            "per_seed": {k: per_seed(s, fmts[k]) for k, s in numbers.items()},
            "own": {k: format_number(s) for k, s in numbers.items() if k not in MODEL_KEYS}}
