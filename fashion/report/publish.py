"""``python launch.py --publish RUN``: a compact copy of a run's results, small enough to commit.

    results/
      README.md          what ran (date, code, hardware, epochs, seeds, PARTIAL and why), the contact
                         sheet, the FID ranking, links to everything below
      contact_sheet.png  each model's final samples (its lowest seed), titled with its FID over seeds
      fid_curves.png     FID over epochs, from the report
      classifiers_fgsm.png
                         the classifiers' accuracy against FGSM epsilon beside the write-up's, from the report
      summary.md|csv|json, models.csv
                         the report's tables: every job, and every model over its seeds
      gifs/<model>.gif   each GAN's samples over its epochs (lowest seed, at most GIF_FRAMES frames)
      settings.json      the settings above, per job

Like the report it reads only the run folder: the report's files and each job's config.json, status.json and
sample grids. It publishes the report as it is, so it refuses a report older than the jobs' states. What a
full-length run means (the catalogue's epochs and budgets) comes from the caller, so a run trained shorter is
labelled PARTIAL with the reason. The folder is built beside the destination and moved into place at once; a
previous publication is replaced only with ``force`` (git keeps the old one).
"""
from __future__ import annotations

import collections
import datetime
import json
import os
import shutil
from pathlib import Path

from fashion import artifacts, runfolder
from fashion.report import classifiers, collect
from fashion.report.summary import md_cell, ranking_lines
from fashion.runfolder import REPORT_DIR, split_seed

TABLES = ("summary.md", "summary.csv", "summary.json", "models.csv")
SETTINGS_FILE = "settings.json"
GIF_FRAMES = 8
GIF_FPS = 2.0
GIF_FAMILIES = ("gan",)  # a VAE's grids barely change after its first epochs; 26 GIFs would not be compact
SHEET_COLUMNS = 5
# Config fields that, set below the catalogue's value (0 meaning "no limit"), train a job on less than the full
# budget: the run is then PARTIAL.
BUDGET_FIELDS = ("epochs", "limit_batches", "train_subset")


class PublishError(RuntimeError):
    """Why a run cannot be published (yet), and what to do about it."""


def publish(run_dir, dest, full: dict[str, dict], force: bool = False) -> dict:
    """Write the publication of ``run_dir`` to ``dest``; returns its settings. ``full``: per model (``gan/gan``),
    the catalogue's config as a dict, which says what a full-length job is."""
    run_dir, dest = Path(run_dir), Path(dest)
    report = run_dir / REPORT_DIR
    summary = artifacts.read_json(report / "summary.json")
    if summary is None:
        raise PublishError(f"{run_dir} has no report yet: run `python launch.py --aggregate {run_dir.name}` "
                           f"(with the same --outputs), then publish")
    found = collect.read_jobs(run_dir)
    check_report_is_current(run_dir, summary, found)
    check_destination(dest, force)

    settings = run_settings(run_dir.name, found, summary, full)
    building = dest.parent / f".{dest.name}.publishing-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    try:
        building.mkdir(parents=True)  # the umask decides who may read it, as for every other folder of the suite
    except OSError as err:
        raise PublishError(f"cannot publish to {dest}: {err.strerror or err} in {dest.parent}; give --out a "
                           "folder you can write") from None
    try:
        for name in TABLES + ("fid_curves.png", classifiers.PLOT):
            if (report / name).is_file():
                artifacts.write_bytes(building / name, (report / name).read_bytes())
        firsts = {model: job for model, (job, _) in runfolder.lowest_seeds(
            found, lambda job: job.name, lambda job: collect.final_samples(job) is not None).items()}
        settings["gifs"] = write_gifs(firsts, building / "gifs")
        settings["contact_sheet"] = contact_sheet(firsts, summary, settings, building / "contact_sheet.png")
        artifacts.write_json(building / SETTINGS_FILE, settings)
        artifacts.write_text(building / "README.md", readme(settings, summary, building))
        swap_into_place(building, dest)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return settings


def check_report_is_current(run_dir: Path, summary: dict, found: list[runfolder.JobFolder]) -> None:
    """Every job is in the report with the state and epochs it has now (no clocks: nodes' clocks differ)."""
    reported = {row["job"]: row for row in summary.get("rows", []) if row.get("state") != "reference"}
    stale = []
    for job in found:
        row, (done, _) = reported.get(job.name), collect.progress(job)
        if row is None:
            stale.append(f"{job.name} is not in it")
        elif (row.get("state"), row.get("epochs_done")) != (job.state, done):
            stale.append(f"{job.name} was {row.get('state')} at epoch {row.get('epochs_done')}, now {job.state} "
                         f"at epoch {done}")
    stale += [f"{name} is in it but no longer in the run" for name in sorted(set(reported) - {j.name for j in found})]
    if stale:
        raise PublishError(f"the report of {run_dir} is older than its jobs ({'; '.join(stale[:3])}"
                           f"{'; ...' if len(stale) > 3 else ''}): run `python launch.py --aggregate {run_dir.name}` "
                           "again, then publish")


