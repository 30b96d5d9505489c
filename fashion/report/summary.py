"""The run's one table: its columns, and the same rows as markdown, CSV, JSON and a rich terminal table.

Rows are plain dicts keyed by :data:`COLUMNS`; a missing key is an empty cell. No timestamps anywhere,
so aggregating an unchanged run twice writes byte-identical files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from fashion import artifacts


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    fmt: str = "{}"
    better: str = ""
    "'low' or 'high' for quality metrics, shown as an arrow in the header."
    terminal: bool = True
    "Also in the rich table (the terminal is narrower than the page)."

    def format(self, value) -> str:
        if value is None or value == "":
            return ""
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        try:
            return self.fmt.format(value)
        except (ValueError, TypeError):
            return str(value)

    @property
    def header(self) -> str:
        return self.title + {"low": " ↓", "high": " ↑"}.get(self.better, "")


COLUMNS = (
    Column("job", "model"),
    Column("family", "family", terminal=False),
    Column("state", "status"),
    Column("epochs", "epochs"),
    Column("fid", "FID", "{:.2f}", "low"),
    Column("kid", "KID", "{:.4f}", "low"),
    Column("precision", "precision", "{:.3f}", "high"),
    Column("recall", "recall", "{:.3f}", "high"),
    Column("density", "density", "{:.3f}", "high", terminal=False),
    Column("coverage", "coverage", "{:.3f}", "high"),
    Column("is", "IS", "{:.2f}", "high"),
    Column("cond_acc", "cond. acc", "{:.1%}", "high"),
    Column("best_fid", "FID best ckpt", "{:.2f}", "low"),
    Column("best_epoch", "best epoch", "{}", terminal=False),
    Column("note", "note"),
    Column("losses", "final losses", terminal=False),
    Column("own", "own metrics", terminal=False),
    Column("s_per_epoch", "s/epoch", "{:.1f}"),
    Column("images_per_s", "images/s", "{:.0f}", terminal=False),
    Column("params", "params", terminal=False),
    Column("gpu", "GPU", terminal=False),
    Column("procs", "procs", "{:d}", terminal=False),
    Column("stamp", "measured under", terminal=False),
)
BY_KEY = {c.key: c for c in COLUMNS}


def cells(row: dict) -> dict[str, str]:
    """The row's values as display text, one per column."""
    return {c.key: c.format(row.get(c.key)) for c in COLUMNS}


