"""Which model is better, and by how much: numbers over seeds.

Jobs ``X``, ``X.seed1``, ``X.seed2``... are seeds of one model ``X``. Per model and number: mean, sample
standard deviation, a 95% Student-t interval for the mean, and the per-seed values. Models are ranked by
mean FID, and each is compared with the best by Welch's t-test (unequal variances) over its seeds, with
a 95% interval for the difference. The best is picked after looking and is compared with every other
model, so the p-values are Holm-adjusted over those comparisons: "significant" holds for the whole
ranking at 5%, not for each row alone. Only numbers measured under one stamp (fashion/measure.py) are
summarised or compared: a model measured under another is named, not ranked.
"""
from __future__ import annotations

import math
from collections import Counter

from fashion.runfolder import split_seed

CONFIDENCE = 0.95
ALPHA = 0.05
TEST_NAME = "Welch's t-test over seeds"
CORRECTION = "Holm"
# Columns of the table that are compared across seeds; own numbers (test accuracy, ELBO...) come on top.
QUALITY_KEYS = ("fid", "kid", "precision", "recall", "density", "coverage", "is", "cond_acc", "best_snapshot_fid")


def summarize(values: list[float], confidence: float = CONFIDENCE) -> dict:
    """n, mean, std (n-1), the Student-t interval for the mean and the values; one value has no spread."""
    from scipy import stats

    values = [float(v) for v in values]
    n = len(values)
    mean = sum(values) / n if n else None
    if n < 2:
        return {"n": n, "mean": mean, "std": None, "ci": None, "values": values}
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci": [mean - half, mean + half], "values": values}


def compare(a: list[float], b: list[float], alpha: float = ALPHA, confidence: float = CONFIDENCE) -> dict:
    """Welch's t-test of two models' seeds: {"test", "p", "t", "difference_ci" (of mean a - mean b),
    "significant", "verdict"}; n<2 on a side: no test."""
    from scipy import stats

    result = {"test": TEST_NAME, "alpha": alpha, "seeds_compared": [len(a), len(b)], "t": None, "p": None,
              "difference_ci": None, "significant": None}
    if len(a) < 2 or len(b) < 2:
        return {**result, "verdict": f"too few seeds to test (n={len(a)} vs n={len(b)}; each side needs 2)"}
    if len(set(a)) == 1 and len(set(b)) == 1:  # no spread on either side: Welch's t is undefined
        return {**result, "verdict": "no spread within either model's seeds: cannot test"}
    test = stats.ttest_ind(a, b, equal_var=False)
    interval = test.confidence_interval(confidence)
    p = float(test.pvalue)
    significant = bool(p < alpha)
    return {**result, "t": float(test.statistic), "p": p, "difference_ci": [float(interval.low), float(interval.high)],
            "significant": significant,
            "verdict": f"{'significant' if significant else 'not significant'} at {alpha:.0%} (p={p:.3g})"}


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment: the i-th smallest of m p-values times (m - i + 1), kept monotone, at
    most 1. Rejecting where the adjusted p < alpha keeps the chance of any false rejection below alpha."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def own_numbers(metrics: dict) -> dict[str, float]:
    """A job's own test numbers from its metrics.json, flattened: top-level numbers, the colorizer's
    ``test`` scores and the classifier's FGSM accuracy at each epsilon (``fgsm_all@0.1``)."""
    from fashion.runfolder import LOOP_KEYS

    out = {k: float(v) for k, v in metrics.items()
           if k not in LOOP_KEYS and _is_number(v)}
    test = metrics.get("test")
    if isinstance(test, dict):
        out.update({f"test_{k}": float(v) for k, v in test.items() if _is_number(v) and k != "images"})
    fgsm = metrics.get("fgsm")
    if isinstance(fgsm, dict):
        for where in ("all", "garment"):
            for eps, acc in zip(fgsm.get("epsilon", []), fgsm.get(f"accuracy_{where}_pixels", [])):
                if _is_number(acc):
                    out[f"fgsm_{where}@{eps:g}"] = float(acc)
    return out


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def group(rows: list[dict]) -> dict[str, list[dict]]:
    """Job rows by model (``gan/gan`` and ``gan/gan.seed<k>`` together), in first-seen order, seeds ascending.
    Reference rows are not models."""
    models: dict[str, list[dict]] = {}
    for row in rows:
        if row.get("state") == "reference":
            continue
        models.setdefault(split_seed(row["job"])[0], []).append(row)
    return {m: sorted(seeds, key=lambda r: split_seed(r["job"])[1]) for m, seeds in models.items()}


