"""The fast path (the config's ``fast``, on by default) trains the same model on faster kernels.

Fused optimiser kernels round differently from torch's per-tensor loop, and a GAN's dynamics grow any
rounding difference step by step (about 0.1% after 5 steps and a few % after 200 on the real data), so the
losses are compared over the first steps, where they must agree to float tolerance. Resume with the fast
path on stays bitwise: tests/test_training.py's resume tests run on the default config.
"""
from __future__ import annotations

import dataclasses
import platform
import subprocess
import sys
import textwrap

import pytest
import torch

import jobs
from helpers import tiny
from fashion.gans import REGISTRY
from fashion.task import Noise

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA; the CPU case runs on every machine"))]


def losses(task_factory, job: str, fast: bool, device: str, steps: int = 4) -> list[dict[str, float]]:
    torch.manual_seed(0)
    task = task_factory(job, cpu=device == "cpu", fast=fast)
    images, labels = task.data.train.images.to(task.device), task.data.train.labels.to(task.device)
    noise, bs = Noise(task.device, 0), task.config.batch_size
    return [{k: v.item() for k, v in task.train_step(images[i * bs:(i + 1) * bs], labels[i * bs:(i + 1) * bs],
                                                        noise).items()} for i in range(steps)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("job", ["gan/gan", "gan/wgan_gp", "gan/began", "classify/cnn", "colorize/dcgan"])
def test_the_fast_path_tracks_the_eager_losses_over_the_first_steps(job, device, task_factory):
    eager, fast = losses(task_factory, job, False, device), losses(task_factory, job, True, device)
    assert eager[0], "no loss terms"
    for step, (e, f) in enumerate(zip(eager, fast)):
        assert f == pytest.approx(e, rel=1e-4, abs=1e-6), f"step {step}"


@pytest.mark.parametrize("job, fused", [("gan/gan", True), ("classify/cnn", True), ("classify/dense", True),
                                        ("colorize/dcgan", True), ("vae/conv", True), ("vae/cond", False)])
def test_the_fast_path_steps_with_fused_kernels_where_torch_has_them(job, fused, task_factory):
    """Adam and SGD have fused kernels; RMSprop (vae/cond) has none and keeps torch's default."""
    for fast in (True, False):
        task = task_factory(job, fast=fast)
        assert {name: bool(opt.optimizer.defaults.get("fused")) for name, opt in task.opts.items()} == \
               {name: fast and fused for name in task.opts}, (job, fast)


def g_step(task_factory, job: str, fast: bool) -> tuple[dict, dict]:
    """One G update from freshly seeded nets: G's gradients, and what it left in D's (cleared before)."""
    torch.manual_seed(0)
    task = task_factory(job, fast=fast)
    labels = task.data.train.labels[:task.config.batch_size]
    noise = Noise(task.device, 0)
    latent = task.latent(labels, noise)
    for p in task.D.parameters():
        p.grad = None
    task.optimize("G", task.g_loss(task.G(latent), labels, latent, noise))
    grads = {net: {n: p.grad for n, p in task.unwrap(net).named_parameters()} for net in ("G", "D")}
    return grads["G"], grads["D"]


@pytest.mark.parametrize("gan", sorted(REGISTRY))
def test_with_the_fast_path_the_g_step_backpropagates_into_g_alone_with_bitwise_the_same_gradient(
        gan, task_factory):
    """The reference's G step also computes D's weight gradients and throws them away; the fast path skips them."""
    eager_g, eager_d = g_step(task_factory, f"gan/{gan}", fast=False)
    fast_g, fast_d = g_step(task_factory, f"gan/{gan}", fast=True)
    assert any(g is not None for g in eager_d.values()), "the full backward fills D's gradients"
    assert all(g is None for g in fast_d.values()), [n for n, g in fast_d.items() if g is not None]
    assert fast_g.keys() == eager_g.keys() and all(g is not None for g in fast_g.values())
    assert all(torch.equal(fast_g[n], eager_g[n]) for n in eager_g), \
        [n for n in eager_g if not torch.equal(fast_g[n], eager_g[n])]


def test_changing_the_fast_path_on_resume_is_accepted_and_recorded():
    from fashion.checkpoint import changed_settings

    saved = dataclasses.asdict(jobs.get("gan/gan").make_config())
    assert changed_settings(saved, {**saved, "fast": False}, epochs_done=3) == ({}, {"fast": (True, False)})


RSS_AFTER_FREE = textwrap.dedent("""
    import os, sys, torch
    from fashion.runtime import keep_freed_memory
    def rss(): return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    if sys.argv[1] == "keep": assert keep_freed_memory()
    x = torch.ones(5 << 20)  # 20 MiB, like a large layer's gradient
    held = rss(); del x
    print((held - rss()) >> 20)
""")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc's malloc; this C library is another")
def test_on_the_cpu_freed_training_buffers_stay_in_the_heap_instead_of_going_back_to_the_kernel():
    def returned_mib(mode):
        return int(subprocess.run([sys.executable, "-c", RSS_AFTER_FREE, mode], capture_output=True, text=True,
                                  check=True).stdout.split()[-1])
    assert returned_mib("default") >= 16  # glibc's default: a big block is unmapped on free, re-faulted next step
    assert returned_mib("keep") == 0


def test_a_cpu_job_with_the_fast_path_off_leaves_the_allocator_alone(monkeypatch):
    import fashion.runtime as runtime

    calls = []
    monkeypatch.setattr(runtime, "keep_freed_memory", lambda: calls.append(1) or True)
    runtime.prepare_process(tiny(jobs.get("gan/gan").make_config(), fast=False))
    assert calls == []
    runtime.prepare_process(tiny(jobs.get("gan/gan").make_config()))
    assert calls == [1]
