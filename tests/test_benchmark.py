"""The throughput benchmark runs every mode it prints on the CPU (figures are not judged here: speed
belongs to the benchmark's own output, not to timed tests)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"
_spec = importlib.util.spec_from_file_location("throughput", SCRIPT)
throughput = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(throughput)


def test_every_mode_gives_a_figure_and_the_job_mode_runs_a_whole_job(fake_fashion_dir, capsys) -> None:
    assert throughput.main(["--gans", "gan,began", "--steps", "2", "--warmup", "1", "--job-steps", "2",
                            "--batch-size", "16", "--cpu", "--json"]) == 0
    out = capsys.readouterr().out
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [r["model"] for r in rows] == ["gan", "began"]
    for r in rows:
        for mode in ("baseline", "step", "loop", "job"):
            assert r[mode] > 0, (r["model"], mode)
        assert r["fast"] is None  # no CUDA fast path on the CPU
        assert r["job_outside_loop_s"] > 0
    assert "job / step: gan" in out and "loop / step: gan" in out


def test_job_mode_can_be_skipped(fake_fashion_dir, capsys) -> None:
    assert throughput.main(["--gans", "gan", "--steps", "1", "--warmup", "1", "--job-steps", "0",
                            "--batch-size", "16", "--cpu", "--json"]) == 0
    row = json.loads(next(line for line in capsys.readouterr().out.splitlines() if line.startswith("{")))
    assert row["job"] is None


def test_repeats_give_medians_of_interleaved_rounds_and_paired_ratios(fake_fashion_dir, capsys) -> None:
    assert throughput.main(["--gans", "gan", "--steps", "1", "--warmup", "1", "--job-steps", "0", "--repeats", "3",
                            "--batch-size", "16", "--cpu", "--json"]) == 0
    out = capsys.readouterr().out
    row = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    assert len(row["rounds"]) == 3
    for mode in ("baseline", "step", "loop"):
        assert row[mode] == sorted(r[mode] for r in row["rounds"])[1]
    ratios = sorted(r["loop"] / r["step"] for r in row["rounds"])
    assert f"loop / step per round, median [range]: gan {ratios[1]:.3f} [{ratios[0]:.3f}-{ratios[2]:.3f}]" in out
