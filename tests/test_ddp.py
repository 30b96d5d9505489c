"""Two CPU processes with gloo, started the way SLURM starts them (submitit tasks): ranks stay identical."""
import hashlib
import json
import subprocess
import sys

import cloudpickle
import pytest
import submitit
import torch

from conftest import ROOT, tiny

# The worker processes cannot import tests/: ship these test helpers by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
cloudpickle.register_pickle_by_value(sys.modules["conftest"])


def _train_every_gan_on_two_ranks(data_dir: str, steps: int) -> dict:
    import jobs
    from fashion.data import epoch_batches, load_fashion
    from fashion.gans import REGISTRY
    from fashion.training import Noise, make_accelerator
    from jobs.runner import _export_torch_distributed

    assert _export_torch_distributed()
    fingerprints = {}
    for name, gan in sorted(REGISTRY.items()):
        config = tiny(jobs.get(f"gan/{name}").make_config(), data_dir=data_dir)
        acc = make_accelerator(config)
        data = load_fashion(data_dir)
        task = gan(config, acc, data)
        prepared = acc.prepare(task.nets["G"], task.nets["D"], task.opts["G"], task.opts["D"])
        task.nets["G"], task.nets["D"], task.opts["G"], task.opts["D"] = prepared
        batches = epoch_batches(len(data.train), config.batch_size, 0, config.seed, acc.process_index,
                                acc.num_processes)
        noise = Noise.for_epoch("cpu", 0, 0, acc.process_index)  # ranks draw different noise, as in fit
        for index in batches[:steps]:
            task.train_step(data.train.images[index], data.train.labels[index], noise)
        weights = torch.cat([p.detach().flatten() for n in ("G", "D") for p in task.unwrap(n).parameters()])
        extra = {k: float(v) for k, v in task.state_dict().items()}
        fingerprints[name] = (hashlib.sha1(weights.numpy().tobytes()).hexdigest(), extra)
    return {"rank": acc.process_index, "world": acc.num_processes, "fingerprints": fingerprints}


def test_two_gloo_ranks_keep_every_gan_identical(fake_fashion_dir, tmp_path, monkeypatch):
    executor = submitit.LocalExecutor(folder=tmp_path / "logs")
    executor.update_parameters(tasks_per_node=2, timeout_min=10)
    job = executor.submit(_train_every_gan_on_two_ranks, str(fake_fashion_dir), 5)
    rank0, rank1 = sorted(job.results(), key=lambda r: r["rank"])
    assert rank0["world"] == rank1["world"] == 2
    for name, fingerprint in rank0["fingerprints"].items():
        assert fingerprint == rank1["fingerprints"][name], f"{name}: ranks drifted apart"


def test_launcher_trains_one_job_on_two_processes(fake_fashion_dir, tmp_path):
    cmd = [sys.executable, "launch.py", "gan/wgan_gp", "--local", "--nproc", "2", "--epochs", "2",
           "--limit-batches", "3", "--batch-size", "16", "--run", "ddp", "--outputs", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    job_dir = tmp_path / "ddp" / "gan" / "wgan_gp"
    assert json.loads((job_dir / "config.json").read_text())["world_size"] == 2
    assert json.loads((job_dir / "status.json").read_text())["state"] == "completed"
    assert (job_dir / "samples.gif").is_file()