def check_destination(dest: Path, force: bool) -> None:
    if not dest.exists():
        return
    if not dest.is_dir():
        raise PublishError(f"{dest} is a file: give --out a folder to publish into")
    if not any(dest.iterdir()):
        return
    previous = artifacts.read_json(dest / SETTINGS_FILE)
    if not isinstance(previous, dict):
        raise PublishError(f"{dest} holds other files (no {SETTINGS_FILE} of an earlier publication): "
                           "give --out an empty or new folder")
    if not force:
        raise PublishError(f"{dest} holds run {previous.get('run')!r} published {previous.get('published')}: "
                           "add --force to replace it (git keeps the old one), or give another --out")


def swap_into_place(building: Path, dest: Path) -> None:
    """The new folder replaces ``dest`` by two renames; the old one is deleted only once the new one is in place."""
    old = None
    if dest.exists():
        old = dest.parent / f".{dest.name}.replaced-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        dest.rename(old)
    building.rename(dest)
    if old is not None:
        shutil.rmtree(old)


# -- what ran ---------------------------------------------------------------------------------------------
def run_settings(run: str, found: list[runfolder.JobFolder], summary: dict, full: dict[str, dict]) -> dict:
    """The settings of the run, per job and summarised, and whether (and why) it is partial."""
    full = json.loads(json.dumps(full))  # as config.json holds them: a tuple default reads back as a list
    per_job, reasons, differences = {}, [], collections.defaultdict(list)
    for job in found:
        model, seed = split_seed(job.name)
        config = job.settings
        done, planned = collect.progress(job)
        catalogue = full.get(model)
        entry = {"model": model, "seed": seed, "state": job.state, "epochs_done": done, "epochs_planned": planned,
                 "device": job.config.get("gpu") or job.config.get("device") or job.status.get("device"),
                 "processes": job.config.get("world_size"), "precision": job.config.get("precision"),
                 "batch_size": config.get("batch_size"), "git": job.config.get("git"),
                 "finished": _utc(job.status.get("finished"))}
        short = shortfalls(job, config, catalogue)
        entry["partial"] = short
        reasons += [f"{job.name}: {why}" for why in short]
        for key, value in sorted(config.items()):
            default = (catalogue or {}).get(key, value)
            if key not in BUDGET_FIELDS and key not in ("seed", "data_dir", "download", "log_with", "cpu") \
                    and value != default:
                differences[f"{key}={value} (catalogue: {default})"].append(job.name)
        per_job[job.name] = entry

    models = sorted({e["model"] for e in per_job.values()})
    finished = sorted(e["finished"] for e in per_job.values() if e["finished"])
    return {
        "run": run,
        "published": _utc(datetime.datetime.now(datetime.timezone.utc).timestamp()),
        "trained": [finished[0], finished[-1]] if finished else None,
        "partial": bool(reasons),
        "partial_reasons": reasons,
        "git": sorted({e["git"] for e in per_job.values() if e["git"]}),
        "hardware": _counts(f"{e['device']}, {e['processes']} process{'es' if (e['processes'] or 1) > 1 else ''}"
                            for e in per_job.values()),
        "precision": _counts(str(e["precision"]) for e in per_job.values()),
        "batch_size": _counts(str(e["batch_size"]) for e in per_job.values()),
        "epochs": _counts(f"{e['epochs_done']} of {(full.get(e['model']) or {}).get('epochs', '?')}"
                          for e in per_job.values()),
        "models": models,
        "seeds": {m: sorted(e["seed"] for e in per_job.values() if e["model"] == m) for m in models},
        "not_run": sorted(set(full) - set(models), key=runfolder.natural),
        "changed_settings": {k: v for k, v in sorted(differences.items())},
        "evaluator": summary.get("evaluator"),
        "jobs": per_job,
    }


