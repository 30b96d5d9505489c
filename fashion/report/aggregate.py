"""``python launch.py --aggregate RUN``: measure every finished model and write ``<run>/report/``.

Works on any state of a run: queued and running jobs appear with their progress, failed and diverged
ones with the tail of their log. Quality numbers come from the jobs' own measurements (fashion/measure.py);
only jobs that lack one under the run's stamp are measured here.
"""
from __future__ import annotations

import collections
import dataclasses
from pathlib import Path

from fashion import runfolder
from fashion.report import classifiers, collect, page, stats, summary, sweep
from fashion.report.quality import Quality, Unmeasured
from fashion.runfolder import REPORT_DIR, JobFolder


@dataclasses.dataclass(frozen=True)
class ReportOptions:
    """The report's settings a cluster profile may give the report job (its ``[report]`` table)."""

    classifier: str | None = None
    "A classify job's model.pt to measure with instead of the shipped evaluator (another stamp)."
    rank_by: str = stats.RANK_BY
    "Which checkpoint's FID ranks the models and picks a sweep's best trials: final or best (docs/report.md)."

    @classmethod
    def from_table(cls, table: dict, where: str) -> "ReportOptions":
        """Typed options from a ``[report]`` table; ValueError naming an unknown key or a wrong type."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(table) - set(fields))
        if unknown:
            raise ValueError(f"[report] in {where}: unknown option(s) {', '.join(unknown)}; "
                             f"the report takes {', '.join(sorted(fields))}")
        for key, value in table.items():
            if not isinstance(value, str):
                raise ValueError(f"[report] in {where}: {key} = {value!r} should be a TOML string")
        if table.get("rank_by", stats.RANK_BY) not in stats.CHECKPOINTS:
            raise ValueError(f"[report] in {where}: rank_by = {table['rank_by']!r}; choose one of "
                             f"{', '.join(map(repr, stats.CHECKPOINTS))}")
        return cls(**table)


def aggregate(run_dir, console=None, classifier: str | None = None, rank_by: str = stats.RANK_BY) -> int:
    """Build the run's report from its files; returns the exit code (1 when the run has no job folders yet).
    ``classifier``: a classify job's model.pt to measure with instead of the shipped evaluator; ``rank_by``:
    the checkpoint whose FID ranks the models, "final" or "best"."""
    from rich.console import Console

    if rank_by not in stats.CHECKPOINTS:
        raise ValueError(f"rank_by={rank_by!r}: choose one of {', '.join(stats.CHECKPOINTS)}")
    run_dir = Path(run_dir)
    console = console or Console()
    found = collect.read_jobs(run_dir)
    if not found:
        console.print(f"[red]{run_dir}: no job folders yet (nothing with a status.json); launch some jobs first[/]")
        return 1
    quality = Quality(run_dir, found, classifier, console)

    rows, sections, curves = [], [], {}
    for job in found:
        row = job_row(job)
        try:
            values, stamp = quality.for_job(job)
            row.update(values, stamp=stamp.key)
        except Unmeasured as why:
            row["note"] = str(why)
        except Exception as err:  # one unreadable job must not cost the whole report
            row["note"] = f"could not measure: {type(err).__name__}: {err}"
        try:
            if best := quality.best_for_job(job):
                row.update(best=best, best_fid=best["values"].get("fid"), best_epoch=best["epoch"])
            if points := quality.fid_curve(job):
                curves[job.name] = points
        except Exception as err:
            row["note"] = "; ".join(filter(None, [row.get("note"), f"no FID curve: {type(err).__name__}: {err}"]))
        if job.errors:
            row["note"] = "; ".join(job.errors + [row["note"]] if row.get("note") else job.errors)
        rows.append(row)
        sections.append(section(run_dir, job, row))

    header = {"evaluator": quality.evaluator_line(),
              "jobs": ", ".join(f"{n} {s}" for s, n in sorted(collections.Counter(j.state for j in found).items()))}
    try:
        measured, stamp = quality.references()
        references = [{"job": name, "family": "reference", "state": "reference", **values, "stamp": stamp.key}
                      for name, values in measured.items()]
        header["references"] = ("real training images vs the test set (the floor every model's FID/KID is "
                                "measured against) and uniform noise")
    except Unmeasured as why:
        references, header["references"] = [], f"none: {why}"
    except Exception as err:
        references, header["references"] = [], f"none: {type(err).__name__}: {err}"
    rows = references + rows

    report_dir = run_dir / REPORT_DIR
    bands = stats.curve_bands(curves)
    samples = sorted({p["samples"] for points in curves.values() for p in points})
    fid_plot = plot_fid_curves(bands, report_dir / "fid_curves.png", samples) if curves else None
    if curves:  # summary.json only: the markdown header shows text lines
        header["fid_over_epochs"] = {name: [[p["epoch"], p["fid"]] for p in points] for name, points in curves.items()}
        header["fid_over_epochs_by_model"] = {
            "columns": ["epoch", "mean", "min", "max", "seeds"],
            **{m: [[p["epoch"], p["mean"], p["min"], p["max"], p["n"]] for p in points] for m, points in bands.items()}}

    models, ranked, left_out, swept = verdicts(run_dir, rows, rank_by, header)
    budget_plot = sweep.plot_budget_curves(swept, report_dir / "sweep_budget.png") if swept is not None else None
    classified, fgsm_plot = classifiers.view(models), None
    if classified is not None:  # the classifiers beside the write-up's claims
        header["classifiers"] = classified
        fgsm_plot = classifiers.plot(classified, report_dir / classifiers.PLOT)
    summary.write_summaries(report_dir, run_dir.name, header, rows)
    summary.write_model_summaries(report_dir, models, ranked, rank_by, grouped(left_out))
    if swept is not None:
        summary.write_sweep(report_dir, swept)
    index = page.render(report_dir, run_dir.name, header, rows, sections, fid_plot, models=models, ranked=ranked,
                        sweep=swept, budget_plot=budget_plot, classified=classified, fgsm_plot=fgsm_plot)
    console.print(summary.rich_table(run_dir.name, rows))
    console.print(summary.rich_models(models, ranked))
    if classified is not None:
        console.print(f"classifiers beside {classifiers.SOURCE}:", *classifiers.markdown(classified), sep="\n",
                      highlight=False, markup=False, soft_wrap=True)  # a wrapped row would not be a markdown row
    if swept is not None:
        console.print("sweep at an equal budget:", *(f"  {line}" for line in summary.sweep_lines(swept)), sep="\n",
                      highlight=False, markup=False)
    console.print(f"evaluator: {header['evaluator']}", highlight=False, markup=False)
    console.print(f"report: {index}  (also summary.md, summary.csv, summary.json)", highlight=False)
    return 0


def verdicts(run_dir: Path, rows: list[dict], rank_by: str, header: dict):
    """Over seeds: which model is better and whether the difference is more than seed noise, ranked by the
    ``rank_by`` checkpoint's FID; the sweep view under the same choice. Fills ``header``; returns (models,
    ranking, why models are not ranked, sweep view or None)."""
    other = next(c for c in stats.CHECKPOINTS if c != rank_by)
    models = stats.model_summaries(rows)  # the table: the final numbers, with each model's best FID beside
    chosen = models if rank_by == "final" else stats.model_summaries(stats.checkpoint_view(rows, rank_by))
    beside = stats.model_summaries(stats.checkpoint_view(rows, other)) if rank_by == "final" else models
    ranked = stats.ranking(chosen)
    left_out = stats.not_ranked(chosen)
    header.update(rank_by=rank_by, models=models, fid_ranking=ranked)
    if left_out:
        header["not ranked"] = "; ".join(grouped(left_out))
    if not any(m["numbers"].get("fid") for m in chosen) and any(m["numbers"].get("fid") for m in beside):
        header["ranking note"] = (f"ranked by {rank_by}: no model has that checkpoint's FID (a best checkpoint "
                                  f"needs snapshots, and jobs newer than its choice); --rank-by {other} ranks this run")
    swept = sweep.view(run_dir, chosen, rank_by, beside)
    if swept is not None:
        header["sweep"] = swept
    header["statistics"] = (
        f"per model over its completed seeds: mean ± std and a {stats.CONFIDENCE:.0%} Student-t interval, and its "
        f"failed seeds (failed or diverged) out of the finished ones. Ranked by {summary.CHECKPOINT_WORDS[rank_by]}: "
        f"ordered by the median over finished seeds, a failed seed counting as worse than any FID; every pair of "
        f"ranked models tested by {stats.TEST_NAME} (a pair with a failed seed: by an exact permutation test of "
        f"the seeds' ranks), p-values Holm-adjusted over all pairs: 'significant' holds for the whole table at "
        f"{stats.ALPHA:.0%}. A model needs {stats.MIN_SEEDS} completed seeds to be ranked")
    return models, ranked, left_out, swept


def grouped(reasons: list[str]) -> list[str]:
    """``MODEL: why`` lines with the same why said once, after their models: 16 one-seed VAEs in one line."""
    by_why: dict[str, list[str]] = {}
    for reason in reasons:
        model, _, why = reason.partition(": ")
        by_why.setdefault(why, []).append(model)
    return [f"{', '.join(models)}: {why}" for why, models in by_why.items()]


def job_row(job: JobFolder) -> dict:
    """Everything the table shows about a job except the quality metrics."""
    done, planned = collect.progress(job)
    gpu, procs = collect.hardware(job)
    losses = collect.final_terms(job)
    own = collect.own_metrics(job)
    return {
        "job": job.name, "family": job.family, "state": job.state,
        "epochs": f"{done if done is not None else '?'}/{planned if planned is not None else '?'}",
        "epochs_done": done, "epochs_planned": planned,
        "losses": " · ".join(f"{k} {v:.4g}" for k, v in losses.items() if not collect.is_evaluation(k)),
        "final_terms": losses,
        "own": " · ".join(f"{k} {v:.4g}" for k, v in own.items()), "own_metrics": own,
        "s_per_epoch": job.status.get("seconds_per_epoch", job.metrics.get("seconds_per_epoch")),
        "images_per_s": job.status.get("images_per_s", job.metrics.get("images_per_s")),
        "gpu": gpu, "procs": procs,
        "seed_numbers": stats.own_numbers(job.metrics),
        "params": " · ".join(f"{name} {count:,}" for name, count in job.config.get("params", {}).items()),
    }


def section(run_dir: Path, job: JobFolder, row: dict) -> dict:
    """What the page shows for one job: its pictures, and its log if it went wrong."""
    fid = row.get("fid")
    strip = job.path / "strip.png"  # first, middle and last epoch, made by the job when training ends
    strip = strip if strip.is_file() else None
    return {"job": job.name, "path": job.path, "state": job.state, "note": row.get("note", ""),
            "pictures": [p for p in collect.pictures(job) if p != strip], "strip": strip,
            "samples": collect.final_samples(job),
            "caption": f"FID {fid:.2f}" if fid is not None else row.get("note", job.state),
            "log": log_tail(run_dir, job) if job.state in ("failed", "diverged", "unknown") else None}


def log_tail(run_dir: Path, job: JobFolder) -> str:
    """The end of the job's log, headed by where it came from."""
    where, text = runfolder.log_tail(run_dir, job.name, job.status)
    return f"{where}:\n{text}" if where != runfolder.STATUS_FILE else text


