"""BatchNorm over the global batch under DDP, so a batch of 64 means the same on 1 GPU as on 8.

One implementation on every device: :class:`GlobalBatchNorm1d`/:class:`GlobalBatchNorm2d` compute the
statistics with differentiable all-reduces (gloo on CPUs, NCCL on GPUs). torch's SyncBatchNorm is not used:
its backward cannot be differentiated again ("derivative for batch_norm_backward_elemt is not
implemented"), so a gradient penalty through a BatchNorm D, which differentiates D twice, would fail on
two or more GPUs; the all-reduce's backward is itself an all-reduce, so this module supports double
backward on any backend.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn



class _GlobalStatistics:
    """The forward of a torch BatchNorm class, with training statistics over every rank's share (equal
    shares assumed); outside DDP training it is that class's own forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [d for d in range(x.dim()) if d != 1]
        n = x.numel() // x.shape[1] * dist.get_world_size()
        shape = [1, -1] + [1] * (x.dim() - 2)
        # Two passes (mean, then squared deviations) as torch's own BatchNorm, for the same rounding.
        mean = dist_fn.all_reduce(x.sum(dims)) / n
        centred = x - mean.view(shape)
        var = dist_fn.all_reduce(centred.pow(2).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked.item()
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * n / max(n - 1, 1), m)
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


class GlobalBatchNorm1d(_GlobalStatistics, nn.BatchNorm1d):
    """``nn.BatchNorm1d`` whose training statistics cover the global batch."""


class GlobalBatchNorm2d(_GlobalStatistics, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training statistics cover the global batch."""


GLOBAL = {nn.BatchNorm1d: GlobalBatchNorm1d, nn.BatchNorm2d: GlobalBatchNorm2d}


def gather_batch(x: torch.Tensor) -> torch.Tensor:
    """Every rank's ``x`` concatenated in rank order, differentiable: its backward sums the ranks' gradients."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return x
    return torch.cat(dist_fn.all_gather(x.contiguous()))


def convert_global_batchnorm(module: nn.Module) -> nn.Module:
    """Every BatchNorm1d/2d in ``module`` normalised over the global batch; parameters and buffers are kept
    (the same objects), so state dicts and optimisers are unchanged."""
    kind = GLOBAL.get(type(module))
    if kind is not None:
        new = kind(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_global_batchnorm(child))
    return module
