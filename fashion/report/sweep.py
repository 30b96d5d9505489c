"""The sweep view: models compared at an equal search budget (Lucic et al. 2018), from the run's sweep.json
and the trials' rows, failures counted.

Per swept model: each trial's settings, its seeds' FIDs and failures, and its score: the median FID over
its finished seeds, a failed or diverged seed counting as +inf (worse than any FID), so a trial with half its
seeds failed is itself a failure. Every finished trial is in the "best FID within a budget of b trials" curve,
the failures too: its line is the expected best of b trials, exact over the b-subsets of the model's trials
(an unbiased estimate for b fresh trials; undefined, and left out, while b trials could all be failures);
beside it the chance that the best of b is a failure, and the 10-90% band of the best of b fresh trials
drawn from the model's trials, P(best of b <= x_(i)) = 1 - ((n - i)/n)^b, which keeps its width at b = n.
Only trials measured under the ranking's stamp enter; unfinished trials are named apart from failed ones.
The models are then ranked by their best trials with the ranking over seeds (fashion/report/stats.py).
The best trial is picked after looking, so its FID is optimistic and the tests of that ranking favour it:
``launch.py --best-of RUN --seeds N`` retrains it from fresh seeds, which is the protocol's confirmation.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path

from fashion import artifacts
from fashion.report import stats

SWEEP_FILE = "sweep.json"
BAND = (0.1, 0.9)


def best_of_budget(values: list[float], budget: int) -> dict:
    """The best (lowest) of ``budget`` trials, from ``values`` (one per trial, +inf for a failed one):
    ``expected``, exact over every b-subset (the i-th smallest of n is the best of a random b-subset with
    probability C(n-i, b-1) / C(n, b); None while a subset of failures alone is possible); ``failure``, the
    chance that every trial of a b-subset failed, C(f, b) / C(n, b); and the median and BAND quantiles of the
    best of b fresh trials drawn from these, P(best <= x_(i)) = 1 - ((n - i)/n)^b (+inf: a failure)."""
    ordered, n = sorted(values), len(values)
    if not 1 <= budget <= n:
        raise ValueError(f"budget {budget}: between 1 and the {n} trials")
    failed = sum(1 for v in values if v == math.inf)
    total = math.comb(n, budget)
    chances = [math.comb(n - i, budget - 1) / total for i in range(1, n + 1)]
    expected = None if failed >= budget else sum(p * v for p, v in zip(chances, ordered) if p)

    def quantile(q: float) -> float:
        return next(v for i, v in enumerate(ordered, 1) if 1 - ((n - i) / n) ** budget >= q - 1e-12)

    return {"budget": budget, "expected": expected, "failure": math.comb(failed, budget) / total,
            "median": quantile(0.5), "low": quantile(BAND[0]), "high": quantile(BAND[1])}


def trial_score(summary: dict) -> float:
    """A trial's FID for the curve: the median over its finished seeds, a failed seed +inf."""
    return statistics.median(stats.with_failures(summary))


def view(run_dir: Path, models: list[dict], rank_by: str = stats.RANK_BY, others: list[dict] = ()) -> dict | None:
    """The sweep section of the report, or None for a run without a sweep.json. ``models``: the report's
    model summaries under the ranking's checkpoint ``rank_by``, where every trial is a model of its own
    (``gan/gan.t007`` over its seeds); ``others``: the same under the other checkpoint, shown beside."""
    spec = artifacts.read_json(Path(run_dir) / SWEEP_FILE)
    if not isinstance(spec, dict) or not spec.get("models"):
        return None
    by_trial, beside = {m["model"]: m for m in models}, {m["model"]: m for m in others}
    stamp = stats.ranking_stamp(models)
    out = {"seed": spec.get("seed"), "best_of": spec.get("best_of"), "rank_by": rank_by, "stamp": stamp, "models": {}}
    best_trials = []
    for model, entry in spec["models"].items():
        keys = sorted({k for settings in entry.get("trials", {}).values() for k in settings})
        trials = [trial_entry(model, trial, settings, by_trial.get(f"{model}.{trial}"), stamp,
                              beside.get(f"{model}.{trial}"))
                  for trial, settings in sorted(entry.get("trials", {}).items())]
        curve_trials = [t for t in trials if t["status"] in ("measured", "failed")]
        best = min((t for t in trials if t["status"] == "measured"), key=lambda t: t["score"], default=None)
        for t in trials:
            t["best"] = t is best
        scores = [math.inf if t["status"] == "failed" else t["score"] for t in curve_trials]
        finished = sum(t["finished"] for t in trials)
        failed_seeds = sum(t["failed"] for t in trials)
        out["models"][model] = {
            "space": entry.get("space", []), "keys": keys, "trials": trials, "in_curve": len(curve_trials),
            "measured": sum(t["status"] == "measured" for t in trials),
            "failed_trials": [t["trial"] for t in trials if t["status"] == "failed"],
            "unfinished": [f"{t['trial']} ({t['why']})" for t in trials if t["status"] == "unfinished"],
            "left_out": [f"{t['trial']} ({t['why']})" for t in trials if t["status"] == "left out"],
            "failed_seeds": failed_seeds, "finished_seeds": finished,
            "failure_rate": failed_seeds / finished if finished else None,
            "best": best and best["trial"],
            "budget_curve": [best_of_budget(scores, b) for b in range(1, len(scores) + 1)]}
        if best is not None:
            best_trials.append({**by_trial[best["job"]], "model": model, "trial": best["trial"]})
    budgets = {m: v["in_curve"] for m, v in out["models"].items()}
    out["equal_budget"] = len(set(budgets.values())) <= 1 and not any(v["unfinished"] for v in out["models"].values())
    out["budgets"] = budgets
    out["ranking"] = stats.ranking(best_trials)
    for row in out["ranking"]:
        row["trial"] = next(t["trial"] for t in best_trials if t["model"] == row["model"])
    return out


