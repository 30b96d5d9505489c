"""Two CPU processes with gloo, started the way SLURM starts them (submitit tasks): ranks stay identical,
and two ranks train exactly what one process does with the same global batch."""
import hashlib
import importlib.util
import json
import subprocess
import sys

import cloudpickle
import pytest
import submitit
import torch

from helpers import ROOT, float64, tiny

# The worker processes cannot import tests/: ship these test helpers by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
cloudpickle.register_pickle_by_value(sys.modules["helpers"])


def _train_every_gan_on_two_ranks(data_dir: str, steps: int) -> dict:
    import jobs
    from fashion.data import epoch_batches, load_fashion
    from fashion.gans import REGISTRY
    from fashion.runtime import make_accelerator
    from fashion.task import Noise, prepare_task
    from jobs.runner import _export_torch_distributed

    assert _export_torch_distributed()
    fingerprints = {}
    for name, gan in sorted(REGISTRY.items()):
        config = tiny(jobs.get(f"gan/{name}").make_config(), data_dir=data_dir)
        acc = make_accelerator(config, gan.auto_precision)
        data = load_fashion(data_dir)
        task = prepare_task(gan(config, acc, data), acc)
        batches = epoch_batches(len(data.train), config.batch_size, 0, config.seed, acc.process_index,
                                acc.num_processes)
        noise = Noise.for_epoch("cpu", 0, 0, acc.process_index)  # ranks draw different noise, as in fit
        for index in batches[:steps]:
            task.train_step(data.train.images[index], data.train.labels[index], noise)
        weights = torch.cat([p.detach().flatten() for n in ("G", "D") for p in task.unwrap(n).parameters()])
        extra = {k: float(v) for k, v in task.state_dict().items()}
        fingerprints[name] = (hashlib.sha1(weights.numpy().tobytes()).hexdigest(), extra)
    return {"rank": acc.process_index, "world": acc.num_processes, "fingerprints": fingerprints}


@pytest.mark.slow
def test_two_gloo_ranks_keep_every_gan_identical(fake_fashion_dir, tmp_path, monkeypatch):
    executor = submitit.LocalExecutor(folder=tmp_path / "logs")
    executor.update_parameters(tasks_per_node=2, timeout_min=10)
    job = executor.submit(_train_every_gan_on_two_ranks, str(fake_fashion_dir), 5)
    rank0, rank1 = sorted(job.results(), key=lambda r: r["rank"])
    assert rank0["world"] == rank1["world"] == 2
    for name, fingerprint in rank0["fingerprints"].items():
        assert fingerprint == rank1["fingerprints"][name], f"{name}: ranks drifted apart"


class GlobalNoise:
    """Draws the global batch's noise and keeps this rank's rows, so any world size sees the same numbers."""

    def __init__(self, seed, rank, world):
        from fashion.task import Noise

        self.noise, self.rank, self.world = Noise("cpu", seed), rank, world

    def _mine(self, draw, n, *rest, **kw):
        return draw(n * self.world, *rest, **kw)[self.rank * n:(self.rank + 1) * n]

    def uniform(self, n, *rest, **kw):
        return self._mine(self.noise.uniform, n, *rest, **kw)

    def normal(self, n, *rest):
        return self._mine(self.noise.normal, n, *rest)

    def randint(self, high, n, *rest):
        return self._mine(lambda *shape: self.noise.randint(high, *shape), n, *rest)


def _train_on_global_batches(name: str, data_dir: str, steps: int) -> dict:
    """A few steps of one GAN on this process's share of batches of 16, in float64; returns the weights and
    task state.

    In float32 the rounding of a different summation order (2 ranks, or 1 process on 1 vs 2 threads) can
    flip a LeakyReLU whose input lies within 1e-7 of zero: that sample's gradient then changes by the slope
    ratio, and its net ends ~1e-2 of its travel away for reasons that have nothing to do with DDP (seen for
    infoGAN on an AVX2 machine). float64 leaves only the arithmetic being tested.
    """
    with float64():
        return _train_steps(name, data_dir, steps)


