"""Sweeps: trials drawn reproducibly from a space, one job per (model, trial, seed), the run's sweep.json, the
report's equal-budget view, and --best-of."""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import statistics

import pytest

import jobs
import launch
from helpers import benchmark
from fashion import artifacts
from fashion.data import load_fashion
from fashion.measure import Stamp, Yardstick
from fashion.report.sweep import best_of_budget
from jobs import sweep

collate = benchmark("collate")


def drawn(*texts, trials=None, space=None, seed=0, names=("gan/gan",), seeds=(0,)):
    selected = jobs.select(list(names), list(seeds))
    swept = sweep.build(selected, list(texts), space, trials, seed, [])
    return sweep.trial_jobs(selected, swept)


def test_the_same_space_seed_and_trial_number_draw_the_same_settings():
    first = drawn("lr_g=loguniform(1e-5,1e-2)", "beta1=uniform(0,1)", trials=4)
    again = drawn("beta1=uniform(0,1)", "lr_g=loguniform(1e-5,1e-2)", trials=4)  # the order given does not matter
    assert [j.defaults for j in first] == [j.defaults for j in again]
    other = drawn("lr_g=loguniform(1e-5,1e-2)", "beta1=uniform(0,1)", trials=4, seed=1)
    assert [j.defaults for j in first] != [j.defaults for j in other]


def test_more_trials_keep_the_earlier_ones_and_add_new_ones():
    ten, twenty = drawn("lr_g=loguniform(1e-5,1e-2)", trials=10), drawn("lr_g=loguniform(1e-5,1e-2)", trials=20)
    assert [(j.name, j.defaults) for j in twenty[:10]] == [(j.name, j.defaults) for j in ten]
    assert [j.name for j in twenty[10:12]] == ["gan/gan.t010", "gan/gan.t011"]


def test_draws_fall_in_their_ranges_and_log_uniform_spreads_over_decades():
    trials = drawn("lr_g=loguniform(1e-5,1e-2)", "n_critic=int(1,5)", "beta1=choice(0.0,0.5)", trials=200)
    lrs = [j.defaults["lr_g"] for j in trials]
    assert all(1e-5 <= v <= 1e-2 for v in lrs)
    assert 1e-4 < statistics.median(lrs) < 1e-3  # log-uniform: the median is the geometric middle, 3.2e-4
    assert {j.defaults["n_critic"] for j in trials} == {1, 2, 3, 4, 5}
    assert {j.defaults["beta1"] for j in trials} == {0.0, 0.5}


def test_a_grid_times_random_trials_times_seeds_names_every_job():
    names = [j.name for j in drawn("lr_g=1e-4,2e-4", "beta1=uniform(0,1)", trials=2, seeds=(0, 1))]
    assert names == ["gan/gan.g00.t000", "gan/gan.g00.t000.seed1", "gan/gan.g00.t001", "gan/gan.g00.t001.seed1",
                     "gan/gan.g01.t000", "gan/gan.g01.t000.seed1", "gan/gan.g01.t001", "gan/gan.g01.t001.seed1"]
    grid = drawn("lr_g=1e-4,2e-4", "beta1=uniform(0,1)", trials=2)
    assert [j.defaults["lr_g"] for j in grid] == [1e-4, 1e-4, 2e-4, 2e-4]
    assert grid[0].defaults["beta1"] == grid[2].defaults["beta1"]  # every grid point gets the same draws


def test_a_tied_key_takes_one_draw_and_a_job_prefix_sweeps_that_model_alone():
    trials = drawn("lr_g+lr_d=loguniform(1e-5,1e-2)", "gan/wgan_gp:gp_weight=1,10", trials=2,
                   names=("gan/gan", "gan/wgan_gp"))
    assert all(j.defaults["lr_g"] == j.defaults["lr_d"] for j in trials)
    assert [j.name for j in trials if j.model == "gan/gan"] == ["gan/gan.t000", "gan/gan.t001"]
    assert [j.defaults["gp_weight"] for j in trials if j.model == "gan/wgan_gp"] == [1.0, 1.0, 10.0, 10.0]


def test_a_trial_job_is_found_by_name_with_its_task_and_the_catalogue_model():
    job = jobs.get("gan/wgan_gp.g01.t003.seed2")
    assert job.task is jobs.get("gan/wgan_gp").task and job.model == "gan/wgan_gp"
    assert job.name == "gan/wgan_gp.g01.t003.seed2" and job.defaults["seed"] == 2


