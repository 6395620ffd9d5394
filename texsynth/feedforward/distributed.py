"""Data-parallel training under ``torchrun`` (PyTorch DistributedDataParallel).

:func:`texsynth.feedforward.training.train_generator` (and so ``texsynth train`` /
``train-stylizer``) calls :func:`setup` first. Outside ``torchrun`` (no ``WORLD_SIZE`` above 1 in
the environment) it returns a context that does nothing. Under ``torchrun --nproc_per_node N``
every process:

* joins the process group from torchrun's environment (``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``): NCCL on CUDA, with device
  ``cuda:LOCAL_RANK``, Gloo on the CPU. A group the caller initialised is used as is;
* agrees on the seed (rank 0's when none is given) and so on the initial weights, the
  extractor's random filters and the noise stream;
* draws the *global* batch (``batch_size``) of noise and content crops from that same
  seeded stream and keeps its own slice (:meth:`DistributedContext.shard`), so the random
  streams stay identical across ranks and across world sizes, and sample ``n`` of a step
  is the same whatever the number of processes;
* trains the generator wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`,
  which averages the gradients; the losses are means over the batch, so the average of
  the ranks' gradients is the gradient of the global batch;
* replaces batch norm by :class:`GlobalBatchNorm`, whose training statistics are those of
  the global batch (what :class:`torch.nn.SyncBatchNorm` does, which refuses CPU tensors);
  so a distributed step computes what a single process computes with the same global
  batch, up to float rounding. Instance norm is per sample and needs nothing;
* reports the all-reduced mean loss; only rank 0 writes checkpoints and shows progress.
  Checkpoints hold the unwrapped generator's weights with plain batch-norm names, so a run
  can resume with any number of processes (all ranks read the checkpoint: use a path every
  node can see).

The process group is destroyed when training ends (and, should training fail before that,
at interpreter exit).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import UsageError
from ..runtime.device import resolve_device

__all__ = ["DistributedContext", "GlobalBatchNorm", "is_main_process", "revert_batch_norm",
           "setup", "torchrun_world"]


def torchrun_world() -> tuple[int, int, int] | None:
    """``(world_size, rank, local_rank)`` from torchrun's environment, or ``None`` when
    this process is not one of several (no ``WORLD_SIZE``, or ``WORLD_SIZE=1``)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise UsageError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (set by "
                         "torchrun)") from None
    if world <= 1:
        return None
    if not 0 <= rank < world:
        raise UsageError(f"RANK={rank} is outside WORLD_SIZE={world}")
    return world, rank, local