def _train_steps(name: str, data_dir: str, steps: int) -> dict:
    import jobs
    from fashion.data import epoch_batches, load_fashion
    from fashion.gans import REGISTRY
    from fashion.runtime import make_accelerator
    from fashion.task import prepare_task

    gan = REGISTRY[name]
    config = tiny(jobs.get(f"gan/{name}").make_config(), data_dir=data_dir)
    acc = make_accelerator(config, gan.auto_precision)
    data = load_fashion(data_dir)
    torch.manual_seed(config.seed)
    task = gan(config, acc, data)
    # Plain SGD with a small step: Adam's first steps are lr * g / |g| elementwise, which turns the rounding
    # noise of near-zero gradients into whole steps, and large steps make rounding noise grow chaotically
    # (at lr 0.05 one process on 1 vs 2 threads ended lsgan's weights farther apart than they had moved).
    task.opts = {n: torch.optim.SGD(net.parameters(), lr=1e-3) for n, net in task.nets.items()}
    initial = _weights(task)
    task = prepare_task(task, acc)
    noise = GlobalNoise(config.seed, acc.process_index, acc.num_processes)
    batches = epoch_batches(len(data.train), config.batch_size, 0, config.seed, acc.process_index,
                            acc.num_processes)
    for index in batches[:max(steps, task.config.n_critic + 1)]:
        task.train_step(data.train.images[index], data.train.labels[index], noise)
    return {"initial": initial, "weights": _weights(task), "state": {k: float(v) for k, v in task.state_dict().items()}}


def _weights(task):
    return {n: torch.cat([p.detach().flatten() for p in task.unwrap(n).parameters()]) for n in ("G", "D")}


def _compare_two_ranks_with_one_process(names, data_dir: str, reference_dir: str, steps: int) -> dict:
    from jobs.runner import _export_torch_distributed

    assert _export_torch_distributed()
    differences = {}
    for name in names:
        trained = _train_on_global_batches(name, data_dir, steps)
        if torch.distributed.get_rank() == 0:
            one = torch.load(f"{reference_dir}/{name}.pt")
            # Largest difference from the single process, relative to how far that process moved the net.
            differences[name] = {n: (trained["weights"][n] - one["weights"][n]).abs().max().item() / one["moved"][n]
                                 for n in ("G", "D")}
            differences[name]["state"] = (trained["state"], one["state"])
    return differences


@pytest.mark.slow
def test_two_ranks_train_every_gan_as_one_process_does_with_the_same_global_batch(fake_fashion_dir, tmp_path,
                                                                                    monkeypatch):
    # BatchNorm statistics, EBGAN's margin and pull-away term, DRAGAN's data std and BEGAN's M and k must
    # all be taken over the global batch (per rank, gan/gan's weights ended farther from the single
    # process's than that process had moved them).
    from fashion.gans import REGISTRY

    steps = 3
    for name in sorted(REGISTRY):
        one = _train_on_global_batches(name, str(fake_fashion_dir), steps)
        initial = one.pop("initial")
        moved = {n: (one["weights"][n] - initial[n]).abs().max().item() for n in ("G", "D")}
        torch.save({**one, "moved": moved}, tmp_path / f"{name}.pt")
    executor = submitit.LocalExecutor(folder=tmp_path / "logs")
    executor.update_parameters(tasks_per_node=2, timeout_min=10)
    job = executor.submit(_compare_two_ranks_with_one_process, sorted(REGISTRY), str(fake_fashion_dir),
                          str(tmp_path), steps)
    differences = job.results()[0]
    # In float64 every GAN agrees to ~1e-12 of its travel or better; per-rank BatchNorm put acgan's G 0.86 of it away.
    apart = {name: diff for name, diff in differences.items() if not all(diff[net] < 1e-6 for net in ("G", "D"))}
    assert not apart, f"relative distance from the single process: {differences}"
    for name, diff in differences.items():
        two, one = diff["state"]
        assert two == pytest.approx(one, rel=1e-5), f"{name}: task state {two} != {one}"


def _penalty_gradients(inputs: torch.Tensor, world: int) -> torch.Tensor:
    """D's gradient of a gradient penalty (a double backward) through its BatchNorm layers, in float64; with
    ``world`` > 1 on this rank's rows of ``inputs``, through the BatchNorm that DDP jobs train with on every
    device, and averaged over the ranks as DDP averages them."""
    import torch.distributed as dist

    from fashion.batchnorm import convert_global_batchnorm
    from fashion.gans.losses import gradient_penalty
    from fashion.gans.networks import Discriminator

    with float64():
        torch.manual_seed(0)
        D = Discriminator()
    if world > 1:
        from jobs.runner import _export_torch_distributed

        assert _export_torch_distributed()
        dist.init_process_group("gloo")
        D = convert_global_batchnorm(D)
        share = len(inputs) // world
        inputs = inputs[dist.get_rank() * share:(dist.get_rank() + 1) * share]
    (gradient_penalty(D, inputs) + D(inputs).mean()).backward()
    grads = torch.cat([p.grad.flatten() for p in D.parameters()])
    if world > 1:
        dist.all_reduce(grads)
        grads /= world
        dist.destroy_process_group()
    return grads