def model_summaries(rows: list[dict]) -> list[dict]:
    """One entry per model: its seeds, and for every quality column and own number the summary over the
    completed seeds that have it ({"fid": {"n", "mean", "std", "ci", "values"}, ...})."""
    out = []
    for model, seeds in group(rows).items():
        done = [r for r in seeds if r.get("state") == "completed"]
        stamps = sorted({r["stamp"] for r in done if r.get("stamp")})
        # Numbers measured under different stamps are not one sample: such a model gets no quality summary.
        keys = [k for k in QUALITY_KEYS if any(_is_number(r.get(k)) for r in done)] if len(stamps) <= 1 else []
        own = sorted({k for r in done for k in r.get("seed_numbers", {})})
        numbers = {}
        for key in keys:
            numbers[key] = {**summarize([r[key] for r in done if _is_number(r.get(key))]),
                            "seeds": [split_seed(r["job"])[1] for r in done if _is_number(r.get(key))]}
        for key in own:
            found = [r for r in done if _is_number(r.get("seed_numbers", {}).get(key))]
            numbers[key] = {**summarize([r["seed_numbers"][key] for r in found]),
                            "seeds": [split_seed(r["job"])[1] for r in found]}
        out.append({"model": model, "family": seeds[0].get("family", model.split("/")[0]),
                    "seeds": [split_seed(r["job"])[1] for r in seeds], "completed": len(done),
                    "jobs": [r["job"] for r in seeds], "numbers": numbers,
                    "stamp": stamps[0] if len(stamps) == 1 else None, "stamps": stamps})
    return out


def ranking_stamp(models: list[dict], key: str = "fid") -> str | None:
    """The stamp most scored models were measured under: the ranking compares those alone."""
    counts = Counter(m["stamp"] for m in models if m.get("stamp") and m["numbers"].get(key, {}).get("n"))
    return max(sorted(counts), key=counts.get) if counts else None


def not_ranked(models: list[dict], key: str = "fid") -> list[str]:
    """Why models with numbers are left out of the ranking: measured under another stamp, or several."""
    stamp = ranking_stamp(models, key)
    out = []
    for m in models:
        if len(m.get("stamps", [])) > 1:
            out.append(f"{m['model']}: its seeds were measured under {len(m['stamps'])} different stamps "
                       f"({'; '.join(m['stamps'])}), so they are not summarised or compared")
        elif m.get("stamp") and m["stamp"] != stamp and m["numbers"].get(key, {}).get("n"):
            out.append(f"{m['model']}: measured under {m['stamp']}, not the ranking's {stamp}")
    return out


def ranking(models: list[dict], key: str = "fid", lower_is_better: bool = True, alpha: float = ALPHA) -> list[dict]:
    """Models with a ``key`` value, best mean first; each compared with the best by Welch's t-test, the
    p-values Holm-adjusted over the comparisons that could be tested (``p_adjusted`` decides)."""
    stamp = ranking_stamp(models, key)
    scored = [m for m in models if m["numbers"].get(key, {}).get("n") and m.get("stamp") == stamp]
    scored.sort(key=lambda m: (m["numbers"][key]["mean"] * (1 if lower_is_better else -1), m["model"]))
    if not scored:
        return []
    best = scored[0]["numbers"][key]
    ranked = []
    for rank, m in enumerate(scored, 1):
        s = m["numbers"][key]
        entry = {"rank": rank, "model": m["model"], "job": m["jobs"][0], "stamp": stamp, "n": s["n"],
                 "mean": s["mean"],
                 "std": s["std"], "ci": s["ci"], "difference": s["mean"] - best["mean"]}
        if rank == 1:
            entry.update(verdict="best", test=TEST_NAME, t=None, p=None, difference_ci=None, significant=None)
        else:
            entry.update(compare(s["values"], best["values"], alpha))
        entry["p_adjusted"] = None
        ranked.append(entry)
    tested = [r for r in ranked if r["p"] is not None]
    for r, adjusted in zip(tested, holm([r["p"] for r in tested])):
        r["significant"] = bool(adjusted < alpha)
        r["p_adjusted"] = adjusted
        r["test"] = f"{TEST_NAME}, {CORRECTION}-adjusted over {len(tested)} comparison{'s' * (len(tested) != 1)}"
        r["verdict"] = (f"{'significant' if r['significant'] else 'not significant'} at {alpha:.0%} "
                        f"(p={r['p']:.3g}; {adjusted:.3g} after {CORRECTION})")
    return ranked


def format_number(summary: dict | None, fmt: str = "{:.4g}") -> str:
    """``mean ± std (n=3)`` or ``value (1 seed)``; empty without values."""
    if not summary or not summary.get("n"):
        return ""
    mean = _fmt(fmt, summary["mean"])
    if summary["n"] == 1:
        return f"{mean} (1 seed)"
    return f"{mean} ± {_fmt(fmt, summary['std'])} (n={summary['n']})"


def format_interval(summary: dict | None, fmt: str = "{:.4g}") -> str:
    if not summary or not summary.get("ci"):
        return ""
    low, high = summary["ci"]
    return f"[{_fmt(fmt, low)}, {_fmt(fmt, high)}]"


def _fmt(fmt: str, value: float) -> str:
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def curve_bands(curves: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """FID-over-epochs per model: per epoch the mean, min and max over the seeds that have that epoch."""
    by_model: dict[str, dict[int, list[float]]] = {}
    for job, points in curves.items():
        model = split_seed(job)[0]
        for p in points:
            by_model.setdefault(model, {}).setdefault(int(p["epoch"]), []).append(float(p["fid"]))
    return {model: [{"epoch": e, "mean": sum(v) / len(v), "min": min(v), "max": max(v), "n": len(v)}
                    for e, v in sorted(epochs.items())]
            for model, epochs in by_model.items()}
