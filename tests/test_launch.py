"""The launcher's contract: clear errors (exit 2, nothing written), selection, skipping finished work."""
import json

import pytest

import jobs
import launch
from fashion import artifacts
from jobs import preflight


def run(capsys, *argv):
    code = launch.main(list(argv))
    return code, capsys.readouterr().out


def test_unknown_job_lists_the_valid_names_and_writes_nothing(tmp_path, capsys):
    code, out = run(capsys, "gan/dcgan9", "--local", "--outputs", str(tmp_path / "out"))
    assert code == 2 and "no job matches 'gan/dcgan9'" in out and "gan/wgan_gp" in out
    assert not (tmp_path / "out").exists()


def test_unknown_setting_lists_the_valid_settings(tmp_path, capsys):
    code, out = run(capsys, "gan/wgan", "--local", "--set", "gp_wieght=3", "--outputs", str(tmp_path))
    assert code == 2 and "unknown setting 'gp_wieght'" in out and "clip" in out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("setting, message", [
    ("lr_g=fast", "lr_g='fast': expected float"),
    ("precision=fp8", "choose one of auto, no, bf16, fp16"),
    ("epochs=0", "epochs=0: must be at least 1"),
    ("download=maybe", "expected bool (true/false, yes/no or 1/0)"),
])
def test_invalid_values_are_named_with_the_fix(tmp_path, capsys, setting, message):
    code, out = run(capsys, "gan/gan", "--local", "--set", setting, "--outputs", str(tmp_path))
    assert code == 2 and message in out.replace("\n", " ")


def test_job_specific_setting_applies_only_to_that_job():
    args = launch.build_parser().parse_args(["--all", "--set", "gan/wgan_gp:gp_weight=5", "--epochs", "3"])
    assert launch.overrides_for(jobs.get("gan/wgan_gp"), args) == {"epochs": "3", "gp_weight": "5"}
    assert launch.overrides_for(jobs.get("gan/gan"), args) == {"epochs": "3"}


def test_globs_and_suites_select_jobs():
    assert [j.name for j in jobs.select(["gan/w*"])] == ["gan/wgan", "gan/wgan_gp"]
    assert len(jobs.select(["gans"])) == 10


def test_list_prints_the_catalogue(capsys):
    code, out = run(capsys, "--list")
    assert code == 0 and all(name in out for name in jobs.CATALOGUE)


def test_a_job_missing_its_own_data_is_skipped_locally_with_the_reason(tmp_path, capsys):
    code, out = run(capsys, "vae/product-cond", "--local", "--outputs", str(tmp_path))
    assert code == 1 and "vae/product-cond: skipped" in out and "photo_dir" in out
    assert not (tmp_path / "default" / "vae").exists()


def skip_finished(selected, out, force):
    """What a launch keeps of ``selected``, with --force's old folders moved aside as the launcher does."""
    todo, replace, _ = preflight.decide(selected, {job.name: job.make_config() for job in selected}, out, force)
    preflight.move_aside(replace, out)
    return todo


def test_completed_jobs_are_skipped_unless_forced(tmp_path, capsys):
    done = tmp_path / "r" / "gan" / "gan"
    artifacts.write_status(done, "completed", epoch=50)
    artifacts.write_text(done / "metrics.json", "{}")
    assert skip_finished([jobs.get("gan/gan")], tmp_path / "r", force=False) == []
    assert skip_finished([jobs.get("gan/gan")], tmp_path / "r", force=True) == [jobs.get("gan/gan")]
    moved = list((tmp_path / "r" / ".replaced").iterdir())
    assert len(moved) == 1 and (moved[0] / "metrics.json").exists()  # set aside, not destroyed


def test_status_of_a_missing_run_is_a_clear_error(tmp_path, capsys):
    code, out = run(capsys, "--status", "nope", "--outputs", str(tmp_path))
    assert code == 2 and "no run 'nope'" in out