def test_the_lucic_space_covers_the_gans_with_their_own_weights():
    dims = {d.keys: d.text for d in sweep.space_of(jobs.get("gan/wgan_gp"), "lucic")}
    assert dims[("lr_g", "lr_d")] == "lr_g+lr_d=loguniform(1e-05,0.01)" and ("gp_weight",) in dims
    with pytest.raises(sweep.SweepError, match=r"no dimensions for vae/conv \(the space covers every model of gans\)"):
        sweep.space_of(jobs.get("vae/conv"), "lucic")


def test_a_space_that_names_models_outside_its_suites_says_which(monkeypatch):
    space = {"gans": ["beta1=uniform(0,1)"], "gan/wgan": ["clip=loguniform(0.001,1)"],  # gan/wgan: inside gans
             "vae/conv": ["lr=loguniform(1e-4,1e-2)"]}
    monkeypatch.setitem(sweep.SPACES, "mixed", space)
    with pytest.raises(sweep.SweepError, match=r"covers every model of gans, vae/conv\); select"):
        sweep.space_of(jobs.get("classify/cnn"), "mixed")


@pytest.mark.parametrize("values, budget, expected", [
    ([3.0, 1.0, 2.0], 1, 2.0),  # the mean
    ([3.0, 1.0, 2.0], 2, 4 / 3),  # pairs (3,1), (3,2), (1,2): best 1, 2, 1
    ([3.0, 1.0, 2.0], 3, 1.0),  # the minimum
    ([4.0, 1.0, 3.0, 2.0], 2, (1 + 1 + 1 + 2 + 2 + 3) / 6),
])
def test_the_best_within_a_budget_is_the_expected_minimum_over_every_subset(values, budget, expected):
    assert best_of_budget(values, budget)["expected"] == pytest.approx(expected)


def test_the_band_of_the_best_within_a_budget_holds_its_quantiles():
    # 10 trials 1..10, budget 1: each is the best with chance 1/10; the 10% and 90% quantiles are 1 and 9.
    curve = best_of_budget([float(v) for v in range(10, 0, -1)], 1)
    assert (curve["low"], curve["high"]) == (1.0, 9.0)


def test_the_band_at_b_equal_n_keeps_its_width():
    # Fresh trials: P(best of 10 <= x_(i)) = 1 - ((10 - i)/10)^10: 0.651 at x_(1), 0.893 at x_(2), 0.972 at x_(3).
    curve = best_of_budget([float(v) for v in range(1, 11)], 10)
    assert (curve["low"], curve["median"], curve["high"]) == (1.0, 1.0, 3.0)
    assert curve["expected"] == 1.0  # exact over the subsets of these 10: the one subset of 10 has best 1


@pytest.mark.parametrize("budget", [1, 2, 3, 4])
def test_the_band_is_the_best_of_fresh_trials_drawn_from_the_trials(budget):
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    draws = sorted(min(d) for d in itertools.product(values, repeat=budget))  # every draw of b, equally likely
    quantile = lambda q: draws[math.ceil(q * len(draws) - 1e-9) - 1]  # noqa: E731 (the smallest x with F(x) >= q)
    curve = best_of_budget(values, budget)
    assert (curve["low"], curve["median"], curve["high"]) == (quantile(0.1), quantile(0.5), quantile(0.9))


def test_half_the_trials_diverged_gives_a_worse_curve_than_none():
    """Lucic et al.'s example: dropping 5 failures of 10 would give the curve of 5 trials that read 60."""
    failed = [10.0, 20.0, 30.0, 40.0, 50.0] + [math.inf] * 5
    finished = [10.0, 20.0, 30.0, 40.0, 50.0] + [60.0] * 5
    for budget in range(1, 11):
        a, b = best_of_budget(failed, budget), best_of_budget(finished, budget)
        assert a["failure"] == pytest.approx(math.comb(5, budget) / math.comb(10, budget)) and b["failure"] == 0
        assert a["high"] >= b["high"] and a["median"] >= b["median"] and a["low"] >= b["low"]
        if budget <= 5:  # b trials could all be failures: the expected best is undefined, not 30/15/10
            assert a["expected"] is None and b["expected"] is not None
        else:
            assert a["expected"] == pytest.approx(b["expected"])
    assert best_of_budget(failed, 1)["high"] == math.inf and best_of_budget(finished, 1)["high"] == 60.0


@pytest.fixture(scope="module")
def swept_run(tmp_path_factory, module_data):
    """A run of 3 GANs x 4 trials x 2 seeds whose jobs measured themselves (synthetic, benchmarks/collate.py),
    aggregated."""
    outputs = tmp_path_factory.mktemp("outputs")
    yardstick = Yardstick.shipped(load_fashion().test.images)
    collate.make_run(outputs / "sweep", models=3, trials=4, seeds=2, yardstick=yardstick)
    assert launch.main(["--aggregate", "sweep", "--outputs", str(outputs)]) == 0
    return outputs


