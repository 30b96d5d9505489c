"""The throughput benchmark runs every mode it prints on the CPU, each in its own interpreter (figures are not
judged here: speed belongs to the benchmark's own output, not to timed tests)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"
_spec = importlib.util.spec_from_file_location("throughput", SCRIPT)
throughput = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(throughput)


@pytest.mark.slow
def test_every_mode_gives_a_figure_and_the_job_mode_runs_a_whole_job(fake_fashion_dir, capsys) -> None:
    assert throughput.main(["--gans", "gan,began", "--steps", "2", "--warmup", "1", "--job-steps", "2",
                            "--batch-size", "16", "--cpu", "--json"]) == 0
    out = capsys.readouterr().out
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["model"] for r in rows] == ["gan", "began"]
    for r in rows:
        for mode in ("baseline", "step", "fast", "compiled", "loop", "job"):
            assert r[mode] > 0, (r["model"], mode)
        assert r["job_outside_loop_s"] > 0
    assert "fast / step: gan" in out and "loop / fast: gan" in out and "job / fast: gan" in out
    assert "compiled / fast: gan" in out


@pytest.mark.slow
def test_job_mode_can_be_skipped(fake_fashion_dir, capsys) -> None:
    assert throughput.main(["--gans", "gan", "--steps", "1", "--warmup", "1", "--job-steps", "0",
                            "--batch-size", "16", "--cpu", "--json"]) == 0
    row = json.loads(next(line for line in capsys.readouterr().out.splitlines() if line.startswith("{")))
    assert row["job"] is None


def test_repeats_give_medians_of_interleaved_rounds_and_paired_ratios(fake_fashion_dir, capsys, monkeypatch) -> None:
    """The arithmetic of rounds, on made-up figures (the modes themselves run in the test above)."""
    figures = {"baseline": [100, 300, 200], "step": [110, 330, 220], "fast": [200, 400, 100],
               "compiled": [400, 400, 400], "loop": [190, 300, 99]}
    order = []

    def fake(argv, mode, name):
        order.append(mode)
        return {"value": figures[mode][sum(m == mode for m in order) - 1], "outside": None}

    monkeypatch.setattr(throughput, "in_own_process", fake)
    assert throughput.main(["--gans", "gan", "--job-steps", "0", "--repeats", "3", "--json"]) == 0
    out = capsys.readouterr().out
    row = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    assert order == ["baseline", "step", "fast", "compiled", "loop"] * 3  # interleaved, round by round
    assert [row[m] for m in ("baseline", "step", "fast", "compiled", "loop")] == [200, 220, 200, 400, 190]
    assert "loop / fast per round, median [range]: gan 0.950 [0.750-0.990]" in out
    assert "fast / step per round, median [range]: gan 1.212 [0.455-1.818]" in out