def test_dry_run_passes_and_checks_artifacts(fake_fashion_dir, tmp_path, capsys):
    code, out = run(capsys, "gan/lsgan", "gan/cgan", "--dry-run", "--outputs", str(tmp_path))
    assert code == 0 and out.count("pass") == 2
    metrics = json.loads((tmp_path / ".dry-run" / "default" / "gan" / "cgan" / "metrics.json").read_text())
    assert metrics["epochs"] == 2


def test_missing_data_fails_the_dry_run_with_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path / "nothing"))
    code, out = run(capsys, "gan/gan", "--dry-run", "--outputs", str(tmp_path))
    assert code == 1 and "dataset-fashion-mnist" in out


@pytest.mark.parametrize("gpus, tasks, cpu, visible_env, expected", [
    (0, 1, False, None, {}),                                            # no GPU: the CPU
    (2, 1, False, None, {"gpus_per_node": 1, "visible_gpus": (0, 1)}),  # a GPU workstation trains on its GPU
    (1, 2, False, None, {}),                                            # too few GPUs for the ranks: gloo on CPU
    (2, 1, True, None, {}),                                             # cpu=true is obeyed
    (2, 2, False, "2,3", {"gpus_per_node": 2, "visible_gpus": (2, 3)}),  # the user's GPU choice is kept
])
def test_local_jobs_get_the_gpus_this_process_may_use(monkeypatch, gpus, tasks, cpu, visible_env, expected):
    import torch

    from jobs.local import local_gpus

    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    if visible_env is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible_env)
    assert local_gpus(tasks, cpu) == expected


# -- seeds ------------------------------------------------------------------------------------------------
def test_seeds_fan_each_job_out_with_seed_0_keeping_the_plain_name():
    names = [j.name for j in jobs.select(["gan/gan", "gan/lsgan"], [0, 1, 2])]
    assert names == ["gan/gan", "gan/gan.seed1", "gan/gan.seed2", "gan/lsgan", "gan/lsgan.seed1", "gan/lsgan.seed2"]
    assert [j.make_config().seed for j in jobs.select(["gan/gan"], [0, 4, 7])] == [0, 4, 7]


def test_a_seed_job_name_resolves_to_its_model_with_that_seed():
    job = jobs.get("gan/wgan_gp.seed3")
    assert (job.name, job.model, job.make_config().seed) == ("gan/wgan_gp.seed3", "gan/wgan_gp", 3)
    assert job.task is jobs.get("gan/wgan_gp").task
    with pytest.raises(KeyError):
        jobs.get("gan/gan.seed0")  # seed 0 is plain gan/gan: one name per folder


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0"], "--seeds 0: the number of seeds must be at least 1"),
    (["--seeds", "1,-2"], "--seeds 1,-2: seeds are 0 or more"),
    (["--seeds", "0,3,3"], "seed 3 given twice"),
    (["--seeds", "two"], "expected a count (3) or a comma list"),
    (["--seed", "1", "--seeds", "2"], "--seed 1 and --seeds 2: give one of them"),
    (["--seed", "-1"], "--seed -1: seeds are 0 or more"),
    (["--seeds", "2", "--set", "seed=5"], "seed=5 contradicts its name"),
])
def test_bad_seeds_exit_2_naming_the_flag_and_write_nothing(tmp_path, capsys, argv, message):
    code, out = run(capsys, "gan/gan", "--local", *argv, "--outputs", str(tmp_path / "out"))
    assert code == 2 and message in out.replace("\n", " ")
    assert not (tmp_path / "out").exists()


def test_seed_flag_is_one_seed_with_its_own_name():
    args = launch.build_parser().parse_args(["--seed", "4"])
    assert launch.seeds_of(args) == [4]
    assert [j.name for j in jobs.select(["gan/gan"], launch.seeds_of(args))] == ["gan/gan.seed4"]