def is_main_process() -> bool:
    """True unless this is a rank other than 0 of a distributed run (for messages)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    world = torchrun_world()
    return world is None or world[1] == 0


class _GlobalNormalize(torch.autograd.Function):
    """``y = (x − mean) · invstd · w + b`` with global-batch statistics given as constants,
    and the backward of batch norm over the global batch: every rank all-reduces
    ``Σ dy`` and ``Σ dy·x̂`` of its slice, then
    ``dx = w · invstd · (dy − mean(dy) − x̂ · mean(dy·x̂))`` with means over the global
    batch (the formula of PyTorch's batch-norm backward, so float32 rounding behaves
    alike). ``dw``, ``db`` are the rank's own sums; DDP averages them like any gradient.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor | None,
                bias: torch.Tensor | None, mean: torch.Tensor, invstd: torch.Tensor,
                total: float) -> torch.Tensor:
        shape = (1, -1, *([1] * (x.dim() - 2)))
        xhat = (x - mean.view(shape)) * invstd.view(shape)
        ctx.save_for_backward(xhat, weight, invstd)
        ctx.total = total
        ctx.has_bias = bias is not None
        out = xhat
        if weight is not None:
            out = out * weight.view(shape)
        if bias is not None:
            out = out + bias.view(shape)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        xhat, weight, invstd = ctx.saved_tensors
        shape = (1, -1, *([1] * (grad.dim() - 2)))
        dims = [0, *range(2, grad.dim())]
        sum_dy = grad.sum(dim=dims)
        sum_dy_xhat = (grad * xhat).sum(dim=dims)
        sums = torch.cat([sum_dy, sum_dy_xhat])
        torch.distributed.all_reduce(sums)
        channels = sum_dy.numel()
        mean_dy = (sums[:channels] / ctx.total).view(shape)
        mean_dy_xhat = (sums[channels:] / ctx.total).view(shape)
        scale = invstd if weight is None else invstd * weight
        grad_x = (grad - mean_dy - xhat * mean_dy_xhat) * scale.view(shape)
        grad_w = sum_dy_xhat if weight is not None else None
        grad_b = sum_dy if ctx.has_bias else None
        return grad_x, grad_w, grad_b, None, None, None


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are those of the global batch of all ranks.

    Forward: each rank computes its slice's per-channel count, mean and sum of squared
    deviations; one all-reduce of a ``(world, 2C + 1)`` table (each rank fills its row)
    gathers them and every rank merges them exactly (Chan et al.), which avoids the
    cancellation of ``E[x²] − E[x]²``. Backward: one all-reduce of ``Σ dy`` and
    ``Σ dy·x̂`` (see :class:`_GlobalNormalize`), as :class:`torch.nn.SyncBatchNorm` does.
    Running statistics are updated like :class:`torch.nn.BatchNorm2d`'s (unbiased variance
    of the global batch), identically on every rank. In eval mode, or without a process
    group of more than one rank, it is plain batch norm. Works on any device and backend
    (SyncBatchNorm refuses CPU tensors).

    Its parameters and buffers have the names of the batch norm it replaces, so state
    dicts are interchangeable. Input ``(N, C, *spatial)`` with at least one spatial axis.
    """

    #: The class :func:`revert_batch_norm` restores.
    original: type[nn.modules.batchnorm._BatchNorm] = nn.BatchNorm2d

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 3:
            raise ValueError(f"expected (N, C, *spatial) input, got {input.dim()}D")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        dist = torch.distributed
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            return super().forward(input)
        self._check_input_dim(input)
        world, rank = dist.get_world_size(), dist.get_rank()
        channels = input.shape[1]
        dims = [0, *range(2, input.dim())]
        shape = (1, channels, *([1] * (input.dim() - 2)))
        with torch.no_grad():
            local = input.detach()
            mean = local.mean(dim=dims)
            squares = (local - mean.view(shape)).pow(2).sum(dim=dims)
            table = torch.zeros(world, 2 * channels + 1, dtype=input.dtype,
                                device=input.device)
            table[rank, 0] = local.numel() // channels
            table[rank, 1:1 + channels] = mean
            table[rank, 1 + channels:] = squares
            dist.all_reduce(table)
            counts, means = table[:, :1], table[:, 1:1 + channels]
            total = counts.sum()
            global_mean = (counts * means).sum(dim=0) / total
            global_squares = (table[:, 1 + channels:]
                              + counts * (means - global_mean).pow(2)).sum(dim=0)
            invstd = torch.rsqrt(global_squares / total + self.eps)
            if self.track_running_stats and self.running_mean is not None \
                    and self.running_var is not None and self.num_batches_tracked is not None:
                self.num_batches_tracked.add_(1)
                factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                          else self.momentum)
                unbiased = global_squares / (total - 1).clamp_min(1)
                self.running_mean.mul_(1 - factor).add_(global_mean, alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
        out: torch.Tensor = _GlobalNormalize.apply(
            input, self.weight if self.affine else None, self.bias if self.affine else None,
            global_mean, invstd, float(total))
        return out


def _swap_batch_norms(module: nn.Module, to_global: bool) -> int:
    """Replace every batch norm under ``module`` by :class:`GlobalBatchNorm` (or back),
    sharing parameters and buffers; the children keep their places (so parameter order,
    and with it optimiser state, is unchanged). Returns how many were replaced."""
    replaced = 0
    for name, child in module.named_children():
        new: nn.modules.batchnorm._BatchNorm | None = None
        if to_global and isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)) \
                and not isinstance(child, GlobalBatchNorm):
            new = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                  child.track_running_stats)
            new.original = type(child)
        elif not to_global and isinstance(child, GlobalBatchNorm):
            new = child.original(child.num_features, child.eps, child.momentum, child.affine,
                                 child.track_running_stats)
        if new is None:
            replaced += _swap_batch_norms(child, to_global)
            continue
        assert isinstance(child, nn.modules.batchnorm._BatchNorm)
        new.weight, new.bias = child.weight, child.bias
        new.running_mean, new.running_var = child.running_mean, child.running_var
        new.num_batches_tracked = child.num_batches_tracked
        new.train(child.training)
        setattr(module, name, new)
        replaced += 1
    return replaced


def revert_batch_norm(module: nn.Module) -> int:
    """Undo :meth:`DistributedContext.wrap`'s batch-norm replacement in place."""
    return _swap_batch_norms(module, to_global=False)


