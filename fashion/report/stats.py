"""Which model is better, and by how much: numbers over seeds, with failed seeds counted.

Jobs ``X``, ``X.seed1``, ``X.seed2``... are seeds of one model ``X``. Per model and number: mean, sample
standard deviation, a 95% Student-t interval for the mean and the per-seed values over its completed seeds,
and its failures (failed or diverged seeds) out of its finished seeds. A failed seed has no FID but is worse
than any measured one: it counts as +inf, so models are ordered by the median FID over their finished seeds
(a mean is undefined once a seed failed), and a model with half its seeds failed orders below every model
with fewer.

Which differences are real: every pair of ranked models is tested, by Welch's t-test over their seeds (a
pair with a failed seed: an exact permutation test of the seeds' ranks), and the p-values are Holm-adjusted
over all the pairs. The chance that any two equally good models are called different anywhere in the table
is then at most 5%, whichever model came out first: the first is picked after looking, and a family of
tests against it alone would not hold that (benchmarks/fwer.py simulates both). Only models with at least
2 completed seeds are ranked, and only numbers measured under one stamp (fashion/measure.py) are compared:
the others are named, not ranked.
"""
from __future__ import annotations

import math
import statistics
from collections import Counter

import numpy as np

from fashion.runfolder import split_seed

CONFIDENCE = 0.95
ALPHA = 0.05
TEST_NAME = "Welch's t-test over seeds"
RANK_TEST = "exact permutation test of the seeds' ranks (a failed seed ranks below every FID)"
CORRECTION = "Holm over all pairs"
PERMUTATIONS = 9999
"A pair whose seeds split more ways than this is rank-tested on this many seeded random splits."
MIN_SEEDS = 2
"Completed seeds a model needs to be ranked: one seed has no spread to test against."
FAILED = ("failed", "diverged")
FINISHED = ("completed", *FAILED)
CHECKPOINTS = ("final", "best")
RANK_BY = "final"
"The default ranking: the generator each job keeps (generator.pt), which every completed job has (docs/report.md)."
# Columns of the table that are compared across seeds; own numbers (test accuracy, ELBO...) come on top.
QUALITY_KEYS = ("fid", "kid", "precision", "recall", "density", "coverage", "is", "cond_acc", "best_fid")


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
    "significant" (unadjusted), "verdict"}; n<2 on a side: no test."""
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
            "significant": significant, "lower": "a" if float(test.statistic) < 0 else "b",
            "verdict": f"{'significant' if significant else 'not significant'} at {alpha:.0%} (p={p:.3g})"}


def rank_test(a: list[float], b: list[float], alpha: float = ALPHA) -> dict:
    """Two models' seeds where some failed (±inf): a permutation test of the difference in mean rank, exact
    while the seeds split at most PERMUTATIONS ways (else that many seeded random splits). Under "both models
    draw from one distribution, failures included" every split is equally likely, so the p-value is valid
    whatever the distribution; ties (two failures) share their rank."""
    from scipy import stats

    result = {"test": RANK_TEST, "alpha": alpha, "seeds_compared": [len(a), len(b)], "t": None, "p": None,
              "difference_ci": None, "significant": None}
    ranks = stats.rankdata(np.asarray(list(a) + list(b), dtype=float))
    if len(set(ranks)) == 1:
        return {**result, "verdict": "every seed ties (all failed): cannot test"}
    ra, rb = ranks[:len(a)], ranks[len(a):]
    test = stats.permutation_test((ra, rb), lambda x, y, axis: x.mean(axis) - y.mean(axis), vectorized=True,
                                  n_resamples=PERMUTATIONS, rng=np.random.default_rng(0))
    p = float(test.pvalue)
    significant = bool(p < alpha)
    return {**result, "p": p, "significant": significant, "lower": "a" if ra.mean() < rb.mean() else "b",
            "verdict": f"{'significant' if significant else 'not significant'} at {alpha:.0%} (p={p:.3g})"}


def pair_test(a: list[float], b: list[float], alpha: float = ALPHA) -> dict:
    """The test of one pair: Welch's t-test on the FIDs, or the rank test where a seed failed (±inf)."""
    if all(math.isfinite(v) for v in (*a, *b)):
        return compare(a, b, alpha)
    return rank_test(a, b, alpha)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment: the i-th smallest of m p-values times (m - i + 1), kept monotone, at
    most 1. Rejecting where the adjusted p < alpha keeps the chance of any false rejection below alpha."""
    return holm_array(np.asarray(pvalues, dtype=float)).tolist()


def holm_array(pvalues: np.ndarray) -> np.ndarray:
    """:func:`holm` along the last axis, for many families at once (benchmarks/fwer.py's studies)."""
    m = pvalues.shape[-1]
    if m == 0:
        return pvalues.copy()
    order = np.argsort(pvalues, axis=-1, kind="stable")
    ranked = np.take_along_axis(pvalues, order, axis=-1) * (m - np.arange(m))
    adjusted = np.minimum(1.0, np.maximum.accumulate(ranked, axis=-1))
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return out


def all_pairs_rejected(values: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """The ranking's procedure for studies of failure-free models with equal seed counts, vectorised:
    ``values`` (studies, models, seeds) of FIDs; returns (studies, pairs) booleans, True where the pair is
    called different. The pairs are ``numpy.triu_indices(models, 1)``'s."""
    from scipy import stats

    first, second = np.triu_indices(values.shape[-2], 1)
    p = stats.ttest_ind(values[..., first, :], values[..., second, :], axis=-1, equal_var=False).pvalue
    return holm_array(p) < alpha


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


def checkpoint_view(rows: list[dict], checkpoint: str) -> list[dict]:
    """The rows with the quality numbers of one checkpoint: "final" (the rows as they are) or "best" (each
    row's ``best`` numbers and stamp in their place; a row without them has none)."""
    if checkpoint == "final":
        return rows
    out = []
    for row in rows:
        kept = {k: v for k, v in row.items() if k not in QUALITY_KEYS and k != "stamp"}
        best = row.get("best") or {}
        if best.get("values"):
            kept.update({k: v for k, v in best["values"].items() if k in QUALITY_KEYS}, stamp=best["stamp"])
        out.append(kept)
    return out


def model_summaries(rows: list[dict]) -> list[dict]:
    """One entry per model: its seeds, its failures (failed or diverged seeds) and unfinished seeds, and for
    every quality column and own number the summary over the completed seeds that have it
    ({"fid": {"n", "mean", "std", "ci", "values", "seeds"}, ...})."""
    out = []
    for model, seeds in group(rows).items():
        done = [r for r in seeds if r.get("state") == "completed"]
        failed = [r for r in seeds if r.get("state") in FAILED]
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
        finished = len(done) + len(failed)
        out.append({"model": model, "family": seeds[0].get("family", model.split("/")[0]),
                    "seeds": [split_seed(r["job"])[1] for r in seeds], "completed": len(done),
                    "finished": finished, "failed": len(failed),
                    "failure_rate": len(failed) / finished if finished else None,
                    "failures": [{"seed": split_seed(r["job"])[1], "state": r["state"]} for r in failed],
                    "unfinished": [{"seed": split_seed(r["job"])[1], "state": r.get("state", "unknown")}
                                   for r in seeds if r.get("state") not in FINISHED],
                    "jobs": [r["job"] for r in seeds], "numbers": numbers,
                    "stamp": stamps[0] if len(stamps) == 1 else None, "stamps": stamps})
    return out


def with_failures(model: dict, key: str = "fid", lower_is_better: bool = True) -> list[float]:
    """The model's ``key`` over its finished seeds: the completed seeds' values, then one ±inf (the worst) per
    failed seed."""
    worst = math.inf if lower_is_better else -math.inf
    return list(model["numbers"].get(key, {}).get("values", [])) + [worst] * model.get("failed", 0)


def ranking_stamp(models: list[dict], key: str = "fid") -> str | None:
    """The stamp most scored models were measured under: the ranking compares those alone."""
    counts = Counter(m["stamp"] for m in models if m.get("stamp") and m["numbers"].get(key, {}).get("n"))
    return max(sorted(counts), key=counts.get) if counts else None


def not_ranked(models: list[dict], key: str = "fid") -> list[str]:
    """Why models with numbers are left out of the ranking: measured under another stamp, or several, or
    fewer than MIN_SEEDS completed seeds."""
    stamp = ranking_stamp(models, key)
    out = []
    for m in models:
        n = m["numbers"].get(key, {}).get("n", 0)
        if len(m.get("stamps", [])) > 1:
            out.append(f"{m['model']}: its seeds were measured under {len(m['stamps'])} different stamps "
                       f"({'; '.join(m['stamps'])}), so they are not summarised or compared")
        elif m.get("stamp") and m["stamp"] != stamp and n:
            out.append(f"{m['model']}: measured under {m['stamp']}, not the ranking's {stamp}")
        elif n and n < MIN_SEEDS:
            out.append(f"{m['model']}: {n} completed seed with a {key}{failure_words(m)}; a model needs "
                       f"{MIN_SEEDS} to be ranked")
    return out


def failure_words(model: dict) -> str:
    """``" (2 of 3 finished seeds failed: seed 1 diverged, seed 2 failed)"``, or "" without failures."""
    if not model.get("failed"):
        return ""
    which = ", ".join(f"seed {f['seed']} {f['state']}" for f in model["failures"])
    return f" ({model['failed']} of {model['finished']} finished seeds failed: {which})"


def ranking(models: list[dict], key: str = "fid", lower_is_better: bool = True, alpha: float = ALPHA) -> list[dict]:
    """Models with at least MIN_SEEDS completed ``key`` values under the ranking's stamp, best median first
    (a failed seed counts as the worst value); every pair tested (:func:`pair_test`) and the p-values
    Holm-adjusted over all pairs. Each row: its numbers, its test against the first, which models are
    significantly better than it (``beaten_by``) and whether any is (``could_be_best``)."""
    stamp = ranking_stamp(models, key)
    sign = 1 if lower_is_better else -1
    scored = [m for m in models if m.get("stamp") == stamp and m["numbers"].get(key, {}).get("n", 0) >= MIN_SEEDS]
    samples = {m["model"]: with_failures(m, key, lower_is_better) for m in scored}
    medians = {name: statistics.median(values) for name, values in samples.items()}
    scored.sort(key=lambda m: (sign * medians[m["model"]], sign * m["numbers"][key]["mean"], m["model"]))
    names = [m["model"] for m in scored]
    pairs = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            pairs[a, b] = pair_test(samples[a], samples[b], alpha)
    tested = [pair for pair, test in pairs.items() if test["p"] is not None]
    for pair, adjusted in zip(tested, holm([pairs[pair]["p"] for pair in tested])):
        test = pairs[pair]
        lower = pair[0] if test["lower"] == "a" else pair[1]
        test.update(p_adjusted=adjusted, significant=bool(adjusted < alpha),
                    better=lower if lower_is_better else next(m for m in pair if m != lower))
    family = f"{CORRECTION} ({len(tested)} pair{'s' * (len(tested) != 1)} tested)"
    ranked = []
    for rank, m in enumerate(scored, 1):
        s, name = m["numbers"][key], m["model"]
        mine = {other: pairs.get((name, other)) or pairs[other, name] for other in names if other != name}
        beaten_by = [other for other, test in mine.items() if test.get("significant") and test["better"] == other]
        entry = {"rank": rank, "model": name, "job": m["jobs"][0], "stamp": stamp, "n": s["n"],
                 "failed": m.get("failed", 0), "finished": m.get("finished", s["n"]),
                 "failure_rate": m.get("failure_rate"), "median": medians[name], "mean": s["mean"], "std": s["std"],
                 "ci": s["ci"], "difference": s["mean"] - scored[0]["numbers"][key]["mean"],
                 "beaten_by": beaten_by, "better_than": [o for o, t in mine.items() if t.get("significant")
                                                         and t["better"] == name],
                 "could_be_best": not beaten_by, "family_size": len(tested),
                 "pairs": {o: {k: t.get(k) for k in ("test", "p", "p_adjusted", "significant", "better")}
                           for o, t in mine.items()}}
        if rank == 1:
            entry.update(test=None, t=None, p=None, p_adjusted=None, difference_ci=None, significant=None,
                         verdict="first" + (f"; yet significantly worse than {', '.join(beaten_by)}" if beaten_by
                                            else ""))
        else:
            vs = mine[names[0]]  # tested as (first, this): its t and interval turned to this minus the first
            entry.update(t=-vs["t"] if vs.get("t") is not None else None, p=vs["p"],
                         difference_ci=[-vs["difference_ci"][1], -vs["difference_ci"][0]] if vs.get("difference_ci")
                         else None, p_adjusted=vs.get("p_adjusted"),
                         significant=vs["significant"],
                         test=vs["test"] + (f", {family}" if vs["p"] is not None else ""))
            if vs["p"] is None:
                entry["verdict"] = vs["verdict"]
            else:
                said = "significant" if vs["significant"] else "not significant"
                entry["verdict"] = (f"{said} at {alpha:.0%} over all pairs (p={vs['p']:.3g}; "
                                    f"{vs['p_adjusted']:.3g} after {CORRECTION})")
        ranked.append(entry)
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


def format_failures(model: dict) -> str:
    """``1 of 3`` failed seeds out of finished ones; empty when nothing finished."""
    return f"{model['failed']} of {model['finished']}" if model.get("finished") else ""


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