def _plain(value):
    """JSON-safe: non-finite floats become strings ("nan"), floats keep 6 significant digits."""
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def write_summaries(report_dir: Path, run: str, header: dict, rows: list[dict]) -> list[Path]:
    """summary.json (full values), summary.csv (one column per table column), summary.md (the table)."""
    keys = [c.key for c in COLUMNS]
    written = [artifacts.write_json(report_dir / "summary.json", _plain({"run": run, **header, "rows": rows}))]
    written.append(artifacts.write_csv(report_dir / "summary.csv",
                                       [{k: _plain(r.get(k, "")) for k in keys} for r in rows]))
    lines = [f"# Run `{run}`", ""]
    lines += [f"- **{name}**: {text}" for name, text in header.items() if isinstance(text, str)]
    lines += ["", "| " + " | ".join(c.header for c in COLUMNS) + " |",
              "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for row in rows:
        text = cells(row)
        lines.append("| " + " | ".join(md_cell(text[k]) for k in keys) + " |")
    written.append(artifacts.write_text(report_dir / "summary.md", "\n".join(lines) + "\n"))
    return written


def md_cell(text) -> str:
    """One table cell: a pipe or a line break (a multi-line error) would end the row early."""
    return " ".join(text.replace("|", "\\|").split("\n")).replace("\r", " ")


def rich_table(run: str, rows: list[dict]):
    """The terminal's view of the table: the key columns, states coloured."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"run {run}", title_justify="left")
    shown = [c for c in COLUMNS if c.terminal]
    for c in shown:
        table.add_column(c.header, overflow="fold", max_width=48 if c.key == "note" else None,
                         justify="right" if c.fmt != "{}" else "left")
    colours = {"completed": "green", "running": "cyan", "queued": "cyan", "cancelled": "yellow",
               "interrupted": "yellow", "reference": "magenta"}
    for row in rows:
        text = {k: escape(v) for k, v in cells(row).items()}
        state = text["state"]
        text["state"] = f"[{colours.get(state, 'red')}]{state}[/]"
        table.add_row(*(text[c.key] for c in shown))
    return table


# Over seeds: one row per model (``gan/gan`` with ``gan/gan.seed1``...), from fashion.report.stats.

MODEL_KEYS = ("fid", "best_fid", "kid", "precision", "recall", "density", "coverage", "is", "cond_acc")
CHECKPOINT_WORDS = {"final": "the final generator's FID",
                    "best": "the best checkpoint's FID (selected on training images)"}


def model_cells(model: dict) -> dict[str, str]:
    """A model's numbers as text: ``mean ± std (n=3)`` per quality column, its failed seeds, and its own
    numbers in one cell."""
    from fashion.report.stats import format_failures, format_number

    numbers = model["numbers"]
    text = {"model": model["model"], "seeds": _seed_list(model), "failed": format_failures(model)}
    text.update({k: format_number(numbers.get(k), BY_KEY[k].fmt) for k in MODEL_KEYS})
    text["own"] = " · ".join(f"{k} {format_number(v)}" for k, v in numbers.items() if k not in MODEL_KEYS)
    return text


def _seed_list(model: dict) -> str:
    seeds = ", ".join(map(str, model["seeds"]))
    done = model["completed"]
    unfinished = len(model.get("unfinished", []))
    parts = [f"{done} completed"] if done != len(model["seeds"]) else []
    parts += [f"{model['failed']} failed"] if model.get("failed") else []
    parts += [f"{unfinished} unfinished"] if unfinished else []
    return seeds + (f" ({', '.join(parts)})" if parts else "")


def ranking_lines(ranked: list[dict], key: str = "FID") -> list[str]:
    """The ranking as sentences: each model's median and mean, its failures, and whether it differs from the
    first, naming the test; then the models no other is significantly better than."""
    from fashion.report.stats import format_interval, format_number

    lines = []
    for r in ranked:
        summary = {"n": r["n"], "mean": r["mean"], "std": r["std"], "ci": r["ci"]}
        ci = format_interval(summary, "{:.2f}")
        failed = f", {r['failed']} of {r['finished']} seeds failed" if r.get("failed") else ""
        said = (f"{r['rank']}. {r['model']}: {key} median {_median(r)}, mean {format_number(summary, '{:.2f}')}"
                + (f", 95% CI {ci}" if ci else "") + failed)
        if r["rank"] == 1:
            lines.append(f"{said}: {r['verdict']}")
        else:
            gap = f"{r['difference']:+.2f}" + (" (95% CI [{:+.2f}, {:+.2f}])".format(*r["difference_ci"])
                                               if r.get("difference_ci") else "")
            beaten = f"; significantly worse than {', '.join(r['beaten_by'])}" if r.get("beaten_by") else ""
            lines.append(f"{said}: {gap} vs the first, {r['verdict']} ({r['test']}){beaten}")
    if ranked:
        could = [r["model"] for r in ranked if r.get("could_be_best")]
        lines.append(f"Could be best (no model significantly better at 5%, over all "
                     f"{ranked[0].get('family_size', 0)} pairs tested): {', '.join(could)}")
    return lines


def _median(row: dict) -> str:
    return "a failure (half its seeds or more failed)" if not math.isfinite(row["median"]) else f"{row['median']:.2f}"


def ranking_title(rank_by: str) -> str:
    from fashion.report.stats import ALPHA, CORRECTION

    return (f"Which differences are real ({CHECKPOINT_WORDS.get(rank_by, rank_by)}; ordered by the median over "
            f"finished seeds, a failed seed worse than any; every pair by Welch's t-test over seeds, or an exact "
            f"rank test where a seed failed; {CORRECTION}, {ALPHA:.0%} for the whole table)")


def write_model_summaries(report_dir: Path, models: list[dict], ranked: list[dict], rank_by: str = "final",
                          left_out: list[str] = ()) -> list[Path]:
    """summary.md gets the models-over-seeds table and the ranking; models.csv one row per (model, number)."""
    from fashion.report.stats import CONFIDENCE, format_interval

    rows = []
    for m in models:
        for key, s in m["numbers"].items():
            low, high = s["ci"] or ("", "")
            rows.append({"model": m["model"], "number": key, "n": s["n"], "mean": _plain(s["mean"]),
                         "std": _plain(s["std"]) if s["std"] is not None else "", "ci_low": _plain(low),
                         "ci_high": _plain(high), "seeds": " ".join(map(str, s["seeds"])),
                         "values": " ".join(f"{v:.6g}" for v in s["values"]),
                         "failed": m.get("failed", 0), "finished": m.get("finished", "")})
    written = [artifacts.write_csv(report_dir / "models.csv", rows)] if rows else []
    if not models:
        return written
    titles = ["model", "seeds", "failed"] + [BY_KEY[k].header for k in MODEL_KEYS] + ["own numbers"]
    lines = ["", f"## Models over seeds (mean ± std over completed seeds; n = seeds; {CONFIDENCE:.0%} Student-t "
                 "interval below; failed: failed or diverged seeds of the finished ones)", "",
             "| " + " | ".join(titles) + " |", "|" + "|".join("---" for _ in titles) + "|"]
    for m in models:
        text = model_cells(m)
        for k in MODEL_KEYS:
            ci = format_interval(m["numbers"].get(k), BY_KEY[k].fmt)
            text[k] += f"<br>{ci}" if ci else ""
        lines.append("| " + " | ".join(md_cell(text[k]) for k in ["model", "seeds", "failed", *MODEL_KEYS, "own"])
                     + " |")
    lines += ["", f"## {ranking_title(rank_by)}", ""]
    lines += ranking_lines(ranked) or ["No model has 2 completed seeds with an FID yet."]
    lines += [f"- not ranked: {why}" for why in left_out]
    path = report_dir / "summary.md"
    written.append(artifacts.write_text(path, path.read_text() + "\n".join(lines) + "\n"))
    return written


def rich_models(models: list[dict], ranked: list[dict]):
    """The terminal's view of the models over seeds and of the FID ranking."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="models over seeds (mean ± std, n seeds)", title_justify="left")
    keys = [k for k in MODEL_KEYS if BY_KEY[k].terminal]
    for title in ["model", "seeds", "failed", *(BY_KEY[k].header for k in keys)]:
        table.add_column(title, overflow="fold")
    for m in models:
        text = model_cells(m)
        table.add_row(*(escape(text[k]) for k in ["model", "seeds", "failed", *keys]))
    lines = ranking_lines(ranked) or ["no model has 2 completed seeds with an FID yet"]
    return Group(table, "which differences are real (FID, every pair, Holm over all pairs):",
                 *(f"  {escape(line)}" for line in lines))


def sweep_lines(swept: dict) -> list[str]:
    """The sweep at an equal budget: per model its trials, failures and best trial, then the models ranked by it."""
    lines = []
    for model, entry in swept["models"].items():
        best = next((t for t in entry["trials"] if t["best"]), None)
        said = (f"best {best['trial']}, FID {best['score']:.2f} (median over {best['finished']} seed(s)), "
                + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in best["settings"].items())
                if best else "no trial measured yet")
        failed = entry["failed_trials"]
        rate = (f"; {entry['failed_seeds']} of {entry['finished_seeds']} finished seeds failed"
                if entry["finished_seeds"] else "")
        lines.append(f"{model}: {entry['in_curve']} of {len(entry['trials'])} trials in the curve "
                     f"({len(failed)} failed{': ' + ', '.join(failed) if failed else ''}){rate}; {said}")
        if entry["unfinished"]:
            lines.append(f"  unfinished: {', '.join(entry['unfinished'])}")
        if entry["left_out"]:
            lines.append(f"  left out: {', '.join(entry['left_out'])}")
    if not swept["equal_budget"]:
        unfinished = sum(len(v["unfinished"]) for v in swept["models"].values())
        lines.append("not at an equal budget yet: " + ", ".join(f"{m} {n}" for m, n in swept["budgets"].items())
                     + " finished trials in the curves" + (f"; {unfinished} trial(s) unfinished" if unfinished else ""))
    return lines + ["", f"Best trials ranked ({CHECKPOINT_WORDS.get(swept.get('rank_by'), '')}; each best trial was "
                        "picked on these seeds, so these tests favour it: retrain it with --best-of to confirm):"] \
        + (ranking_lines(swept["ranking"]) or ["no best trial has 2 completed seeds yet"])