@dataclass
class DistributedContext:
    """Where this process stands in a (possibly one-process) training run.

    Attributes:
        world_size: number of processes (1 when not distributed).
        rank: this process's rank (0 when not distributed).
        local_rank: its rank on this node (picks the CUDA device).
        device: the device to train on (``None`` when not distributed: the caller's).
        owns_group: whether :func:`setup` created the process group (and so destroys it).
    """

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    device: torch.device | None = None
    owns_group: bool = False
    _closed: bool = field(default=False, repr=False)

    @property
    def enabled(self) -> bool:
        """True when training runs in more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes checkpoints and shows progress (rank 0)."""
        return self.rank == 0

    def shard(self, batch_size: int) -> slice:
        """This rank's slice of a global batch of ``batch_size`` samples.

        Raises:
            UsageError: ``batch_size`` is not a multiple of the number of processes.
        """
        if batch_size % self.world_size:
            raise UsageError(f"batch size {batch_size} cannot be split evenly over "
                             f"{self.world_size} processes; use a multiple of "
                             f"{self.world_size}")
        per_rank = batch_size // self.world_size
        return slice(self.rank * per_rank, (self.rank + 1) * per_rank)

    def agree_seed(self, seed: int | None) -> int | None:
        """``seed``, or when it is ``None`` in a distributed run, one seed drawn on rank 0
        and shared with every rank (so weights, filters and noise agree)."""
        if seed is not None or not self.enabled:
            return seed
        drawn = [int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF if self.is_main
                 else None]
        torch.distributed.broadcast_object_list(drawn, src=0)
        return int(drawn[0]) if drawn[0] is not None else None

    def wrap(self, generator: nn.Module) -> nn.Module:
        """The module to train: ``generator`` itself, or (distributed) the generator with
        :class:`GlobalBatchNorm` in place of batch norm, wrapped in
        :class:`~torch.nn.parallel.DistributedDataParallel`. Call after moving it to
        :attr:`device` and before building the optimiser (parameters are shared)."""
        if not self.enabled:
            return generator
        _swap_batch_norms(generator, to_global=True)
        device_ids = [self.device.index] if self.device is not None \
            and self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(generator, device_ids=device_ids)

    def unwrap(self, generator: nn.Module) -> nn.Module:
        """Give ``generator`` its plain batch-norm layers back (after training)."""
        if self.enabled:
            revert_batch_norm(generator)
        return generator

    def local(self, batch: Sequence[torch.Tensor] | torch.Tensor, batch_size: int) -> Any:
        """This rank's slice of a global batch (a tensor or a list of tensors)."""
        if not self.enabled:
            return batch
        part = self.shard(batch_size)
        if isinstance(batch, torch.Tensor):
            return batch[part]
        return [tensor[part] for tensor in batch]

    def mean(self, value: torch.Tensor) -> float:
        """The mean of a scalar over all ranks (the value itself when not distributed)."""
        if not self.enabled:
            return float(value.detach())
        total = value.detach().reshape(1).to(torch.float64).clone()
        torch.distributed.all_reduce(total)
        return float(total) / self.world_size

    def agree_signal(self, pending: int | None) -> int | None:
        """The signal any rank received during this step (the largest number), so that
        every rank stops after the same step; ``pending`` itself when not distributed."""
        if not self.enabled:
            return pending
        device = self.device if self.device is not None and self.device.type == "cuda" \
            else torch.device("cpu")
        flag = torch.tensor([pending or 0], dtype=torch.int64, device=device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return int(flag) or None

    def close(self) -> None:
        """Destroy the process group if :func:`setup` created it (idempotent)."""
        if self._closed:
            return
        self._closed = True
        dist = torch.distributed
        if self.owns_group and dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def setup(device: str | torch.device | None = "auto") -> DistributedContext:
    """Join the distributed run this process belongs to, if any.

    Args:
        device: the requested training device. Under torchrun a CUDA device becomes
            ``cuda:LOCAL_RANK`` (NCCL); ``cpu`` uses Gloo. ``auto`` picks CUDA when
            available.

    Returns:
        A :class:`DistributedContext`; ``enabled`` is False outside torchrun and with one
        process, and then nothing was initialised.
    """
    dist = torch.distributed
    initialised = dist.is_available() and dist.is_initialized()
    world = torchrun_world()
    if initialised:
        world_size, rank = dist.get_world_size(), dist.get_rank()
        local = world[2] if world is not None else rank
        if world_size <= 1:
            return DistributedContext()
    elif world is None:
        return DistributedContext()
    else:
        if not dist.is_available():
            raise UsageError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
        world_size, rank, local = world
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        if local >= torch.cuda.device_count():
            raise UsageError(f"LOCAL_RANK={local} but only {torch.cuda.device_count()} CUDA "
                             "device(s) are visible; start at most that many processes per "
                             "node")
        resolved = torch.device("cuda", local)
        torch.cuda.set_device(resolved)
        backend = "nccl"
    elif resolved.type == "cpu":
        backend = "gloo"
    else:
        raise UsageError(f"distributed training runs on CUDA or the CPU, not {resolved.type}")
    context = DistributedContext(world_size=world_size, rank=rank, local_rank=local,
                                 device=resolved, owns_group=not initialised)
    if not initialised:
        dist.init_process_group(backend=backend)
        atexit.register(context.close)
    return context