def test_the_report_shows_each_trial_and_ranks_the_models_by_their_best_trials(swept_run):
    summary = json.loads((swept_run / "sweep/report/summary.json").read_text())
    view = summary["sweep"]
    assert list(view["models"]) == ["gan/gan", "gan/lsgan", "gan/wgan"] and view["equal_budget"]
    trials = view["models"]["gan/gan"]["trials"]
    best = min(trials, key=lambda t: t["fid"]["mean"])
    assert [t["best"] for t in trials].count(True) == 1 and best["best"] and best["fid"]["n"] == 2
    assert len(view["models"]["gan/gan"]["budget_curve"]) == 4
    assert [r["model"] for r in view["ranking"]][0] == "gan/gan"  # its synthetic FIDs are the lowest
    page = (swept_run / "sweep/report/index.html").read_text()
    assert 'id="sweep"' in page and "sweep_budget.png" in page and (swept_run / "sweep/report/sweep.csv").is_file()


@pytest.fixture(scope="module")
def troubled_run(tmp_path_factory, module_data):
    """2 GANs x 4 trials x 2 seeds, aggregated after trouble: gan/gan.t001 diverged in both seeds and t002 in
    one (so both trials are failures); gan/lsgan.t002.seed1 still running, and gan/lsgan.t003 measured with
    fewer samples (another stamp)."""
    outputs = tmp_path_factory.mktemp("outputs")
    run = outputs / "trouble"
    yardstick = Yardstick.shipped(load_fashion().test.images)
    collate.make_run(run, models=2, trials=4, seeds=2, yardstick=yardstick)
    for job in ("gan/gan.t001", "gan/gan.t001.seed1", "gan/gan.t002.seed1"):
        metrics = json.loads((run / job / "metrics.json").read_text())
        artifacts.write_json(run / job / "metrics.json", {k: v for k, v in metrics.items() if k != "quality"})
        artifacts.write_status(run / job, "diverged", epoch=3, epochs=10, reason="non-finite D")
    artifacts.write_status(run / "gan/lsgan.t002.seed1", "running", epoch=4, epochs=10)
    for job in ("gan/lsgan.t003", "gan/lsgan.t003.seed1"):  # the final's numbers and the best's, 2000 samples
        metrics = json.loads((run / job / "metrics.json").read_text())
        small = [dataclasses.replace(Stamp.of(e["stamp"]), fake=2000) for e in metrics["quality"].values()]
        metrics["quality"] = {stamp.key: {**entry, "stamp": dataclasses.asdict(stamp)}
                              for stamp, entry in zip(small, metrics["quality"].values())}
        artifacts.write_json(run / job / "metrics.json", metrics)
    assert launch.main(["--aggregate", "trouble", "--outputs", str(outputs)]) == 0
    return json.loads((run / "report/summary.json").read_text())["sweep"], run


def test_a_diverged_trial_is_in_the_curve_and_in_the_failure_rate(troubled_run):
    view, run = troubled_run
    gan = view["models"]["gan/gan"]
    assert gan["in_curve"] == 4 and gan["failed_trials"] == ["t001", "t002"]
    assert (gan["failed_seeds"], gan["finished_seeds"], gan["failure_rate"]) == (3, 8, 0.375)
    assert [p["failure"] for p in gan["budget_curve"]] == pytest.approx([2 / 4, 1 / 6, 0, 0], rel=1e-5)
    assert gan["budget_curve"][0]["expected"] is None and gan["budget_curve"][2]["expected"] is not None
    statuses = {t["trial"]: t["status"] for t in gan["trials"]}
    assert statuses == {"t000": "measured", "t001": "failed", "t002": "failed", "t003": "measured"}
    text = (run / "report/summary.md").read_text()
    assert "gan/gan: 4 of 4 trials in the curve (2 failed: t001, t002); 3 of 8 finished seeds failed" in text


def test_mixed_stamps_never_share_a_curve_and_unfinished_trials_are_named_apart(troubled_run):
    view, run = troubled_run
    lsgan = view["models"]["gan/lsgan"]
    assert lsgan["in_curve"] == 2 and len(lsgan["budget_curve"]) == 2 and lsgan["failed_trials"] == []
    assert lsgan["unfinished"] == ["t002 (1 seed(s) running)"]
    assert len(lsgan["left_out"]) == 1 and lsgan["left_out"][0].startswith("t003 (measured under ")
    assert "2000v" in lsgan["left_out"][0] and "10000v" in view["stamp"]
    assert not view["equal_budget"]
    page = (run / "report/index.html").read_text()
    assert "Not at an equal budget yet" in page and "t002 (1 seed(s) running)" in page