def test_a_gradient_penalty_differentiates_twice_through_global_batchnorm_on_two_ranks(tmp_path):
    # torch's SyncBatchNorm has no double backward; the BatchNorm jobs use under DDP, on GPUs too, must.
    inputs = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    one = _penalty_gradients(inputs, world=1)
    executor = submitit.LocalExecutor(folder=tmp_path / "logs")
    executor.update_parameters(tasks_per_node=2, timeout_min=5)
    two = executor.submit(_penalty_gradients, inputs, 2).results()
    assert torch.equal(two[0], two[1])
    assert (two[0] - one).abs().max() <= 1e-9 * one.abs().max()
    assert one.abs().max() > 0


def _measure_on_the_main_rank_only() -> dict | None:
    """Rank 0 of two measures a pair of feature sets, as a DDP job's main process measures its samples, while
    rank 1 waits at a barrier; a metric that gathered over ranks would wait for rank 1 until the timeout."""
    import datetime

    import torch.distributed as dist

    from fashion import metrics
    from jobs.runner import _export_torch_distributed

    assert _export_torch_distributed()
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    measured = None
    if dist.get_rank() == 0:
        g = torch.Generator().manual_seed(0)
        real, fake = (metrics.Embedding(torch.randn(300, 8, generator=g), torch.randn(300, 10, generator=g))
                      for _ in range(2))
        measured = {"fid": metrics.fid(real, fake), "kid": metrics.kid(real, fake, subsets=3, subset_size=100)[0],
                    "is": metrics.inception_score(fake)[0]}
    dist.barrier()
    dist.destroy_process_group()
    return measured


def test_the_main_rank_measures_alone_while_the_others_wait(tmp_path):
    # Jobs measure themselves on the main process only; torchmetrics would gather over the process group.
    executor = submitit.LocalExecutor(folder=tmp_path / "logs")
    executor.update_parameters(tasks_per_node=2, timeout_min=5)
    main, other = executor.submit(_measure_on_the_main_rank_only).results()
    assert other is None and main["fid"] > 0 and main["is"] >= 1


def test_every_batchnorm_of_a_net_becomes_global_and_keeps_its_parameters():
    from torch import nn

    from fashion.batchnorm import GlobalBatchNorm1d, GlobalBatchNorm2d, convert_global_batchnorm
    from fashion.gans.networks import Discriminator, Generator

    for net in (Generator(62), Discriminator()):
        before = dict(net.state_dict())
        converted = convert_global_batchnorm(net)
        kinds = {type(m) for m in converted.modules()}
        assert kinds & {GlobalBatchNorm1d, GlobalBatchNorm2d} and not kinds & {nn.BatchNorm1d, nn.BatchNorm2d,
                                                                                   nn.SyncBatchNorm}
        assert {k: v.data_ptr() for k, v in converted.state_dict().items()} == {
            k: v.data_ptr() for k, v in before.items()}


@pytest.mark.slow
def test_launcher_trains_one_job_on_two_processes(fake_fashion_dir, tmp_path):
    cmd = [sys.executable, "launch.py", "gan/wgan_gp", "--local", "--nproc", "2", "--epochs", "2",
           "--limit-batches", "3", "--batch-size", "16", "--run", "ddp", "--outputs", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    job_dir = tmp_path / "ddp" / "gan" / "wgan_gp"
    assert json.loads((job_dir / "config.json").read_text())["world_size"] == 2
    assert json.loads((job_dir / "status.json").read_text())["state"] == "completed"
    assert (job_dir / "samples.gif").is_file()
    # --local ends as a SLURM run does: the report, with the numbers the job measured itself
    report = tmp_path / "ddp" / "report"
    assert (report / "index.html").is_file() and "report:" in done.stdout
    summary = json.loads((report / "summary.json").read_text())
    row = next(r for r in summary["rows"] if r["job"] == "gan/wgan_gp")
    assert isinstance(row["fid"], float) and row["stamp"].startswith("fashion-eval")
    assert [r["job"] for r in summary["rows"] if r["state"] != "reference"] == ["gan/wgan_gp"]


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard not installed")
@pytest.mark.slow
def test_two_processes_with_a_tracker_complete_and_log_from_the_main_process(fake_fashion_dir, tmp_path):
    # The tracker's close on the main process once destroyed the process group before the last barrier.
    cmd = [sys.executable, "launch.py", "gan/gan", "--local", "--nproc", "2", "--epochs", "1", "--limit-batches", "3",
           "--batch-size", "16", "--log-with", "tensorboard", "--no-aggregate", "--run", "ddp",
           "--outputs", str(tmp_path)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    job_dir = tmp_path / "ddp" / "gan" / "gan"
    status = json.loads((job_dir / "status.json").read_text())
    assert status["state"] == "completed", status.get("error") or done.stdout + done.stderr
    assert len(list((job_dir / "trackers").rglob("events.out.tfevents.*"))) >= 1
