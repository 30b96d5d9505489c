"""The sweep view: models compared at an equal search budget (Lucic et al. 2018), from the run's sweep.json
and the trials' rows.

Per swept model: each trial's settings and its FID (mean over the trial's seeds), the best trial, and the
"best FID within a budget of b trials" curve: the expected best of b trials drawn without replacement from
the model's trials, computed exactly from the sorted trial FIDs (no bootstrap), with the 10-90% band of that
best. Models are then ranked by their best trials, with the Welch/Holm machinery of the ranking over seeds
applied to the best trials' seeds. The best trial is picked after looking, so its FID is optimistic:
``launch.py --best-of RUN --seeds N`` retrains it from fresh seeds, which is the protocol's confirmation.
"""
from __future__ import annotations

import math
from pathlib import Path

from fashion import artifacts
from fashion.report import stats

SWEEP_FILE = "sweep.json"
BAND = (0.1, 0.9)


def best_of_budget(values: list[float], budget: int) -> dict:
    """The best (lowest) of ``budget`` values drawn without replacement from ``values``: its expected value
    and the BAND quantiles of its distribution, exactly: the i-th smallest of n is the best of a random
    b-subset with probability C(n-i, b-1) / C(n, b)."""
    ordered, n = sorted(values), len(values)
    if not 1 <= budget <= n:
        raise ValueError(f"budget {budget}: between 1 and the {n} trials")
    total = math.comb(n, budget)
    chances = [math.comb(n - i, budget - 1) / total for i in range(1, n + 1)]
    expected = sum(p * v for p, v in zip(chances, ordered))

    def quantile(q: float) -> float:
        running = 0.0
        for p, v in zip(chances, ordered):
            running += p
            if running >= q - 1e-12:
                return v
        return ordered[-1]

    return {"budget": budget, "expected": expected, "low": quantile(BAND[0]), "high": quantile(BAND[1])}


def view(run_dir: Path, models: list[dict]) -> dict | None:
    """The sweep section of the report, or None for a run without a sweep.json. ``models``: the report's
    model summaries, where every trial is a model of its own (``gan/gan.t007`` over its seeds)."""
    spec = artifacts.read_json(Path(run_dir) / SWEEP_FILE)
    if not isinstance(spec, dict) or not spec.get("models"):
        return None
    by_trial = {m["model"]: m for m in models}
    out = {"seed": spec.get("seed"), "best_of": spec.get("best_of"), "models": {}}
    best_trials = []
    for model, entry in spec["models"].items():
        keys = sorted({k for settings in entry.get("trials", {}).values() for k in settings})
        trials = []
        for trial, settings in sorted(entry.get("trials", {}).items()):
            summary = by_trial.get(f"{model}.{trial}", {})
            numbers = summary.get("numbers", {})
            trials.append({"trial": trial, "job": f"{model}.{trial}", "settings": settings,
                           "fid": numbers.get("fid"), "best_snapshot_fid": numbers.get("best_snapshot_fid"),
                           "stamp": summary.get("stamp"), "completed": summary.get("completed", 0)})
        scored = [t for t in trials if t["fid"] and t["fid"].get("n")]
        best = min(scored, key=lambda t: t["fid"]["mean"], default=None)
        for t in trials:
            t["best"] = t is best
        curve = [best_of_budget([t["fid"]["mean"] for t in scored], b) for b in range(1, len(scored) + 1)]
        out["models"][model] = {"space": entry.get("space", []), "keys": keys, "trials": trials,
                                "measured": len(scored), "best": best and best["trial"], "budget_curve": curve}
        if best is not None:
            best_trials.append({**by_trial[best["job"]], "model": model, "trial": best["trial"]})
    budgets = {m: v["measured"] for m, v in out["models"].items()}
    out["equal_budget"] = len(set(budgets.values())) <= 1
    out["budgets"] = budgets
    out["ranking"] = stats.ranking(best_trials)
    for row in out["ranking"]:
        row["trial"] = next(t["trial"] for t in best_trials if t["model"] == row["model"])
    return out


def plot_budget_curves(sweep: dict, path: Path) -> Path | None:
    """Every swept model's expected best FID within a budget of b trials, on one plot (Lucic et al.'s
    figure), with the 10-90% band of that best."""
    curves = {m: v["budget_curve"] for m, v in sweep["models"].items() if v["budget_curve"]}
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name, points in curves.items():
        budgets = [p["budget"] for p in points]
        line, = ax.plot(budgets, [p["expected"] for p in points], marker="o", ms=3, lw=1.4,
                        label=f"{name} ({len(points)} trials)")
        ax.fill_between(budgets, [p["low"] for p in points], [p["high"] for p in points], color=line.get_color(),
                        alpha=0.15, lw=0)
    ax.set(xlabel="budget: trials of the model's search", ylabel="best FID within the budget",
           title="Best FID within a budget of b trials (lower is better)\n"
                 "line: expected over random subsets; band: 10-90% of that best", yscale="log")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return artifacts.save_figure(fig, path)
