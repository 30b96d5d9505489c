"""BatchNorm over the global batch under DDP, so a batch of 64 means the same on 1 GPU as on 8.

On CUDA this is torch's SyncBatchNorm. torch's SyncBatchNorm refuses CPU tensors, so CPU (gloo) runs,
and the tests that prove the equivalence, use :class:`GlobalBatchNorm`, which computes the same statistics
with differentiable all-reduces.
"""
from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

# Its suggested successor (torch.distributed._functional_collectives) is private; this one is public.
warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_", category=FutureWarning)


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics cover every rank's share (equal shares assumed)."""

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

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


def gather_batch(x: torch.Tensor) -> torch.Tensor:
    """Every rank's ``x`` concatenated in rank order, differentiable: its backward sums the ranks' gradients."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return x
    return torch.cat(dist_fn.all_gather(x.contiguous()))


def convert_global_batchnorm(module: nn.Module, cuda: bool) -> nn.Module:
    """Every BatchNorm in ``module`` normalised over the global batch; parameters are kept (same objects)."""
    if cuda:
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_global_batchnorm(child, cuda))
    return module