def shortfalls(job: runfolder.JobFolder, config: dict, catalogue: dict | None) -> list[str]:
    """Why a job is not a full-length result: not completed, or trained on a smaller budget than the catalogue's."""
    found = [] if job.state == "completed" else [f"{job.state}, not completed"]
    if catalogue is None:
        return found + ["not a catalogue job"]
    done = collect.progress(job)[0] or 0  # what was trained, whatever was asked
    if done < catalogue.get("epochs", 0):
        found.append(f"{done} of {catalogue['epochs']} epochs")
    for key in BUDGET_FIELDS[1:]:  # limits where 0 means none
        ours, theirs = config.get(key), catalogue.get(key)
        if ours and (not theirs or ours < theirs):
            found.append(f"{key}={ours} (full: {theirs or 'no limit'})")
    return found


def _counts(values) -> str:
    """``"cpu, 1 process (21 jobs)"``: each distinct value with how many jobs had it, most common first."""
    counted = collections.Counter(values).most_common()  # a value a job did not record reads "None": unknown
    if len(counted) == 1:
        return f"{counted[0][0]} (every job)"
    return "; ".join(f"{value} ({n} job{'s' if n > 1 else ''})" for value, n in counted)


def _utc(stamp) -> str | None:
    if not isinstance(stamp, (int, float)):
        return None
    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# -- pictures ---------------------------------------------------------------------------------------------
def spread(frames: list, most: int) -> list:
    """At most ``most`` of ``frames``, evenly spaced, always the first and the last."""
    if len(frames) <= most:
        return list(frames)
    last = len(frames) - 1
    return [frames[round(i * last / (most - 1))] for i in range(most)]


def write_gifs(firsts: dict[str, runfolder.JobFolder], folder: Path) -> dict[str, str]:
    """``gifs/<family>_<name>.gif`` per model from its epoch grids; {model: path relative to the publication}."""
    written = {}
    for model, job in firsts.items():
        if job.family not in GIF_FAMILIES:
            continue
        frames = spread(runfolder.sample_frames(job.path), GIF_FRAMES)
        if len(frames) > 1:  # one epoch is a picture, already on the contact sheet
            path = artifacts.make_gif(frames, folder / f"{model.replace('/', '_')}.gif", fps=GIF_FPS)
            written[model] = path.relative_to(folder.parent).as_posix()
    return written


def contact_sheet(firsts: dict[str, runfolder.JobFolder], summary: dict, settings: dict, path: Path) -> str | None:
    """One PNG: each model's final grid (lowest seed) under its name, epochs and FID over seeds; the title says
    which run it is and whether it is partial, so the picture never travels without that."""
    if not firsts:
        return None
    import imageio.v3 as iio
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numbers = {m["model"]: m["numbers"] for m in summary.get("models", [])}
    rank = {r["model"]: r["rank"] for r in summary.get("fid_ranking", [])}
    firsts = dict(sorted(firsts.items(), key=lambda kv: rank.get(kv[0], len(rank) + 1)))  # best first
    cols = min(SHEET_COLUMNS, len(firsts))
    rows = -(-len(firsts) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 3.75 * rows + 0.6), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, (model, job) in zip(axes.flat, firsts.items()):
        done, _ = collect.progress(job)
        ax.imshow(iio.imread(collect.final_samples(job)), cmap="gray", interpolation="nearest")
        ax.set_title(f"{model}\n{caption(numbers.get(model, {}), done, settings, model)}", fontsize=9.5)
    title = f"run {settings['run']}: final samples (lowest seed of each model, best FID first)"
    if settings["partial"]:
        title += f"\nPARTIAL: {partial_headline(settings, most=3)}"
    # the constrained layout (not tight_layout) keeps a two-line title clear of the first row's captions
    fig.suptitle(title, fontsize=12, color="firebrick" if settings["partial"] else "black")
    artifacts.save_figure(fig, path, dpi=100, colours=256)
    return path.name


def caption(numbers: dict, done, settings: dict, model: str) -> str:
    fid, seeds = numbers.get("fid"), len(settings["seeds"].get(model, []))
    epochs = f"epoch {done}" if done is not None else "epoch ?"
    if not fid:
        return f"{epochs} · no FID"
    spread_ = f" ± {fid['std']:.1f}" if fid.get("std") is not None else ""
    return f"{epochs} · FID {fid['mean']:.1f}{spread_} ({fid['n']} seed{'s' if fid['n'] > 1 else ''})" \
        + (f" of {seeds}" if seeds != fid["n"] else "")


def partial_headline(settings: dict, most: int | None = None) -> str:
    """The partial reasons in one line: the same reason over many jobs said once, with the count; the ``most``
    common ones only, if given."""
    kinds = collections.defaultdict(list)
    for reason in settings["partial_reasons"]:
        job, why = reason.split(": ", 1)
        kinds[why].append(job)
    common = sorted(kinds.items(), key=lambda kv: -len(kv[1]))
    return "; ".join(f"{why} ({len(names)} jobs)" if len(names) > 1 else f"{why} ({names[0]})"
                     for why, names in common[:most]) + ("; ..." if most and len(common) > most else "")


