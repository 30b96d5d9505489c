"""The shipped evaluation network: it loads, matches its metadata, reproduces its recorded test accuracy,
refuses damaged files with a message that says how to restore them, and its trainer runs end to end."""
import hashlib
import shutil
import tomllib

import pytest
import torch

from helpers import REAL_DATA, ROOT
from fashion.evaluator import METADATA, WEIGHTS, EvaluatorError, load_evaluator, read_metadata, stamp
from fashion.evaluator.network import EvalNet

RESTORE_HINTS = ("git checkout -- fashion/evaluator/", "python -m fashion.evaluator.train")


def assert_names_file_and_fix(err: pytest.ExceptionInfo, path) -> None:
    message = str(err.value)
    assert str(path) in message
    for hint in RESTORE_HINTS:
        assert hint in message


def test_shipped_evaluator_loads_in_eval_mode_and_matches_its_metadata():
    net, metadata = load_evaluator()
    assert isinstance(net, EvalNet) and not net.training
    assert hashlib.sha256(WEIGHTS.read_bytes()).hexdigest() == metadata["sha256"]
    assert metadata["name"] == "fashion-eval-v1" and metadata["trained_by"] == "python -m fashion.evaluator.train"
    assert metadata["feature_dim"] == net.feature_dim
    assert metadata["train_images"] == 60000 and metadata["test_images"] == 10000
    assert metadata["test_accuracy"] >= 0.93
    assert metadata["test_accuracy"] == pytest.approx(1 - metadata["test_errors"] / 10000)
    assert WEIGHTS.stat().st_size < 5_000_000
    assert torch.load(WEIGHTS, weights_only=True)["kwargs"] == net.hparams
    assert stamp(metadata) == {"evaluator": "fashion-eval-v1", "sha256": metadata["sha256"][:12]}


def test_features_and_head_compose_to_forward_and_eval_mode_is_deterministic():
    net, metadata = load_evaluator()
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = net.features(x)
        assert features.shape == (64, metadata["feature_dim"])
        logits = net.head(features)
        assert logits.shape == (64, 10)
        assert torch.equal(net(x), logits)
        assert torch.equal(net.features(x), features)
    # Pre-activation features: no ReLU point mass at zero (the reason for the layer; see network.py).
    assert (features == 0).float().mean() < 0.01


@pytest.mark.skipif(not REAL_DATA.exists(), reason=f"real Fashion-MNIST not installed at {REAL_DATA}")
def test_shipped_evaluator_reproduces_its_recorded_test_errors():
    from fashion.data import load_fashion
    from fashion.evaluator.train import count_errors

    net, metadata = load_evaluator()
    test = load_fashion(REAL_DATA).test
    # Same path as the trainer's measurement (fashion.metrics.embed, batches of 500, eval mode, fp32 on the
    # CPU), so the count is exact; only a different torch/oneDNN build could move a borderline image.
    assert count_errors(net, test.images, test.labels) == metadata["test_errors"]


def shipped_copy(tmp_path):
    for path in (WEIGHTS, METADATA):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path / WEIGHTS.name


def test_missing_weights_raise_an_error_naming_the_file_and_the_fix(tmp_path):
    weights = shipped_copy(tmp_path)
    weights.unlink()
    with pytest.raises(EvaluatorError, match="missing") as err:
        load_evaluator(path=weights)
    assert_names_file_and_fix(err, weights)


def test_missing_metadata_raises_an_error_naming_the_file_and_the_fix(tmp_path):
    weights = shipped_copy(tmp_path)
    (tmp_path / METADATA.name).unlink()
    with pytest.raises(EvaluatorError, match="missing") as err:
        load_evaluator(path=weights)
    assert_names_file_and_fix(err, tmp_path / METADATA.name)


def test_a_damaged_weights_file_fails_the_hash_check(tmp_path):
    weights = shipped_copy(tmp_path)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the middle of the tensors: still loadable, but wrong
    weights.write_bytes(bytes(data))
    with pytest.raises(EvaluatorError, match="does not match") as err:
        load_evaluator(path=weights)
    assert_names_file_and_fix(err, weights)


def test_corrupt_metadata_and_an_unloadable_file_with_a_matching_hash_are_errors(tmp_path):
    weights = shipped_copy(tmp_path)
    meta = tmp_path / METADATA.name
    meta.write_text("{not json")
    with pytest.raises(EvaluatorError, match="unreadable") as err:
        load_evaluator(path=weights)
    assert_names_file_and_fix(err, meta)

    junk = b"not a torch file"
    weights.write_bytes(junk)
    meta.write_text(METADATA.read_text().replace(read_metadata()["sha256"], hashlib.sha256(junk).hexdigest()))
    with pytest.raises(EvaluatorError, match="cannot be loaded") as err:
        load_evaluator(path=weights)
    assert_names_file_and_fix(err, weights)


def test_trainer_runs_end_to_end_and_writes_loadable_files(tmp_path, fake_fashion_dir):
    from fashion.data import load_fashion
    from fashion.evaluator import train

    out = tmp_path / "out"
    assert train.main(["--out-dir", str(out), "--train-subset", "256", "--epochs", "1"]) == 0
    net, metadata = load_evaluator(path=out / WEIGHTS.name)
    assert hashlib.sha256((out / WEIGHTS.name).read_bytes()).hexdigest() == metadata["sha256"]
    assert metadata["train_images"] == 256 and metadata["recipe"]["epochs"] == 1
    assert len(metadata["history"]) == 1
    for key in ("feature_layer", "feature_dim", "test_accuracy", "test_errors", "train_seconds", "machine",
                "torch", "git_commit", "trained_by"):
        assert key in metadata
    test = load_fashion(fake_fashion_dir).test
    assert metadata["test_images"] == len(test)
    assert train.count_errors(net, test.images, test.labels) == metadata["test_errors"]


def test_package_data_ships_the_weights_and_metadata():
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert {"*.pt", "*.json"} <= set(package_data["fashion.evaluator"])
