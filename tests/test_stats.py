"""Numbers over seeds: summaries against hand-computed values, the significance test on known answers, grouping."""
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from fashion.report import stats


def test_mean_std_and_t_interval_match_hand_computed_values():
    s = stats.summarize([1.0, 2.0, 3.0, 4.0])
    # mean 2.5; squared deviations 2.25+0.25+0.25+2.25 = 5 over n-1 = 3; t(0.975, 3) = 3.182446305
    assert s["n"] == 4 and s["mean"] == pytest.approx(2.5)
    assert s["std"] == pytest.approx(math.sqrt(5 / 3))
    half = 3.182446305 * math.sqrt(5 / 3) / 2
    assert s["ci"] == pytest.approx([2.5 - half, 2.5 + half])
    assert s["values"] == [1.0, 2.0, 3.0, 4.0]


def test_one_seed_has_a_value_but_no_spread_or_interval():
    s = stats.summarize([7.5])
    assert (s["n"], s["mean"], s["std"], s["ci"]) == (1, 7.5, None, None)
    assert stats.format_number(s, "{:.2f}") == "7.50 (1 seed)"
    assert stats.format_interval(s) == ""


def test_the_text_says_mean_std_and_seed_count():
    assert stats.format_number(stats.summarize([10.0, 12.0]), "{:.2f}") == "11.00 ± 1.41 (n=2)"


def test_clearly_separated_seeds_differ_significantly():
    result = stats.compare([10.1, 10.3, 9.9, 10.0], [20.2, 19.8, 20.5, 20.1])
    assert result["significant"] is True and result["p"] < 0.001
    assert result["test"] == "Welch's t-test over seeds" and "significant at 5%" in result["verdict"]


def test_the_difference_has_welchs_interval():
    a, b = [12.0, 14.0, 13.0, 15.0], [10.0, 10.5, 11.5]
    result = stats.compare(a, b)
    # By hand: variances 5/3 and 7/12 over n = 4 and 3; Welch-Satterthwaite degrees of freedom.
    va, vb = (5 / 3) / 4, (7 / 12) / 3
    df = (va + vb) ** 2 / (va ** 2 / 3 + vb ** 2 / 2)
    half = scipy_stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert result["difference_ci"] == pytest.approx([13.5 - 32 / 3 - half, 13.5 - 32 / 3 + half])


def test_holm_multiplies_the_ith_smallest_p_by_the_hypotheses_left_and_stays_monotone():
    # Sorted 0.01, 0.03, 0.04: 3 x 0.01 = 0.03; 2 x 0.03 = 0.06; 1 x 0.04 = 0.04, raised to 0.06.
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5, 0.9]) == [1.0, 1.0]  # 2 x 0.5 = 1.0; 0.9 is raised to it
    assert stats.holm([]) == []


def _seeded_rows(model: str, fids: list[float]) -> list[dict]:
    return [{"job": model + ("" if k == 0 else f".seed{k}"), "state": "completed", "fid": fid}
            for k, fid in enumerate(fids)]


def test_every_pair_is_tested_and_holm_adjusts_over_all_of_them():
    best = [10.0, 11.0, 12.0]
    others = {"gan/b": [12.6, 13.6, 14.6], "gan/c": [12.8, 13.8, 14.8], "gan/d": [13.0, 14.0, 15.0]}
    assert all(stats.compare(fids, best)["p"] < 0.05 for fids in others.values())  # each alone: p 0.021-0.033
    rows = _seeded_rows("gan/a", best) + [r for m, fids in others.items() for r in _seeded_rows(m, fids)]
    ranked = stats.ranking(stats.model_summaries(rows))
    assert [r["model"] for r in ranked] == ["gan/a", "gan/b", "gan/c", "gan/d"]
    samples = {"gan/a": best, **others}
    names = list(samples)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    adjusted = dict(zip(pairs, stats.holm([stats.compare(samples[a], samples[b])["p"] for a, b in pairs])))
    tested = ranked[1:]
    assert [r["p_adjusted"] for r in tested] == pytest.approx([adjusted["gan/a", m] for m in others])
    assert all(r["significant"] is False and "after Holm over all pairs" in r["verdict"] for r in tested)
    assert tested[0]["test"] == "Welch's t-test over seeds, Holm over all pairs (6 pairs tested)"
    assert all(r["could_be_best"] for r in ranked)