def trial_entry(model: str, trial: str, settings: dict, summary: dict | None, stamp: str | None,
                other: dict | None) -> dict:
    """One trial of the view: its numbers and its status, "measured", "failed" (its score is +inf: half its
    finished seeds failed or more), "unfinished" (a seed still to finish) or "left out" (measured under another
    stamp, or not at all), with why."""
    summary = summary or {}
    numbers = summary.get("numbers", {})
    entry = {"trial": trial, "job": f"{model}.{trial}", "settings": settings, "fid": numbers.get("fid"),
             "other_fid": (other or {}).get("numbers", {}).get("fid"), "stamp": summary.get("stamp"),
             "completed": summary.get("completed", 0), "failed": summary.get("failed", 0),
             "finished": summary.get("finished", 0), "score": None, "why": ""}
    if not summary:
        return {**entry, "status": "unfinished", "why": "no job folder yet"}
    if summary["unfinished"]:
        states = sorted({u["state"] for u in summary["unfinished"]})
        return {**entry, "status": "unfinished", "why": f"{len(summary['unfinished'])} seed(s) {', '.join(states)}"}
    if len(summary.get("stamps", [])) > 1 or (summary.get("stamp") and summary["stamp"] != stamp):
        return {**entry, "status": "left out", "why": f"measured under {'; '.join(summary['stamps'])}, not the "
                                                       f"ranking's {stamp}"}
    if summary["completed"] > (entry["fid"] or {}).get("n", 0):
        return {**entry, "status": "left out", "why": "a completed seed has no FID under this checkpoint"}
    score = trial_score(summary)
    return {**entry, "status": "failed" if score == math.inf else "measured",
            "score": None if score == math.inf else score}


def plot_budget_curves(sweep: dict, path: Path) -> Path | None:
    """Every swept model's best FID within a budget of b trials (Lucic et al.'s figure): the expected best
    (exact; missing while b trials could all be failures), the 10-90% band of the best of b fresh trials (a
    failure drawn at the top), and below it the chance that the best of b trials is a failure."""
    curves = {m: v["budget_curve"] for m, v in sweep["models"].items() if v["budget_curve"]}
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, fail_ax) = plt.subplots(2, 1, figsize=(7.5, 5.8), sharex=True, height_ratios=(3, 1),
                                      layout="constrained")
    finite = [v for points in curves.values() for p in points for v in (p["low"], p["high"], p["expected"])
              if v is not None and math.isfinite(v)]
    top = max(finite) * 1.5 if finite else 1.0
    for name, points in curves.items():
        budgets = [p["budget"] for p in points]
        failed = len(sweep["models"][name]["failed_trials"])
        line, = ax.plot(budgets, [p["expected"] if p["expected"] is not None else math.nan for p in points],
                        marker="o", ms=3, lw=1.4, label=f"{name} ({len(points)} trials, {failed} failed)")
        ax.fill_between(budgets, [min(p["low"], top) for p in points], [min(p["high"], top) for p in points],
                        color=line.get_color(), alpha=0.15, lw=0)
        fail_ax.plot(budgets, [p["failure"] for p in points], marker="o", ms=3, lw=1.2, color=line.get_color())
    ax.set(ylabel="best FID within the budget", yscale="log", ylim=(None, top),
           title="Best FID within a budget of b trials (lower is better)\nline: expected over the model's "
                 "trials; band: 10-90% of the best of b fresh trials (failures at the top)")
    fail_ax.set(xlabel="budget: trials of the model's search", ylabel="P(best is a failure)", ylim=(-0.03, 1.03))
    fail_ax.xaxis.get_major_locator().set_params(integer=True)
    for a in (ax, fail_ax):
        a.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return artifacts.save_figure(fig, path)