def write_sweep(report_dir: Path, swept: dict) -> list[Path]:
    """sweep.csv: one row per trial (its settings, status, score, FID over its seeds under the ranking's
    checkpoint and the other); summary.md: the equal-budget comparison."""
    rows = []
    other = "best" if swept.get("rank_by") == "final" else "final"
    for model, entry in swept["models"].items():
        for t in entry["trials"]:
            fid, beside = t["fid"] or {}, t["other_fid"] or {}
            rows.append({"model": model, "trial": t["trial"], **{k: t["settings"].get(k, "") for k in entry["keys"]},
                         "status": t["status"], "score": _plain(t["score"]) if t["score"] is not None else "",
                         "fid_mean": _plain(fid.get("mean")) if fid else "",
                         "fid_std": _plain(fid.get("std")) if fid.get("std") is not None else "",
                         "completed": t["completed"], "failed": t["failed"], "finished": t["finished"],
                         f"{other}_fid_mean": _plain(beside.get("mean")) if beside else "", "best": t["best"]})
    written = [artifacts.write_csv(report_dir / "sweep.csv", rows)] if rows else []
    path = report_dir / "summary.md"
    text = ["", "## Sweep: models at an equal search budget", ""] + sweep_lines(swept)
    written.append(artifacts.write_text(path, path.read_text() + "\n".join(text) + "\n"))
    return written