def test_a_setting_for_a_model_applies_to_all_its_seeds():
    args = launch.build_parser().parse_args(["gan/wgan_gp", "--seeds", "2", "--set", "gan/wgan_gp:gp_weight=5"])
    assert all(launch.overrides_for(j, args) == {"gp_weight": "5"} for j in jobs.select(["gan/wgan_gp"], [0, 1]))


def test_list_with_seeds_shows_the_expanded_names(capsys):
    code, out = run(capsys, "--list", "gan/lsgan", "--seeds", "0,4")
    assert code == 0 and "gan/lsgan.seed4" in out and "gan/gan " not in out


def test_completed_seeds_are_skipped_each_on_its_own(tmp_path):
    for name in ("gan/gan", "gan/gan.seed2"):
        artifacts.write_status(tmp_path / "r" / name, "completed", epoch=50)
    todo = skip_finished(jobs.select(["gan/gan"], [0, 1, 2]), tmp_path / "r", force=False)
    assert [j.name for j in todo] == ["gan/gan.seed1"]


def test_a_run_whose_seeds_all_completed_trains_nothing(tmp_path, capsys):
    for name in ("gan/gan", "gan/gan.seed1"):
        artifacts.write_status(tmp_path / "r" / name, "completed", epoch=50)
    code, out = run(capsys, "gan/gan", "--seeds", "2", "--local", "--run", "r", "--no-aggregate",
                    "--outputs", str(tmp_path))
    assert code == 0 and "every selected job completed" in " ".join(out.split())


def test_a_seed_resumes_from_its_own_folder_only(fake_fashion_dir, tmp_path):
    from helpers import tiny
    from fashion.checkpoint import load_checkpoint
    from jobs.runner import TrainJob

    def train(name, epochs):  # what a SLURM array task runs on the node
        config = tiny(jobs.get(name).make_config(), epochs=epochs)
        TrainJob(name, config, str(tmp_path / name))()

    train("gan/gan.seed1", 1)
    first = load_checkpoint(tmp_path / "gan/gan.seed1")["history"]
    train("gan/gan.seed1", 2)
    resumed = load_checkpoint(tmp_path / "gan/gan.seed1")
    assert resumed["epoch"] == 2 and resumed["history"][0] == first[0]  # epoch 1 kept, not retrained
    assert not (tmp_path / "gan/gan").exists()
    assert json.loads((tmp_path / "gan/gan.seed1/config.json").read_text())["config"]["seed"] == 1


def test_dry_run_has_a_row_and_a_folder_per_seed(fake_fashion_dir, tmp_path, capsys):
    code, out = run(capsys, "gan/lsgan", "--seeds", "0,3", "--dry-run", "--outputs", str(tmp_path))
    assert code == 0 and out.count("pass") == 2 and "gan/lsgan.seed3" in out
    folder = tmp_path / launch.DRY_RUN_DIR / "default"
    seeds = [json.loads((folder / name / "config.json").read_text())["config"]["seed"]
             for name in ("gan/lsgan", "gan/lsgan.seed3")]
    assert seeds == [0, 3]


def test_a_generative_job_is_launched_alone_with_no_classifier_to_train(fake_fashion_dir, tmp_path, capsys):
    code, out = run(capsys, "gan/gan", "--plan", "--outputs", str(tmp_path))
    assert code == 0 and "1 job to train:" in out and "classify" not in out


def test_a_missing_classifier_file_is_a_clear_error(tmp_path, capsys):
    code, out = run(capsys, "gan/gan", "--local", "--classifier", str(tmp_path / "nope.pt"), "--outputs", str(tmp_path))
    assert code == 2 and "--classifier" in out and "no such file" in " ".join(out.split())
    assert not (tmp_path / "default").exists()


def test_optimizer_is_one_setting_name_in_every_family():
    fields = {name: set(job.config_class.__dataclass_fields__) for name, job in jobs.CATALOGUE.items()}
    assert "optimizer" in fields["classify/cnn"] and "optimizer" in fields["vae/conv"]
    assert not [name for name, keys in fields.items() if "optimiser" in keys]
