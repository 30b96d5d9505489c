"""The cost estimate: images per job, where its speed comes from, what the run already holds, GPU-hours and
wall time, packed or not."""
import dataclasses

import jobs
from fashion import artifacts
from fashion.checkpoint import CHECKPOINT
from jobs.catalogue import Resources
from slurm.plan import Estimate, allocations, estimate, images_per_run, totals, wall_minutes

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
    rows[1].gpus = 4
    images = 300 * 64
    (hours, _), _ = totals(rows, slots=2)
    assert abs(hours - (images / 6400 + 4 * images / 3200) / 3600) < 1e-12


def trained(run_dir, job, epoch, state="completed"):
    folder = run_dir / job
    artifacts.write_status(folder, state, epoch=epoch)
    (folder / CHECKPOINT).write_bytes(b"")  # only its presence counts here


def test_a_job_completed_in_the_run_costs_nothing_and_a_partial_one_only_its_remaining_epochs(tmp_path):
    run = tmp_path / "study"
    trained(run, "gan/gan", 4)
    trained(run, "gan/wgan", 1, state="interrupted")
    selected = [jobs.get("gan/gan"), jobs.get("gan/wgan")]
    configs = configs_for("gan/gan", "gan/wgan", epochs=4, limit_batches=10)
    done, partial = estimate(selected, configs, tmp_path, "NVIDIA H200", FIGURES, run_dir=run)
    assert (done.images, done.done) == (0, "completed: skipped")
    assert (partial.images, partial.done) == (3 * 10 * 64, "after epoch 1")
    forced = estimate(selected, configs, tmp_path, "NVIDIA H200", FIGURES, run_dir=run, force=True)
    assert [r.images for r in forced] == [4 * 10 * 64] * 2 and not any(r.done for r in forced)


def test_a_completed_job_asked_for_more_epochs_trains_only_the_new_ones(tmp_path):
    trained(tmp_path / "study", "gan/gan", 2)
    (row,) = estimate([jobs.get("gan/gan")], configs_for("gan/gan", epochs=5, limit_batches=10), tmp_path,
                      "NVIDIA H200", FIGURES, run_dir=tmp_path / "study")
    assert (row.images, row.done) == (3 * 10 * 64, "after epoch 2")


def test_a_corrupt_or_unavailable_job_is_skipped_as_the_launch_skips_it(tmp_path):
    (tmp_path / "study" / "gan/gan").mkdir(parents=True)
    (tmp_path / "study" / "gan/gan" / "status.json").write_text("{not json")
    selected = [jobs.get("gan/gan"), jobs.get("vae/product-cond")]
    corrupt, unavailable = estimate(selected, configs_for("gan/gan", "vae/product-cond"), tmp_path, "NVIDIA H200",
                                    FIGURES, run_dir=tmp_path / "study")
    assert (corrupt.images, corrupt.done) == (0, "corrupt: skipped")
    assert unavailable.images == 0 and unavailable.done.startswith("set aside: needs --set vae/product-cond:photo_dir")


def row(job, minutes, resources=Resources()):
    return Estimate(job, images=int(minutes * 60 * 100), images_per_s=100.0, source="", gpus=1, resources=resources)


def test_packs_fill_in_selection_order_among_jobs_asking_for_the_same_resources():
    small = Resources(cpus_per_task=2)
    rows = [row("a", 1), row("b", 1, small), row("c", 1), row("d", 1), row("e", 1, small), row("done", 0)]
    assert [[r.job for r in unit] for unit in allocations(rows, pack=2)] == [["a", "c"], ["d"], ["b", "e"]]
    assert [[r.job for r in unit] for unit in allocations(rows)] == [["a"], ["c"], ["d"], ["b"], ["e"]]


def test_a_pack_costs_between_its_longest_member_and_all_its_members_in_turn():
    rows = [row("a", 30), row("b", 10), row("c", 20), row("d", 20)]
    (low, high), (fast, slow) = totals(rows, slots=1, pack=2)  # packs (a, b) and (c, d)
    assert (low * 60, high * 60) == (30 + 20, 40 + 40)
    assert (fast, slow) == (50, 80)
    (low, high), (fast, slow) = totals(rows, slots=2, pack=2)
    assert (fast, slow) == (30, 40)
    assert totals(rows, slots=4) == ((80 / 60, 80 / 60), (30, 30))  # unpacked: one figure


def test_launch_plan_prints_the_totals_and_runs_nothing(tmp_path, capsys):
    import launch

    args = ["gan/gan", "gan/wgan", "--plan", "--slots", "1", "--outputs", str(tmp_path)]
    assert launch.main(args) == 0
    out = capsys.readouterr().out
    assert "2 jobs to train:" in out and "GPU-hours" in out and "with 1 running at once" in out
    assert not any(tmp_path.iterdir())


def test_launch_plan_skips_what_the_run_holds_and_gives_a_range_for_packs(tmp_path, capsys):
    import launch

    for job in ("gan/gan", "gan/wgan"):
        trained(tmp_path / "study", job, 50)
    args = ["gan/*", "--plan", "--run", "study", "--outputs", str(tmp_path), "--pack", "4", "--slots", "1"]
    assert launch.main(args) == 0
    out = capsys.readouterr().out
    assert "8 jobs to train (2 skipped) in 2 packs of up to 4:" in out and "with 1 pack at once" in out


def test_launch_plan_for_an_unknown_device_exits_2(tmp_path):
    import launch

    assert launch.main(["gan/gan", "--plan", "--plan-device", "TPU", "--outputs", str(tmp_path)]) == 2


def test_a_resume_the_launch_would_refuse_costs_nothing_and_says_why(tmp_path):
    run = tmp_path / "study"
    configs = configs_for("classify/cnn", epochs=3)
    trained(run, "classify/cnn", 3)
    artifacts.write_json(run / "classify/cnn" / "config.json", {"config": dataclasses.asdict(configs["classify/cnn"])})
    more = configs_for("classify/cnn", epochs=5)  # its cosine schedule spans the epochs: no training on
    (row,) = estimate([jobs.get("classify/cnn")], more, tmp_path, "NVIDIA H200", FIGURES, run_dir=run)
    assert row.images == 0 and row.done.startswith("refused: ") and "epochs" in row.done


def test_launch_plan_refuses_a_pack_the_launch_would_refuse(tmp_path):
    import launch

    assert launch.main(["gan/gan", "--plan", "--pack", "0", "--outputs", str(tmp_path)]) == 2
    assert launch.main(["gan/gan", "--plan", "--pack", "2", "--gpus-per-node", "2", "--outputs", str(tmp_path)]) == 2
