"""A sweep on the real local cluster: each (model, trial, seed) an array task, then the report's sweep view
(the cluster and the fixtures: tests/cluster/conftest.py)."""
from __future__ import annotations

import json

import pytest

from slurm.submit import split_arrays
from cluster_helpers import submitted, wait_until_ended


@pytest.mark.slurm
@pytest.mark.slow
def test_a_sweep_of_tiny_trials_trains_each_trial_as_an_array_task_and_reports_the_equal_budget_view(run):
    run.ok("gan/gan", "gan/lsgan", "--sweep", "lr_g+lr_d=loguniform(1e-4,1e-3)", "--trials", "2",
           "--partition", "gpu", "--epochs", "1", "--limit-batches", "2", "--batch-size", "16",
           "--set", "eval_samples=256", "--run", "sweep")
    record = submitted(run.outputs / "sweep")
    (group,) = record["groups"]
    assert group["array"] and sorted(group["jobs"]) == ["gan/gan.t000", "gan/gan.t001", "gan/lsgan.t000",
                                                        "gan/lsgan.t001"]
    rows = wait_until_ended([*group["jobs"].values(), record["report"]["slurm_id"]], timeout=900)
    assert all(row["State"] == "COMPLETED" for row in rows.values()), rows
    spec = json.loads((run.outputs / "sweep/sweep.json").read_text())
    config = json.loads((run.outputs / "sweep/gan/gan.t001/config.json").read_text())["config"]
    assert config["lr_g"] == config["lr_d"] == spec["models"]["gan/gan"]["trials"]["t001"]["lr_g"]
    view = json.loads((run.outputs / "sweep/report/summary.json").read_text())["sweep"]
    assert {m: v["measured"] for m, v in view["models"].items()} == {"gan/gan": 2, "gan/lsgan": 2}
    assert all(v["best"] and len(v["budget_curve"]) == 2 for v in view["models"].values()) and view["equal_budget"]
    assert view["ranking"] == []  # one seed per trial: no best trial has the 2 seeds a ranking needs


def test_an_array_larger_than_the_clusters_bound_is_split():
    groups = {"request": [[f"job{i}"] for i in range(5)], "other": [["x"]]}
    arrays = split_arrays(groups, 2)
    assert [(r, len(g)) for r, g in arrays] == [("request", 2), ("request", 2), ("request", 1), ("other", 1)]
    assert split_arrays(groups, None) == [("request", groups["request"]), ("other", groups["other"])]