# -- the page ---------------------------------------------------------------------------------------------
def readme(settings: dict, summary: dict, folder: Path) -> str:
    lines = [f"# Results of run `{settings['run']}`", ""]
    if settings["partial"]:
        lines += [f"**PARTIAL**: {partial_headline(settings)}. These are not full-length results; "
                  "`settings.json` lists every job's reason.", ""]
    rows = [("published", settings["published"]),
            ("trained", " to ".join(dict.fromkeys(settings["trained"])) if settings["trained"] else "unknown"),
            ("code", _code_text(settings["git"])),
            ("hardware", settings["hardware"]), ("epochs", settings["epochs"]),
            ("seeds", _seed_text(settings["seeds"])), ("precision", settings["precision"]),
            ("batch size", settings["batch_size"]),
            ("models", f"{len(settings['models'])}" + (f"; not run: {_by_family(settings['not_run'])}"
                                                       if settings["not_run"] else "")),
            ("settings changed from the catalogue", "; ".join(f"{k}: {len(v)} job{'s' if len(v) > 1 else ''}"
                                                             for k, v in settings["changed_settings"].items())
             or "none"),
            ("evaluator (FID, KID, ...)", settings["evaluator"] or "none")]
    lines += ["| setting | value |", "|---|---|"] + [f"| {k} | {md_cell(v)} |" for k, v in rows] + [""]
    if settings["contact_sheet"]:
        lines += ["![final samples of each model](contact_sheet.png)", ""]
    ranked = ranking_lines(summary.get("fid_ranking", []))
    lines += ["## Which model is better", "", f"FID, lower is better; {summary.get('statistics', '')}.", ""]
    lines += [f"{line}  " for line in ranked] or ["No model has 2 completed seeds with an FID."]
    if summary.get("not ranked"):
        lines += ["", f"Not ranked: {summary['not ranked']}."]
    if (folder / "fid_curves.png").is_file():
        lines += ["", "## FID over epochs", "", "![FID over epochs](fid_curves.png)"]
    if summary.get("classifiers"):
        lines += ["", "## Classifiers beside the write-up", "",
                  f"Accuracy on the test set, and under FGSM with noise on the garment's pixels (the write-up's "
                  f"variant) and on every pixel; each followed (SJSU) by what {classifiers.SOURCE} reports.", ""]
        lines += classifiers.markdown(summary["classifiers"])
        if (folder / classifiers.PLOT).is_file():
            lines += ["", f"![accuracy against FGSM epsilon]({classifiers.PLOT})"]
    if settings["gifs"]:
        lines += ["", "## Samples over epochs (lowest seed)", ""]
        lines += [f"- [{model}]({path})" for model, path in settings["gifs"].items()]
    lines += ["", "## Tables", "",
              "- [summary.md](summary.md) ([csv](summary.csv), [json](summary.json)): every job, every number",
              "- [models.csv](models.csv): each model over its seeds (mean, std, interval, per-seed values)",
              f"- [{SETTINGS_FILE}]({SETTINGS_FILE}): the settings above, per job", ""]
    return "\n".join(lines)


def _by_family(names: list[str]) -> str:
    """``gan: acgan, began; vae: cond`` for ``gan/acgan gan/began vae/cond``."""
    families = collections.defaultdict(list)
    for name in names:
        family, _, rest = name.partition("/")
        families[family].append(rest or family)
    return "; ".join(f"{family}: {', '.join(rest)}" for family, rest in families.items())


def _code_text(shas: list[str]) -> str:
    if not shas:
        return "unknown"
    text = ", ".join(f"git {sha}" for sha in shas) + (" (several versions trained these jobs)" if len(shas) > 1 else "")
    if any(sha.endswith("-dirty") for sha in shas):
        text += " (-dirty: trained with uncommitted changes, so the commit alone does not reproduce it)"
    return text


def _seed_text(seeds: dict[str, list[int]]) -> str:
    """``0, 1 (gan: acgan, began); 0 (classify: cnn)``: models grouped by the seeds they ran."""
    by_list = collections.defaultdict(list)
    for model, numbers in seeds.items():
        by_list[", ".join(map(str, numbers))].append(model)
    if len(by_list) == 1:
        return f"{next(iter(by_list))} (every model)"
    return "; ".join(f"{numbers} ({_by_family(models)})"
                     for numbers, models in sorted(by_list.items(), key=lambda kv: -len(kv[1])))