SIDE_BY_SIDE = 0.5  # epochs that single snapshots of one epoch spread over, however many models: they stay on it


def plot_fid_curves(bands: dict[str, list[dict]], path: Path, samples: list[int] = ()) -> Path:
    """Every model's FID over training epochs on one log-scale plot (from the jobs' snapshots): the mean
    over its seeds, with the min-max range over seeds shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fashion import artifacts

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    markers = "os^vD<>pP*Xh"
    step = min(0.04, SIDE_BY_SIDE / max(1, len(bands) - 1))
    for i, (name, points) in enumerate(bands.items()):
        seeds = max(p["n"] for p in points)
        epochs = [p["epoch"] for p in points]
        if len(points) == 1:  # single snapshots side by side, so their seed ranges do not hide each other
            epochs = [epochs[0] + step * (i - (len(bands) - 1) / 2)]
        line, = ax.plot(epochs, [p["mean"] for p in points], marker=markers[i % len(markers)], ms=4, lw=1.4,
                        label=f"{name} ({seeds} seed{'s' if seeds > 1 else ''})")
        if seeds > 1 and len(points) > 1:
            ax.fill_between(epochs, [p["min"] for p in points], [p["max"] for p in points], color=line.get_color(),
                            alpha=0.18, lw=0)
        elif seeds > 1:  # one snapshot has no area to shade: its range is a bar
            ax.vlines(epochs, points[0]["min"], points[0]["max"], color=line.get_color(), alpha=0.35, lw=6)
    counts = "/".join(map(str, samples)) or "snapshot"
    ax.set(xlabel="epoch", ylabel=f"FID ({counts} samples vs the test set)", yscale="log",
           title="Sample quality over training (lower is better)\nline: mean over seeds; shaded: min-max over seeds")
    last = max(p["epoch"] for points in bands.values() for p in points)
    ax.set_xlim(0, last + max(0.5, 0.03 * last))  # from the start of training; one snapshot still gets an axis
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, ncol=2 if len(bands) > 8 else 1, loc="upper left", bbox_to_anchor=(1.01, 1))
    return artifacts.save_figure(fig, path)
