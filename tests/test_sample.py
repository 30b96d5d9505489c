"""Finished generative jobs keep a standalone generator; `launch.py --sample` draws from it without the data."""
import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import launch
from helpers import copy_job, data_at, fit_tiny, make_fake_fashion
from fashion import artifacts
from fashion.checkpoint import load_checkpoint
from fashion.data import CLASSES
from fashion.gans.networks import Discriminator, Generator
from fashion.gans import REGISTRY
from fashion.generator import FILE, SampleError, draw, export, load
from fashion.recorder import network_summary

RUN = "t"
# (job, epochs): two infoGAN epochs give its sweep GIFs two frames
TRAINED = {"gan/gan": 1, "gan/cgan": 1, "gan/infogan": 2, "vae/cond": 1, "vae/conv": 1, "colorize/dcgan": 1}


@pytest.fixture(scope="module")
def outputs(trained_job, tmp_path_factory) -> Path:
    """One run of tiny fits of every kind of generative job (GAN, conditional GAN, infoGAN, VAEs, colorizer);
    the conditional GAN is the session's trained job."""
    root = tmp_path_factory.mktemp("outputs")
    copy_job(trained_job.folder, root / RUN / trained_job.name)
    with data_at(trained_job.data):
        for name, epochs in TRAINED.items():
            if name != trained_job.name:
                fit_tiny(name, root / RUN / name, epochs=epochs, limit_batches=1, snapshot_every=0)
    return root


def sample(capsys, outputs, *argv):
    code = launch.main(["--sample", *argv, "--outputs", str(outputs)])
    return code, " ".join(capsys.readouterr().out.split())  # rich wraps long lines


def test_generator_file_loads_with_weights_only_and_holds_no_optimiser_or_discriminator(outputs):
    spec = torch.load(outputs / RUN / "gan/cgan" / FILE, weights_only=True)
    trained = load_checkpoint(outputs / RUN / "gan/cgan")["nets"]["G"]
    assert spec["state_dict"].keys() == trained.keys()
    assert all(torch.equal(spec["state_dict"][k], trained[k]) for k in trained)
    assert not {"opts", "D", "nets"} & spec.keys()
    assert spec["conditional"] and spec["classes"] == list(CLASSES) and spec["params"] == 6_650_433


def test_vae_generator_file_holds_the_decoder_only(outputs):
    spec = torch.load(outputs / RUN / "vae/conv" / FILE, weights_only=True)
    trained = load_checkpoint(outputs / RUN / "vae/conv")["nets"]["vae"]
    assert spec["state_dict"].keys() == {k.removeprefix("decoder.") for k in trained if k.startswith("decoder.")}
    assert spec["latent"] == [{"kind": "normal", "size": 20}] and not spec["conditional"]


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_gan_s_generator_file_rebuilds_its_generator(name, task_factory, tmp_path):
    task = task_factory(f"gan/{name}")
    spec, net = load(export(task, tmp_path, f"gan/{name}"))
    latent = task.fixed_grids[""][:4]
    with torch.no_grad():
        assert torch.equal(net(latent), task.generate(latent))
    assert draw(spec, net, 3).shape == (3, 1, 28, 28)  # the stored latent layout fits G's input


def test_a_generator_file_naming_a_foreign_builder_is_refused(tmp_path):
    torch.save({"builder": "os.system", "kwargs": {"command": "true"}, "state_dict": {}}, tmp_path / FILE)
    with pytest.raises(SampleError, match="not part of this suite"):
        load(tmp_path / FILE)


def test_conditional_draw_feeds_z_then_the_asked_class(outputs):
    spec, net = load(outputs / RUN / "gan/cgan" / FILE)
    images = draw(spec, net, 5, "Dress", seed=7)
    z = torch.rand(5, 62, generator=torch.Generator().manual_seed(7))
    dress = torch.nn.functional.one_hot(torch.full((5,), CLASSES.index("Dress")), 10).float()
    with torch.no_grad():
        expected = (net(torch.cat([z, dress], 1)) + 1) / 2
    assert torch.allclose(images, expected.clamp(0, 1))


