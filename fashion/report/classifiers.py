"""The classifiers beside the write-up they reproduce: Brayton, Patel, Selvia and Zhang's "E_{in-style}"
(SJSU), section VI-A and its Fig. 7. Per classify model, over its seeds: test and train accuracy, and FGSM
accuracy against epsilon with noise on the garment's pixels (the write-up's variant) and on every pixel; one
plot of every classifier's curves with the write-up's claims marked, and one table. Reads the model summaries
(fashion.report.stats) only.
"""
from __future__ import annotations

import re
from pathlib import Path

FAMILY = "classify"
PLOT = "classifiers_fgsm.png"
SOURCE = "Brayton, Patel, Selvia, Zhang, E_{in-style} (SJSU), VI-A and Fig. 7"
PAPER = {
    "test_accuracy": {"classify/dense": 0.88, "classify/cnn": 0.90},  # "the dense network achieved 88% ... 90%"
    "train_accuracy": {"classify/dense": 0.91, "classify/cnn": 0.91},  # "Both classifiers had a training accuracy of 91%"
    "fgsm_epsilon": 0.05, "fgsm_accuracy": 0.75,  # "with an epsilon value of 0.05 we still saw ... 75%"
    "visible_epsilon": 0.1,  # "The adversarial noise can be visually noticed with an epsilon of 0.1"
    "variant": "garment",  # the write-up adds its noise only to pixels brighter than 0
}
VARIANTS = {"garment": "noise on garment pixels (the write-up's)", "all": "noise on every pixel"}
KEY = re.compile(r"fgsm_(?P<where>garment|all)@(?P<eps>[0-9.e+-]+)$")


def view(models: list[dict]) -> dict | None:
    """Every classify model's accuracies and FGSM curves over its seeds, with the write-up's claims; None
    without a classify model that has numbers."""
    found = []
    for m in models:
        if m.get("family") != FAMILY or not m.get("numbers"):
            continue
        numbers = m["numbers"]
        curves = {where: [] for where in VARIANTS}
        for key, s in numbers.items():
            if (match := KEY.match(key)) and s.get("n"):
                curves[match["where"]].append({"epsilon": float(match["eps"]), **_spread(s)})
        if not any(curves.values()) and "test_accuracy" not in numbers:
            continue
        found.append({"model": m["model"], "seeds": m.get("completed", 0),
                      **{k: _spread(numbers[k]) for k in ("test_accuracy", "train_accuracy") if numbers.get(k, {}).get("n")},
                      "fgsm": {where: sorted(points, key=lambda p: p["epsilon"]) for where, points in curves.items()}})
    return {"source": SOURCE, "paper": PAPER, "models": found} if found else None


def _spread(summary: dict) -> dict:
    values = summary["values"]
    return {"mean": summary["mean"], "std": summary.get("std"), "n": summary["n"], "min": min(values),
            "max": max(values)}


def at(model: dict, where: str, epsilon: float) -> dict | None:
    """The model's FGSM point at ``epsilon`` for one variant, or None when it was not measured there."""
    return next((p for p in model["fgsm"][where] if abs(p["epsilon"] - epsilon) < 1e-9), None)


def table(classified: dict) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of text: each classifier's measured numbers, each followed by the write-up's claim."""
    paper, eps, visible = classified["paper"], classified["paper"]["fgsm_epsilon"], classified["paper"]["visible_epsilon"]
    header = ["model", "seeds", "test accuracy", "SJSU", "train accuracy", "SJSU",
              f"FGSM ε={eps:g}, garment pixels", "SJSU", f"FGSM ε={visible:g}, garment pixels", "SJSU",
              f"FGSM ε={eps:g}, every pixel"]
    rows = []
    for m in classified["models"]:
        claimed = [paper[k].get(m["model"]) for k in ("test_accuracy", "train_accuracy")]
        rows.append([m["model"], str(m["seeds"]),
                     _percent(m.get("test_accuracy")), _claim(claimed[0]),
                     _percent(m.get("train_accuracy")), _claim(claimed[1]),
                     _percent(at(m, "garment", eps)), _claim(paper["fgsm_accuracy"]),
                     _percent(at(m, "garment", visible)), "noise visible", _percent(at(m, "all", eps))])
    return header, rows


def _claim(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def _percent(point: dict | None) -> str:
    if not point:
        return "not measured"
    text = f"{point['mean']:.1%}"
    return text + (f" ± {point['std']:.1%} (n={point['n']})" if point["n"] > 1 and point["std"] is not None else "")


def markdown(classified: dict) -> list[str]:
    """The table as markdown lines."""
    header, rows = table(classified)
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def plot(classified: dict, path: Path) -> Path:
    """Accuracy against epsilon for every classifier (mean over seeds, min-max shaded): solid with noise on the
    garment's pixels, dashed on every pixel; the write-up's claims as black markers and a dotted line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fashion import artifacts

    paper = classified["paper"]
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    colours = plt.get_cmap("tab10")
    for i, m in enumerate(classified["models"]):
        colour = colours(i % 10)
        for where, style in (("garment", "o-"), ("all", "s--")):
            points = m["fgsm"][where]
            if not points:
                continue
            eps = [p["epsilon"] for p in points]
            ax.plot(eps, [p["mean"] for p in points], style, color=colour, ms=4, lw=1.5,
                    label=f"{m['model']}: {VARIANTS[where]}")
            if max(p["n"] for p in points) > 1:
                ax.fill_between(eps, [p["min"] for p in points], [p["max"] for p in points], color=colour, alpha=0.15, lw=0)
        claimed = paper["test_accuracy"].get(m["model"])
        if claimed is not None:
            ax.plot([0], [claimed], marker="D", mfc="none", mec=colour, mew=1.6, ms=8, ls="none",
                    label=f"SJSU {m['model'].split('/')[-1]}: {claimed:.0%} test accuracy")
    ax.plot([paper["fgsm_epsilon"]], [paper["fgsm_accuracy"]], marker="*", color="black", ms=13, ls="none",
            label=f"SJSU: {paper['fgsm_accuracy']:.0%} at ε={paper['fgsm_epsilon']:g} (garment pixels)")
    ax.axvline(paper["visible_epsilon"], color="black", ls=":", lw=1.2,
               label=f"SJSU: noise visible from ε={paper['visible_epsilon']:g}")
    ax.set(xlabel="ε (FGSM step, pixels in [0, 1])", ylabel="test accuracy", ylim=(0, 1),
           title="Classifiers under FGSM, beside the SJSU write-up's claims")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1))
    return artifacts.save_figure(fig, path)
