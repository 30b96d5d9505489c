"""IDX parsing, data discovery and batching."""
import gzip

import numpy as np
import pytest
import torch

from helpers import REAL_DATA, make_fake_fashion, write_idx
from fashion import data
from fashion.data import DataError, epoch_batches, find_data_dir, load_fashion, read_idx


def test_reads_images_and_labels_from_gz_and_raw(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a", images)), images)
    assert np.array_equal(read_idx(write_idx(tmp_path / "b", images, compress=False)), images)


def test_truncated_file_names_the_file(tmp_path):
    path = write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8), compress=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*truncated"):
        read_idx(path)


def test_bad_magic_is_rejected(tmp_path):
    path = tmp_path / "junk"
    path.write_bytes(b"\x12\x34\x56\x78" + bytes(100))
    with pytest.raises(DataError, match="bad magic"):
        read_idx(path)


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(b"x" * 100)[:20])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz"):
        read_idx(path)


def test_labels_out_of_range_are_rejected(tmp_path):
    folder = make_fake_fashion(tmp_path / "d", n_train=20, n_test=10)
    write_idx(folder / "train-labels-idx1-ubyte", np.full(20, 11, np.uint8))
    with pytest.raises(DataError, match="label 11 out of range"):
        data.load_split("train", folder)


def test_image_and_label_counts_must_agree(tmp_path):
    folder = make_fake_fashion(tmp_path / "d", n_train=20, n_test=10)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.zeros(9, np.uint8))
    with pytest.raises(DataError, match="9 labels for 10 images"):
        data.load_split("test", folder)


def test_swapped_files_are_detected(tmp_path):
    folder = make_fake_fashion(tmp_path / "d", n_train=20, n_test=10)
    (folder / "train-labels-idx1-ubyte.gz").replace(tmp_path / "labels.gz")
    (folder / "train-images-idx3-ubyte.gz").replace(folder / "train-labels-idx1-ubyte.gz")
    (tmp_path / "labels.gz").replace(folder / "train-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match="swapped"):
        data.load_split("train", folder)


def test_explicit_dir_wins_over_environment(tmp_path, monkeypatch):
    first = make_fake_fashion(tmp_path / "first", n_train=20, n_test=10)
    second = make_fake_fashion(tmp_path / "second", n_train=30, n_test=10)
    monkeypatch.setenv("FASHION_MNIST_DIR", str(second))
    assert find_data_dir(first) == first
    assert find_data_dir() == second


def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        find_data_dir()
    monkeypatch.delenv("FASHION_MNIST_DIR")
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DataError, match="--download"):
        find_data_dir()


def test_splits_have_a_channel_axis(fake_fashion_dir):
    ds = load_fashion()
    assert ds.train.images.shape == (512, 1, 28, 28) and ds.train.images.dtype == torch.uint8
    assert ds.test.labels.shape == (256,) and int(ds.test.labels.max()) <= 9


def test_global_batch_is_the_same_images_whatever_the_world_size():
    single = epoch_batches(1000, 64, epoch=3, seed=7)
    shards = [epoch_batches(1000, 64, epoch=3, seed=7, rank=r, world=4) for r in range(4)]
    assert len(single) == 1000 // 64
    for step, batch in enumerate(single):
        assert sorted(torch.cat([s[step] for s in shards]).tolist()) == sorted(batch.tolist())


def test_epochs_are_shuffled_differently_but_reproducibly():
    a, b = epoch_batches(500, 50, 0, seed=1), epoch_batches(500, 50, 1, seed=1)
    assert not torch.equal(a[0], b[0])
    assert torch.equal(a[0], epoch_batches(500, 50, 0, seed=1)[0])


def test_batch_size_must_split_over_processes():
    with pytest.raises(ValueError, match="not divisible by the 3 processes"):
        epoch_batches(100, 64, 0, 0, rank=0, world=3)


@pytest.mark.skipif(not REAL_DATA.exists(), reason="real Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist_parses():
    train, labels = data.load_split("train", REAL_DATA)
    assert train.shape == (60000, 28, 28) and np.bincount(labels).tolist() == [6000] * 10