def test_a_model_with_one_completed_seed_is_named_not_ranked():
    rows = (_seeded_rows("gan/a", [10.0, 10.1, 10.2]) + _seeded_rows("gan/b", [5.0])
            + _seeded_rows("gan/c", [30.0, 30.2, 30.1]))
    models = stats.model_summaries(rows)
    first, second = stats.ranking(models)
    assert (first["model"], second["model"]) == ("gan/a", "gan/c")  # gan/b's lower FID is one seed's
    assert second["significant"] is True and second["family_size"] == 1
    assert stats.not_ranked(models) == ["gan/b: 1 completed seed with a fid; a model needs 2 to be ranked"]


def _failed(model: str, seeds: list[int], state: str = "diverged") -> list[dict]:
    return [{"job": model + ("" if k == 0 else f".seed{k}"), "state": state} for k in seeds]


def test_two_of_three_seeds_diverged_is_never_first():
    lucky = [{"job": "gan/lucky", "state": "completed", "fid": 9.0}] + _failed("gan/lucky", [1, 2])
    rows = lucky + _seeded_rows("gan/steady", [29.0, 30.0, 31.0]) + _seeded_rows("gan/other", [40.0, 41.0, 42.0])
    models = stats.model_summaries(rows)
    ranked = stats.ranking(models)
    assert [r["model"] for r in ranked] == ["gan/steady", "gan/other"]
    assert ranked[1]["p"] is not None  # no longer "too few seeds to test" against a single lucky seed
    (why,) = stats.not_ranked(models)
    assert why.startswith("gan/lucky: 1 completed seed") and "2 of 3 finished seeds failed" in why


def test_half_the_seeds_failed_orders_below_every_model_with_fewer():
    rows = (_seeded_rows("gan/flaky", [9.0, 9.5, 0, 0])[:2] + _failed("gan/flaky", [2, 3])
            + _seeded_rows("gan/steady", [29.0, 30.0, 31.0]))
    models = stats.model_summaries(rows)
    flaky = next(m for m in models if m["model"] == "gan/flaky")
    assert (flaky["failed"], flaky["finished"], flaky["failure_rate"]) == (2, 4, 0.5)
    ranked = stats.ranking(models)
    assert [r["model"] for r in ranked] == ["gan/steady", "gan/flaky"]
    assert ranked[1]["median"] == math.inf and ranked[1]["failed"] == 2
    assert ranked[1]["test"].startswith(stats.RANK_TEST)  # a failed seed has no FID for Welch's test


def test_unfinished_seeds_are_counted_apart_from_failed_ones():
    rows = (_seeded_rows("gan/gan", [10.0, 11.0]) + _failed("gan/gan", [2], "failed")
            + _failed("gan/gan", [3], "running") + _failed("gan/gan", [4], "cancelled"))
    (model,) = stats.model_summaries(rows)
    assert (model["completed"], model["failed"], model["finished"]) == (2, 1, 3)
    assert model["unfinished"] == [{"seed": 3, "state": "running"}, {"seed": 4, "state": "cancelled"}]
    assert stats.format_failures(model) == "1 of 3"


def test_the_rank_test_is_exact_with_failures_below_every_fid():
    inf = math.inf
    result = stats.rank_test([1.0, 2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 8.0, 9.0, inf])
    assert result["p"] == pytest.approx(2 / math.comb(10, 5))  # the observed split and its mirror, of 252
    assert result["lower"] == "a" and result["significant"] is True
    assert stats.rank_test([inf, inf], [inf, inf])["p"] is None  # every seed ties


def test_the_procedure_holds_its_level_for_ten_equal_models_and_finds_a_real_difference():
    """A small version of benchmarks/fwer.py: the truth is known in both simulations."""
    rng = np.random.default_rng(1)
    equal = rng.normal(20.0, 1.5, size=(2000, 10, 3))
    fwer = stats.all_pairs_rejected(equal).any(-1).mean()
    assert fwer <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 2000)
    shifted = rng.normal(20.0, 1.5, size=(500, 10, 5))
    shifted[:, -1] += 8 * 1.5  # one model clearly worse: its 9 pairs are the last of triu_indices' columns
    _, second = np.triu_indices(10, 1)
    assert stats.all_pairs_rejected(shifted)[:, second == 9].mean() > 0.95
    assert stats.all_pairs_rejected(shifted)[:, second != 9].any(-1).mean() <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 500)


