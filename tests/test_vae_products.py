"""vae/product-cond: the product-photo reader (bad rows and images are reported and skipped) and the job."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import jobs
from helpers import tiny
from fashion.data import DataError
from fashion.task import Task
from fashion.training import fit
from fashion.vae.products import GENDERS, load_products

HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"
SUBCATEGORIES = {"Topwear": (200, 40, 40), "Shoes": (40, 40, 200), "Bags": (40, 160, 40),
                 "Watches": (220, 200, 40), "Sandal": (120, 60, 20), "Bottomwear": (30, 30, 30)}


def write_photo(path, colour, size=(60, 80)):
    """A product-like photo: a coloured block on white, at the set's 60 wide x 80 high."""
    pixels = np.full((size[1], size[0], 3), 255, np.uint8)
    pixels[size[1] // 5: -size[1] // 5, size[0] // 6: -size[0] // 6] = colour
    Image.fromarray(pixels).save(path, format="JPEG")


def make_product_folder(folder):
    """48 good products in six subCategories, plus one of each problem the reader must survive."""
    (folder / "images").mkdir(parents=True)
    lines, pid = [HEADER], 1000
    for sub, colour in SUBCATEGORIES.items():
        for k in range(8):
            pid += 1
            lines.append(f"{pid},{GENDERS[k % 5]},Apparel,{sub},Thing,Red,Summer,2012,Casual,Item {pid}")
            write_photo(folder / "images" / f"{pid}.jpg", colour, size=(30, 40) if pid == 1002 else (60, 80))
    lines.append("2001,,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,No gender")  # missing field
    write_photo(folder / "images" / "2001.jpg", (0, 0, 0))
    lines.append("2002,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,No photo")  # missing image
    lines.append("2003,Women,Apparel,Shoes,Heels,Blue,Summer,2012,Casual,Broken photo")  # unreadable image
    (folder / "images" / "2003.jpg").write_bytes(b"not a jpeg at all")
    lines.append("2004,Men,Apparel")  # malformed: too few fields
    lines.append("2005,Robots,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,Odd gender")
    write_photo(folder / "images" / "2005.jpg", (0, 0, 0))
    lines.append("2006,Men,Apparel,Bags,Bag,Blue,Summer,2012,Casual,Bag, large, with, commas")  # kept
    write_photo(folder / "images" / "2006.jpg", SUBCATEGORIES["Bags"])
    (folder / "styles.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def product_dir(tmp_path):
    return make_product_folder(tmp_path / "products")


def product_config(folder, **changes):
    job = jobs.get("vae/product-cond")
    return tiny(job.make_config({"photo_dir": str(folder)}), **{"batch_size": 8, **changes})


def test_reader_keeps_good_products_and_counts_each_problem(product_dir, capsys):
    catalogue = load_products(product_config(product_dir))
    assert catalogue.skipped == {"missing id, gender or subCategory": 1, "missing image": 1,
                                 "unreadable image": 1, "malformed row": 1, "unknown gender": 1}
    assert len(catalogue.train) + len(catalogue.test) == 49 and catalogue.rows == 54
    assert "skipped 5" in capsys.readouterr().out


def test_one_product_in_twenty_of_each_subcategory_is_held_out_as_in_the_write_up(product_dir):
    config = product_config(product_dir)
    assert config.test_every == 20  # the write-up's 19:1 split
    catalogue = load_products(config)
    assert len(catalogue.test) == len(SUBCATEGORIES)  # 8 or 9 products each: only the first of each is held out
    assert len(catalogue.train) == 49 - len(SUBCATEGORIES)
    assert len(load_products(product_config(product_dir, test_every=4)).test) == 2 * len(SUBCATEGORIES) + 1


def test_products_become_80x60_rgb_with_a_subcategory_and_a_gender_hot(product_dir):
    catalogue = load_products(product_config(product_dir))
    images, labels = catalogue.train.images, catalogue.train.labels
    assert images.dtype == torch.uint8 and images.shape[1:] == (3, 80, 60)
    assert labels.shape[1] == 25
    assert (labels[:, :20].sum(1) == 1).all() and (labels[:, 20:].sum(1) == 1).all()
    assert set(catalogue.subcategories) == set(SUBCATEGORIES)
    bags = catalogue.subcategories.index("Bags")
    blue_green = images[labels[:, bags] == 1][:, :, 40, 30].float().mean(0)
    assert blue_green[1] > blue_green[0] + 60  # the green block of the bag photos survived decoding


def test_a_csv_without_the_used_columns_is_a_clear_data_error(tmp_path):
    folder = tmp_path / "bad"
    (folder / "images").mkdir(parents=True)
    (folder / "styles.csv").write_text("id,colour\n1,red\n")
    with pytest.raises(DataError, match="gender, subCategory"):
        load_products(product_config(folder))


def test_without_a_product_folder_the_job_is_skipped_with_the_reason(tmp_path, product_dir):
    job = jobs.get("vae/product-cond")
    assert "photo_dir" in job.unavailable(job.make_config())
    assert "styles.csv" in job.unavailable(job.make_config({"photo_dir": str(tmp_path)}))
    assert job.unavailable(job.make_config({"photo_dir": str(product_dir)})) is None
    with pytest.raises(DataError, match="photo_dir"):
        load_products(job.make_config())


def test_product_photos_are_not_offered_to_the_greyscale_quality_metrics():
    # The report skips a task whose metric_samples is the base one, without loading its data.
    assert jobs.get("vae/product-cond").task.metric_samples is Task.metric_samples


def test_product_job_trains_and_draws_one_row_per_subcategory(product_dir, tmp_path):
    job = jobs.get("vae/product-cond")
    out = tmp_path / "out"
    fit(job.task, product_config(product_dir), out, job.name)
    for name in job.task.expected_files:
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["skipped"]["unreadable image"] == 1 and metrics["test_neg_elbo"] > 0
    grid = np.asarray(Image.open(out / "class_grid.png"))
    assert grid.shape[0] == 2 + len(SUBCATEGORIES) * (80 + 2)  # save_grid pads 2 pixels around each image
