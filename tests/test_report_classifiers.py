"""The report's classifier section: every classifier's accuracy and FGSM curve over its seeds, beside the SJSU
write-up's claims."""
import io
import json

from rich.console import Console

from fashion import artifacts
from fashion.report import aggregate, classifiers, stats

EPSILONS = [0.0, 0.05, 0.1]


def classify_metrics(test, garment, every, train=0.9) -> dict:
    """metrics.json of a finished classify job: its accuracies and FGSM curve at EPSILONS."""
    return {"job": "classify/x", "state": "completed", "epochs": 2, "test_accuracy": test, "train_accuracy": train,
            "fgsm": {"images": 100, "epsilon": EPSILONS, "accuracy_garment_pixels": garment,
                     "accuracy_all_pixels": every}}


def model_rows(*jobs) -> list[dict]:
    """Report rows as aggregate makes them, from (job name, metrics) pairs."""
    return [{"job": name, "family": name.split("/")[0], "state": "completed", "seed_numbers": stats.own_numbers(m)}
            for name, m in jobs]


def test_each_classifier_gets_its_curves_over_seeds_and_other_models_none():
    models = stats.model_summaries(model_rows(
        ("classify/dense", classify_metrics(0.86, [0.86, 0.70, 0.50], [0.86, 0.40, 0.20])),
        ("classify/dense.seed1", classify_metrics(0.88, [0.88, 0.74, 0.54], [0.88, 0.44, 0.22])),
        ("classify/cnn", classify_metrics(0.91, [0.91, 0.80, 0.60], [0.91, 0.50, 0.30])),
        ("vae/conv", {"test_neg_elbo": 250.0})))
    view = classifiers.view(models)
    dense, cnn = view["models"]
    assert (dense["model"], dense["seeds"], cnn["model"], cnn["seeds"]) == ("classify/dense", 2, "classify/cnn", 1)
    assert [p["epsilon"] for p in dense["fgsm"]["garment"]] == EPSILONS
    point = classifiers.at(dense, "garment", 0.05)
    assert abs(point["mean"] - 0.72) < 1e-9 and (point["min"], point["max"], point["n"]) == (0.70, 0.74, 2)
    assert abs(dense["test_accuracy"]["mean"] - 0.87) < 1e-9 and classifiers.at(cnn, "all", 0.1)["mean"] == 0.30
    assert classifiers.view(stats.model_summaries(model_rows(("vae/conv", {"test_neg_elbo": 250.0})))) is None


def test_the_table_puts_the_write_ups_claims_beside_the_measured_numbers():
    models = stats.model_summaries(model_rows(
        ("classify/dense", classify_metrics(0.875, [0.875, 0.75, 0.5], [0.875, 0.4, 0.2], train=0.905)),
        ("classify/cnn", {**classify_metrics(0.9, [], []), "fgsm": {"epsilon": [0.0], "accuracy_garment_pixels": [0.9],
                                                                    "accuracy_all_pixels": [0.9]}})))
    header, rows = classifiers.table(classifiers.view(models))
    assert header[6:8] == ["FGSM ε=0.05, garment pixels", "SJSU"]
    assert rows[0] == ["classify/dense", "1", "87.5%", "88%", "90.5%", "91%", "75.0%", "75%", "50.0%",
                       "noise visible", "40.0%"]
    assert rows[1][2:7] == ["90.0%", "90%", "90.0%", "91%", "not measured"]  # no point at 0.05: said, not guessed


def test_the_report_draws_the_classifiers_beside_the_write_up(tmp_path, monkeypatch):
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp_path / "no-data"))  # no reference rows: not needed here
    run = tmp_path / "run"
    for name, numbers in (("classify/dense", classify_metrics(0.88, [0.88, 0.74, 0.5], [0.88, 0.4, 0.2])),
                          ("classify/cnn", classify_metrics(0.91, [0.91, 0.8, 0.6], [0.91, 0.5, 0.3]))):
        artifacts.write_json(run / name / "metrics.json", {**numbers, "job": name})
        artifacts.write_status(run / name, "completed", epoch=2, epochs=2)
    printed = io.StringIO()
    assert aggregate(run, console=Console(file=printed, width=80)) == 0  # rows stay whole at any width
    report = run / "report"
    assert (report / classifiers.PLOT).stat().st_size > 10_000
    summary = json.loads((report / "summary.json").read_text())
    assert [m["model"] for m in summary["classifiers"]["models"]] == ["classify/cnn", "classify/dense"]
    page = (report / "index.html").read_text()
    assert 'id="classifiers"' in page and f'src="{classifiers.PLOT}"' in page and "<td>88.0%</td><td>88%</td>" in page
    row = "| classify/cnn | 1 | 91.0% | 90% | 90.0% | 91% | 80.0% | 75% | 60.0% | noise visible | 50.0% |"
    assert row in printed.getvalue().splitlines()