def test_the_ranking_makes_the_same_calls_as_the_simulated_procedure():
    rng = np.random.default_rng(2)
    values = rng.normal(20.0, 1.5, size=(6, 4)) + np.arange(6)[:, None] * 2.5
    rows = [r for i, fids in enumerate(values) for r in _seeded_rows(f"gan/m{i}", list(fids))]
    ranked = {r["model"]: r for r in stats.ranking(stats.model_summaries(rows))}
    first, second = np.triu_indices(6, 1)
    expected = stats.all_pairs_rejected(values[None])[0]
    called = [bool(ranked[f"gan/m{i}"]["pairs"][f"gan/m{j}"]["significant"]) for i, j in zip(first, second)]
    assert called == expected.tolist() and any(called) and not all(called)


def test_the_rank_test_holds_its_level_when_equal_models_fail_alike():
    rng = np.random.default_rng(3)
    rejected = 0
    for _ in range(300):
        a, b = (np.where(rng.random(5) < 0.3, math.inf, rng.normal(20.0, 1.5, 5)) for _ in range(2))
        if not (np.isfinite(a).all() and np.isfinite(b).all()):
            rejected += bool(stats.pair_test(list(a), list(b))["significant"])
    assert rejected / 300 <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 300)


def test_the_best_checkpoint_view_puts_its_numbers_in_place_of_the_final_ones():
    rows = [{"job": "gan/a", "state": "completed", "fid": 10.0, "kid": 0.1, "best_fid": 8.0, "stamp": "s",
             "best": {"values": {"fid": 8.0, "kid": 0.05}, "stamp": "s best@train", "epoch": 3}},
            {"job": "gan/a.seed1", "state": "completed", "fid": 12.0, "stamp": "s"}]  # older: no best numbers
    best, older = stats.checkpoint_view(rows, "best")
    assert (best["fid"], best["kid"], best["stamp"]) == (8.0, 0.05, "s best@train") and "best_fid" not in best
    assert "fid" not in older and "stamp" not in older
    assert stats.checkpoint_view(rows, "final") is rows


def test_seeds_from_one_distribution_do_not_differ_significantly():
    result = stats.compare([10.0, 12.0, 11.0, 13.0], [11.0, 13.0, 10.0, 12.0])  # same values, reordered
    assert result["significant"] is False and result["p"] == pytest.approx(1.0)
    assert "not significant" in result["verdict"]


@pytest.mark.parametrize("a, b", [([10.0], [20.0, 21.0]), ([10.0, 11.0], [20.0])])
def test_one_seed_on_either_side_is_too_few_to_test(a, b):
    result = stats.compare(a, b)
    assert result["significant"] is None and result["p"] is None
    assert "too few seeds" in result["verdict"]


def test_seeds_without_any_spread_cannot_be_tested():
    assert "cannot test" in stats.compare([5.0, 5.0], [6.0, 6.0])["verdict"]


def test_a_job_and_its_seed_jobs_group_into_one_model():
    rows = [{"job": "real: train vs test", "state": "reference"},
            {"job": "gan/gan.seed2", "state": "completed"}, {"job": "gan/gan", "state": "completed"},
            {"job": "gan/lsgan", "state": "completed"}, {"job": "gan/gan.seed1", "state": "failed"},
            {"job": "gan/gan_gp.seed1", "state": "completed"}]
    groups = stats.group(rows)
    assert list(groups) == ["gan/gan", "gan/lsgan", "gan/gan_gp"]
    assert [r["job"] for r in groups["gan/gan"]] == ["gan/gan", "gan/gan.seed1", "gan/gan.seed2"]


def test_model_numbers_come_from_completed_seeds_only():
    rows = [{"job": "gan/gan", "state": "completed", "fid": 10.0, "seed_numbers": {"test_x": 1.0}},
            {"job": "gan/gan.seed1", "state": "completed", "fid": 14.0, "seed_numbers": {"test_x": 3.0}},
            {"job": "gan/gan.seed2", "state": "running"}]
    (model,) = stats.model_summaries(rows)
    assert model["seeds"] == [0, 1, 2] and model["completed"] == 2
    assert model["numbers"]["fid"]["mean"] == 12.0 and model["numbers"]["fid"]["seeds"] == [0, 1]
    assert model["numbers"]["test_x"]["values"] == [1.0, 3.0]


