"""The cost estimate: images per job, where its speed comes from, GPU-hours and wall time."""
import jobs
from fashion import artifacts
from slurm.plan import estimate, gpu_hours, images_per_run, wall_minutes

FIGURES = {"NVIDIA H200": {"gan/gan": 6400.0, "gan/wgan": 3200.0}, "cpu": {"gan/gan": 320.0}}


def earlier_run(outputs, run, job, device, images_per_s, batch_size=64, in_metrics=True):
    folder = outputs / run / job
    env = {"device": "cuda", "gpu": device} if device != "cpu" else {"device": "cpu"}
    artifacts.write_json(folder / "config.json", {"job": job, "config": {"batch_size": batch_size}, **env})
    target = "metrics.json" if in_metrics else "status.json"
    artifacts.write_json(folder / target, {"images_per_s": images_per_s, "seconds_per_epoch": 1.0})


def configs_for(*names, **overrides):
    return {n: jobs.get(n).make_config({k: str(v) for k, v in overrides.items()}) for n in names}


def test_images_per_run_counts_whole_batches_of_every_epoch():
    config = jobs.get("gan/gan").make_config({"epochs": "3", "batch_size": "64"})
    assert images_per_run(config) == 3 * (60_000 // 64) * 64


def test_images_per_run_respects_limit_batches_and_subset():
    config = jobs.get("gan/gan").make_config({"epochs": "2", "limit_batches": "10", "train_subset": "320"})
    assert images_per_run(config) == 2 * 5 * 64  # 320 images make 5 batches, fewer than the limit


def test_benchmark_figure_gives_minutes_when_no_run_exists(tmp_path):
    configs = configs_for("gan/gan", epochs=2, limit_batches=100)
    (row,) = estimate([jobs.get("gan/gan")], configs, tmp_path, "NVIDIA H200", FIGURES)
    assert row.source == "benchmark figure"
    assert row.minutes == 2 * 100 * 64 / 6400 / 60


def test_earlier_runs_on_the_same_device_win_over_the_figures(tmp_path):
    earlier_run(tmp_path, "a", "gan/gan", "NVIDIA H200", 1000.0)
    earlier_run(tmp_path, "b", "gan/gan", "NVIDIA H200", 3000.0, in_metrics=False)  # still running
    earlier_run(tmp_path, "c", "gan/gan", "NVIDIA A100", 99999.0)  # another GPU type
    earlier_run(tmp_path, "d", "gan/gan", "NVIDIA H200", 99999.0, batch_size=256)  # another batch size
    configs = configs_for("gan/gan", epochs=1, limit_batches=10)
    (row,) = estimate([jobs.get("gan/gan")], configs, tmp_path, "NVIDIA H200", FIGURES)
    assert row.images_per_s == 2000.0
    assert row.source == "2 earlier runs"


def test_a_corrupt_earlier_run_is_ignored(tmp_path):
    earlier_run(tmp_path, "a", "gan/gan", "cpu", 100.0)
    (tmp_path / "a" / "gan/gan" / "metrics.json").write_text("{not json")
    (row,) = estimate([jobs.get("gan/gan")], configs_for("gan/gan"), tmp_path, "cpu", FIGURES)
    assert row.source == "benchmark figure"


def test_job_without_figure_uses_the_median_and_says_so(tmp_path):
    (row,) = estimate([jobs.get("vae/conv")], configs_for("vae/conv"), tmp_path, "NVIDIA H200", FIGURES)
    assert row.images_per_s == 4800.0
    assert row.source.startswith("guess")


def test_unknown_device_is_an_error_naming_the_known_ones(tmp_path):
    try:
        estimate([jobs.get("gan/gan")], configs_for("gan/gan"), tmp_path, "TPU", FIGURES)
    except ValueError as err:
        assert "NVIDIA H200" in str(err) and "cpu" in str(err)
    else:
        raise AssertionError("no error for a device without figures")


def test_wall_time_packs_longest_jobs_first_into_the_slots():
    assert wall_minutes([30, 20, 20, 10], slots=1) == 80
    assert wall_minutes([30, 20, 20, 10], slots=2) == 40
    assert wall_minutes([30, 20, 20, 10], slots=10) == 30


def test_gpu_hours_count_every_gpu_of_a_job(tmp_path):
    configs = configs_for("gan/gan", "gan/wgan", epochs=1, limit_batches=300)
    rows = estimate([jobs.get("gan/gan"), jobs.get("gan/wgan")], configs, tmp_path, "NVIDIA H200", FIGURES)
    images = 300 * 64
    assert abs(gpu_hours(rows) - (images / 6400 + images / 3200) / 3600) < 1e-12


def test_launch_plan_prints_the_totals_and_runs_nothing(tmp_path, capsys):
    import launch

    assert launch.main(["gan/gan", "gan/wgan", "--plan", "--slots", "1", "--outputs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "2 jobs:" in out and "GPU-hours" in out and "with 1 running at once" in out
    assert not any(tmp_path.iterdir())


def test_launch_plan_for_an_unknown_device_exits_2(tmp_path):
    import launch

    assert launch.main(["gan/gan", "--plan", "--plan-device", "TPU", "--outputs", str(tmp_path)]) == 2