def test_sample_writes_a_grid_of_the_asked_size_without_the_data(outputs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    code, out = sample(capsys, outputs, f"{RUN}/gan/cgan", "-n", "100", "--label", "Dress",
                       "--out", str(tmp_path / "dress.png"))
    assert code == 0, out
    assert iio.imread(tmp_path / "dress.png").shape[:2] == (10 * 30 + 2, 10 * 30 + 2)


def test_sampling_is_reproducible_by_seed(outputs, tmp_path, capsys):
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert sample(capsys, outputs, f"{RUN}/gan/gan", "-n", "16", "--seed", seed,
                      "--out", str(tmp_path / f"{name}.png"))[0] == 0
    a, b, c = (iio.imread(tmp_path / f"{name}.png") for name in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("job, label", [("vae/cond", "bag"), ("vae/conv", None), ("gan/infogan", None)])
def test_vaes_and_infogan_draw_from_their_prior(outputs, tmp_path, capsys, job, label):
    args = ["--label", label] if label else []
    code, out = sample(capsys, outputs, f"{RUN}/{job}", "-n", "12", *args, "--out", str(tmp_path / "s.png"))
    assert code == 0, out
    assert iio.imread(tmp_path / "s.png").shape[:2] == (2 * 30 + 2, 10 * 30 + 2)


def test_colorizer_colours_a_given_grey_image(outputs, tmp_path, capsys):
    grey = np.zeros((28, 28), np.uint8)
    grey[6:22, 8:20] = 200
    iio.imwrite(tmp_path / "grey.png", grey)
    code, out = sample(capsys, outputs, f"{RUN}/colorize/dcgan", "--input", str(tmp_path / "grey.png"),
                       "--out", str(tmp_path / "colour.png"))
    assert code == 0, out
    picture = iio.imread(tmp_path / "colour.png")
    assert picture.shape == (2 * 30 + 2, 30 + 2, 3)  # the grey input above its colouring


def test_colorizer_without_input_colours_test_images(outputs, tmp_path, capsys):
    data = make_fake_fashion(tmp_path / "data")
    code, out = sample(capsys, outputs, f"{RUN}/colorize/dcgan", "-n", "4", "--data-dir", str(data),
                       "--out", str(tmp_path / "colour.png"))
    assert code == 0, out
    assert iio.imread(tmp_path / "colour.png").shape[:2] == (2 * 30 + 2, 4 * 30 + 2)


@pytest.mark.parametrize("state, fields, says", [
    ("running", {"epoch": 3, "epochs": 50}, ["still running (epoch 3/50)", "--status t"]),
    ("failed", {"epoch": 2, "epochs": 50}, ["failed at epoch 2/50", "python launch.py gan/lsgan --run t"]),
    ("diverged", {"epoch": 4, "reason": "non-finite D"}, ["diverged at epoch 4", "--force"]),
])
def test_unfinished_job_says_its_state_and_how_to_finish_it(outputs, tmp_path, capsys, state, fields, says):
    artifacts.write_status(outputs / RUN / "gan/lsgan", state, **fields)
    code, out = sample(capsys, outputs, f"{RUN}/gan/lsgan", "--out", str(tmp_path / "x.png"))
    assert code == 2 and all(s in out for s in says), out
    assert not (tmp_path / "x.png").exists()


def test_non_generative_job_is_named_as_such(outputs, capsys):
    artifacts.write_status(outputs / RUN / "classify/cnn", "completed", epoch=1, epochs=1)
    code, out = sample(capsys, outputs, f"{RUN}/classify/cnn")
    assert code == 2 and "not a generative job" in out


def test_missing_job_lists_the_run_s_jobs(outputs, capsys):
    code, out = sample(capsys, outputs, f"{RUN}/gan/wgan")
    assert code == 2 and "gan/cgan" in out and "--outputs" in out


def test_label_for_an_unconditional_model_is_refused(outputs, capsys):
    code, out = sample(capsys, outputs, f"{RUN}/gan/gan", "--label", "Dress")
    assert code == 2 and "unconditional: drop --label" in out


def test_unknown_label_lists_the_valid_names(outputs, capsys):
    code, out = sample(capsys, outputs, f"{RUN}/gan/cgan", "--label", "Dres")
    assert code == 2 and "'Ankle boot'" in out and "'Dress'" in out


@pytest.mark.parametrize("n", ["0", "-3", "100000"])
def test_bad_number_of_images_is_refused(outputs, capsys, n):
    code, out = sample(capsys, outputs, f"{RUN}/gan/gan", "-n", n)
    assert code == 2 and f"-n {n}" in out


def test_sample_never_overwrites_a_file_of_the_outputs_tree(outputs, capsys):
    target = outputs / RUN / "gan/gan/samples/epoch_001.png"
    before = target.read_bytes()
    code, out = sample(capsys, outputs, f"{RUN}/gan/gan", "--out", str(target))
    assert code == 2 and target.read_bytes() == before


def test_infogan_animates_each_code_sweep(outputs):
    folder = outputs / RUN / "gan/infogan"
    for code in ("c1", "c2", "c1c2"):
        assert len(iio.imread(folder / f"sweeps_{code}.gif", index=None)) == TRAINED["gan/infogan"]


def test_every_generative_job_leaves_an_epoch_strip(outputs):
    for name in TRAINED:
        assert (outputs / RUN / name / "strip.png").is_file(), name


def test_strip_shows_first_middle_and_last_epoch():
    frames = [Path(f"samples/epoch_{e:03d}.png") for e in range(50, 0, -1)]
    assert [epoch for epoch, _ in artifacts.strip_frames(frames)] == [1, 25, 50]
    assert [epoch for epoch, _ in artifacts.strip_frames(frames[-2:])] == [1, 2]


def test_config_records_the_reference_parameter_counts(outputs):
    config = json.loads((outputs / RUN / "gan/gan/config.json").read_text())
    assert config["params"] == {"G": 6_640_193, "D": 6_559_169}
    assert config["networks"]["G"] == "Generator: 6,640,193 params, FC 1024 -> FC 6272 -> deconv 64 -> deconv 1"


def test_network_summary_lists_the_weighted_layers_in_order():
    assert network_summary(Discriminator()) == ("Discriminator: 6,559,169 params, "
                                                "conv 64 -> conv 128 -> FC 1024 -> FC 1")
    assert network_summary(Generator(62)).startswith("Generator: 6,640,193 params")


def test_report_shows_parameter_counts_and_the_epoch_strip(outputs, tmp_path):
    import io
    import shutil

    from rich.console import Console

    from fashion.report import aggregate

    run = tmp_path / "report-run"
    shutil.copytree(outputs / RUN / "gan/gan", run / "gan/gan")
    assert aggregate(run, console=Console(file=io.StringIO())) == 0
    rows = {row["job"]: row for row in json.loads((run / "report/summary.json").read_text())["rows"]}
    assert rows["gan/gan"]["params"] == "D 6,559,169 · G 6,640,193"
    assert 'class="strip"><img src="../gan/gan/strip.png"' in (run / "report/index.html").read_text()