def test_best_of_retrains_each_best_trial_from_new_seeds_and_records_where_it_came_from(swept_run, capsys):
    view = json.loads((swept_run / "sweep/report/summary.json").read_text())["sweep"]
    code = launch.main(["--best-of", "sweep", "--seeds", "5,6", "--plan", "--outputs", str(swept_run)])
    out = capsys.readouterr().out
    assert code == 0 and "6 jobs to train" in out
    picked, provenance = sweep.best_of(swept_run / "sweep")
    assert {m: t.id for m, t in picked.items()} == {m: e["best"] for m, e in view["models"].items()}
    retrained = sweep.best_jobs(picked, [5, 6])
    assert [j.name for j in retrained][:2] == [f"gan/gan.{picked['gan/gan'].id}.seed{s}" for s in (5, 6)]
    assert retrained[0].defaults == {**picked["gan/gan"].settings, "seed": 5}
    spec = json.loads((swept_run / "sweep/sweep.json").read_text())
    assert all(t.settings == spec["models"][m]["trials"][t.id] for m, t in picked.items())
    assert provenance["run"].endswith("sweep") and set(provenance["trials"]) == set(picked)
    record = sweep.record_best(swept_run / "sweep-best", picked, provenance)
    assert json.loads(record.read_text())["best_of"]["trials"]["gan/gan"]["trial"] == picked["gan/gan"].id


def test_rank_by_best_ranks_and_picks_trials_by_the_best_checkpoint_and_best_of_follows(tmp_path, module_data):
    yardstick = Yardstick.shipped(load_fashion().test.images)
    collate.make_run(tmp_path / "s", models=2, trials=3, seeds=2, yardstick=yardstick)
    assert launch.main(["--aggregate", "s", "--outputs", str(tmp_path), "--rank-by", "best"]) == 0
    summary = json.loads((tmp_path / "s/report/summary.json").read_text())
    view = summary["sweep"]
    assert summary["rank_by"] == view["rank_by"] == "best" and view["stamp"].endswith(" best@train")
    for model, entry in view["models"].items():
        best = min((t for t in entry["trials"]), key=lambda t: t["fid"]["mean"])
        assert entry["best"] == best["trial"]  # "fid": the best checkpoint's, the final's beside it
        assert all(t["fid"]["mean"] < t["other_fid"]["mean"] for t in entry["trials"])
    assert all(r["stamp"].endswith(" best@train") for r in summary["fid_ranking"])
    with pytest.raises(sweep.SweepError, match=r"picked the best trials by the best checkpoint; run `python "
                                               r"launch.py --aggregate s --rank-by final` first"):
        sweep.best_of(tmp_path / "s", "final")
    picked, provenance = sweep.best_of(tmp_path / "s")
    assert provenance["rank_by"] == "best" and {m: t.id for m, t in picked.items()} == {
        m: e["best"] for m, e in view["models"].items()}


def test_a_sweep_into_a_run_swept_over_another_space_is_refused(fake_fashion_dir, tmp_path, capsys):
    base = ["gan/gan", "--outputs", str(tmp_path), "--run", "s", "--local", "--no-data-check"]
    selected = jobs.select(["gan/gan"], [0])
    swept = sweep.build(selected, ["lr_g=loguniform(1e-5,1e-2)"], None, 2, 0, [])
    sweep.record(tmp_path / "s", swept, sweep.trial_jobs(selected, swept))
    assert launch.main(base + ["--sweep", "lr_g=loguniform(1e-4,1e-2)", "--trials", "2"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "was swept over lr_g=loguniform(1e-05,0.01), now over lr_g=loguniform(0.0001,0.01)" in out
    assert sweep.refusal(tmp_path / "s", sweep.build(selected, ["lr_g=loguniform(1e-5,1e-2)"], None, 5, 0, [])) == ""


def test_a_large_sweep_is_planned_in_one_row_per_model(tmp_path, capsys):
    code = launch.main(["gans", "--sweep-space", "lucic", "--trials", "100", "--seeds", "3", "--plan",
                        "--outputs", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "3000 jobs to train" in out and "gan/wgan_gp.t099" not in out
    assert "sweep: gan/acgan 100 trials" in " ".join(out.split())
