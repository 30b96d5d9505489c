"""The quality metrics on inputs whose answer is known."""
import pytest
import torch

from fashion import metrics
from fashion.classify.networks import ConvClassifier, DenseClassifier
from fashion.metrics import Embedding


def gaussian(n=2000, dim=8, shift=0.0, scale=1.0, seed=0) -> Embedding:
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(n, dim, generator=g) * scale + shift
    return Embedding(features, torch.randn(n, 10, generator=g))


def confident(classes: torch.Tensor) -> Embedding:
    """Logits that put (almost) all probability on the given classes."""
    logits = torch.full((len(classes), 10), -20.0).scatter(1, classes[:, None], 20.0)
    return Embedding(torch.zeros(len(classes), 4), logits)


def test_fid_of_a_set_with_itself_is_zero():
    real = gaussian()
    assert metrics.fid(real, real) == pytest.approx(0.0, abs=1e-6)


def test_fid_matches_the_closed_form_for_shifted_gaussians():
    # Same covariance (I), means 0.5 apart in each of 8 dimensions: FID = ||mu1 - mu2||^2 = 8 * 0.25 = 2.
    real, fake = gaussian(n=20000, seed=0), gaussian(n=20000, shift=0.5, seed=1)
    assert metrics.fid(real, fake) == pytest.approx(2.0, rel=0.05)


def test_fid_grows_with_the_shift():
    real = gaussian(seed=0)
    same, near, far = (metrics.fid(real, gaussian(shift=s, seed=1)) for s in (0.0, 0.3, 1.0))
    assert same < near < far
    assert same < 0.1 < near


def test_kid_is_about_zero_for_the_same_distribution_and_grows_with_the_shift():
    real = gaussian(n=1000, seed=0)
    identical, _ = metrics.kid(real, real, subsets=10, subset_size=500)
    same, near, far = (metrics.kid(real, gaussian(n=1000, shift=s, seed=1), subsets=10, subset_size=500)[0]
                       for s in (0.0, 0.3, 1.0))
    assert abs(identical) < 0.02 and abs(same) < 0.02  # unbiased estimator: noise around 0
    assert 0.1 < near < far


def test_kid_is_reproducible_for_a_seed():
    real, fake = gaussian(seed=0), gaussian(shift=0.2, seed=1)
    assert metrics.kid(real, fake, subsets=5, subset_size=100, seed=3) == \
        metrics.kid(real, fake, subsets=5, subset_size=100, seed=3)


def test_prdc_of_a_set_with_itself_is_one():
    real = gaussian(n=500)
    values = metrics.prdc(real, real)
    assert values["precision"] == values["recall"] == values["coverage"] == 1.0
    assert values["density"] == pytest.approx(1.0, abs=0.1)


def test_prdc_of_a_far_away_set_is_zero():
    values = metrics.prdc(gaussian(n=500, seed=0), gaussian(n=500, shift=10.0, seed=1))
    assert values == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_precision_stays_high_but_recall_drops_for_a_collapsed_generator():
    # Samples concentrated near the middle of the real cloud: realistic (precision) but not diverse (recall).
    real, collapsed = gaussian(n=1000, seed=0), gaussian(n=1000, scale=0.2, seed=1)
    values = metrics.prdc(real, collapsed)
    assert values["precision"] > 0.9 and values["recall"] < 0.2


def test_inception_score_is_ten_for_confident_balanced_classes_and_one_for_a_single_class():
    balanced = confident(torch.arange(1000) % 10)
    single = confident(torch.full((1000,), 3))
    assert metrics.inception_score(balanced, splits=1)[0] == pytest.approx(10.0, rel=1e-3)
    assert metrics.inception_score(single, splits=5)[0] == pytest.approx(1.0, rel=1e-3)


def test_conditional_accuracy_counts_the_asked_class():
    asked = torch.arange(100) % 10
    seen = asked.clone()
    seen[:25] = (seen[:25] + 1) % 10
    assert metrics.conditional_accuracy(confident(seen), asked)["cond_acc"] == pytest.approx(0.75)


def test_a_permuted_code_is_matched_to_its_classes_one_to_one():
    code = torch.arange(200) % 10
    permutation = torch.tensor([3, 7, 0, 1, 9, 2, 8, 5, 4, 6])
    seen = permutation[code]
    seen[:20] = 0  # some mistakes
    result = metrics.conditional_accuracy(confident(seen), code, kind="code")
    assert result["code_to_class"] == permutation.tolist()
    assert result["cond_acc"] == pytest.approx(1 - 18 / 200)  # 2 of the 20 were class 0 already
    assert metrics.conditional_accuracy(confident(seen), code)["cond_acc"] < 0.2


def test_an_unknown_label_kind_is_refused():
    with pytest.raises(ValueError, match="label kind"):
        metrics.conditional_accuracy(confident(torch.zeros(4, dtype=torch.long)), torch.zeros(4), kind="style")


def test_embed_gives_the_classifiers_penultimate_features_and_logits():
    torch.manual_seed(0)
    for classifier, dim in ((ConvClassifier().eval(), 256), (DenseClassifier().eval(), 128)):
        images = torch.rand(7, 1, 28, 28)
        embedding = metrics.embed(classifier, images, batch=3)
        assert embedding.features.shape == (7, dim) and embedding.logits.shape == (7, 10)
        with torch.no_grad():
            assert torch.allclose(embedding.logits.float(), classifier(images), atol=1e-5)


def test_embed_refuses_uint8_and_wrong_shapes_with_the_fix():
    classifier = DenseClassifier().eval()
    with pytest.raises(ValueError, match="to_unit_range"):
        metrics.embed(classifier, torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        metrics.embed(classifier, torch.zeros(2, 3, 28, 28))


def test_compare_reports_every_metric_and_cond_acc_only_with_labels():
    real, fake = gaussian(n=100, seed=0), gaussian(n=100, shift=0.1, seed=1)
    unconditional = metrics.compare(real, fake)
    assert set(unconditional) == {"fid", "kid", "kid_std", "precision", "recall", "density", "coverage",
                                  "is", "is_std"}
    assert "cond_acc" in metrics.compare(real, fake, torch.arange(100) % 10)


def test_uniform_noise_is_seeded_and_in_the_unit_range():
    a, b = metrics.uniform_noise(5, seed=1), metrics.uniform_noise(5, seed=1)
    assert a.shape == (5, 1, 28, 28) and torch.equal(a, b)
    assert 0 <= a.min() and a.max() < 1