def test_models_rank_by_median_fid_and_each_is_tested_against_the_first():
    rows = ([{"job": f"gan/a{'' if k == 0 else f'.seed{k}'}", "state": "completed", "fid": 10.0 + k / 10}
             for k in range(3)]
            + [{"job": f"gan/b{'' if k == 0 else f'.seed{k}'}", "state": "completed", "fid": 30.0 + k / 10}
               for k in range(3)]
            + [{"job": f"gan/c{'' if k == 0 else f'.seed{k}'}", "state": "completed", "fid": v}
               for k, v in enumerate([20.0, 20.5, 60.0])])  # median 20.5, mean 33.5: ordered by its median
    ranked = stats.ranking(stats.model_summaries(rows))
    assert [r["model"] for r in ranked] == ["gan/a", "gan/c", "gan/b"]
    assert ranked[0]["verdict"] == "first" and ranked[1]["median"] == 20.5
    assert ranked[2]["significant"] is True and ranked[2]["difference"] == pytest.approx(20.0)
    assert ranked[2]["beaten_by"] == ["gan/a"] and not ranked[2]["could_be_best"]


def test_own_numbers_flatten_fgsm_and_colorizer_scores():
    metrics = {"test_accuracy": 0.9, "seconds_per_epoch": 3.0, "final": {"loss": 1.0},
               "fgsm": {"images": 100, "epsilon": [0.0, 0.1], "accuracy_all_pixels": [0.9, 0.4],
                        "accuracy_garment_pixels": [0.9, 0.6]},
               "test": {"psnr": 21.5, "colour_class_accuracy": 0.8, "images": 10000}}
    assert stats.own_numbers(metrics) == {"test_accuracy": 0.9, "fgsm_all@0": 0.9, "fgsm_all@0.1": 0.4,
                                          "fgsm_garment@0": 0.9, "fgsm_garment@0.1": 0.6,
                                          "test_psnr": 21.5, "test_colour_class_accuracy": 0.8}


def test_fid_curves_of_seeds_become_a_mean_with_its_range():
    curves = {"gan/gan": [{"epoch": 1, "fid": 10.0}, {"epoch": 2, "fid": 8.0}],
              "gan/gan.seed1": [{"epoch": 1, "fid": 14.0}, {"epoch": 2, "fid": 6.0}]}
    (points,) = stats.curve_bands(curves).values()
    assert points == [{"epoch": 1, "mean": 12.0, "min": 10.0, "max": 14.0, "n": 2},
                      {"epoch": 2, "mean": 7.0, "min": 6.0, "max": 8.0, "n": 2}]


def test_the_ranking_compares_only_models_measured_under_one_stamp_and_names_the_others():
    rows = ([{**r, "stamp": "eval@a 10000v10000"} for r in _seeded_rows("gan/a", [10.0, 11.0])]
            + [{**r, "stamp": "eval@a 10000v10000"} for r in _seeded_rows("gan/b", [20.0, 21.0])]
            + [{**r, "stamp": "classifier@c 10000v10000"} for r in _seeded_rows("gan/c", [1.0, 2.0])])
    models = stats.model_summaries(rows)
    assert [r["model"] for r in stats.ranking(models)] == ["gan/a", "gan/b"]  # gan/c's lower FID is another ruler
    assert stats.not_ranked(models) == ["gan/c: measured under classifier@c 10000v10000, not the ranking's "
                                        "eval@a 10000v10000"]


def test_seeds_measured_under_different_stamps_are_not_summarised():
    rows = _seeded_rows("gan/a", [10.0, 11.0])
    rows[0]["stamp"], rows[1]["stamp"] = "eval@a 10000v10000", "eval@a 256v10000"
    (model,) = stats.model_summaries(rows)
    assert "fid" not in model["numbers"] and model["stamp"] is None
    assert "2 different stamps" in stats.not_ranked([model])[0] and stats.ranking([model]) == []
