"""The learner on several processes: torch's DistributedDataParallel when started by ``torchrun``.

``torchrun --nproc-per-node N -m pokedreamer -- train world-model ...`` starts N ranks. Each rank
computes the loss on its share of the global batch (``world_model.batch_size`` is the global
batch: rank r takes rows ``r * B/N .. (r+1) * B/N``), DDP averages the gradients, and every rank
takes the same optimiser step. Losses are means over the batch, so with equal shares the mean of
the rank means is the single-process mean, and one update equals the single-process update on
the same global batch. Rank 0 alone writes checkpoints, metrics and progress; a checkpoint holds
no trace of the world size, so it resumes under any.

The actor-critic (agent.behavior) averages its two optimisers' gradients with
``average_gradients`` and takes its return scale's percentiles over ``gather_rows``.

Started without ``torchrun`` nothing here runs: no process group, no DDP wrapper (``SINGLE``).
The backend is NCCL on CUDA, gloo on the CPU.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as tdist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from pokedreamer.errors import UserError

TIMEOUT = timedelta(minutes=30)
"""How long a collective waits for the other ranks before failing: rank 0 writing a checkpoint
of the largest preset is the longest any rank waits for another."""


@dataclass(frozen=True)
class Ranks:
    """This process's place among the learner's processes."""

    rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes checkpoints, metrics and progress bars."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def share(self, batch: int) -> slice:
        """The rows of a global batch of ``batch`` this rank trains on."""
        if batch % self.world_size:
            raise UserError(
                f"the global batch of {batch} does not split evenly over {self.world_size} "
                f"processes: set world_model.batch_size to a multiple of {self.world_size}"
            )
        size = batch // self.world_size
        return slice(self.rank * size, (self.rank + 1) * size)


SINGLE = Ranks(0, 1)
"""One process, no process group: how the learner runs without torchrun."""


def launched() -> bool:
    """Whether torchrun (torchelastic) started this process."""
    return tdist.is_available() and tdist.is_torchelastic_launched()


@contextlib.contextmanager
def process_group(device_setting: str) -> Iterator[Ranks]:
    """The learner's ranks for the duration of a command: under torchrun a process group (NCCL
    when ``device_setting`` leads to CUDA, else gloo) torn down on the way out; otherwise
    ``SINGLE`` and nothing started."""
    if not launched():
        yield SINGLE
        return
    # Without CUDA, "cuda" goes to gloo here and the trainer then says there is no CUDA device.
    cuda = device_setting in ("cuda", "auto") and torch.cuda.is_available()
    if cuda:
        # One GPU per rank: torch.device("cuda") then means this rank's own.
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise UserError(
                f"rank {local} has no GPU of its own ({torch.cuda.device_count()} visible): "
                "give torchrun --nproc-per-node at most the number of GPUs"
            )
        torch.cuda.set_device(local)
    tdist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    try:
        yield Ranks(tdist.get_rank(), tdist.get_world_size())
        # Every rank reaches the end before any tears its group down: gloo aborts a rank whose
        # peer closes the connections while it is still using them.
        tdist.barrier()
    finally:
        tdist.destroy_process_group()


class _Forward(nn.Module):
    """A module whose forward is ``loss``: DDP synchronises the gradients of what its own
    forward computed, and the world model's training entry point is a method, not forward."""

    def __init__(self, model: nn.Module, loss: Callable[..., Any]) -> None:
        super().__init__()
        self.model = model
        self._fn = loss

    def forward(self, *args: Any) -> Any:
        return self._fn(*args)


def data_parallel(model: nn.Module, loss: Callable[..., Any]) -> Callable[..., Any]:
    """``loss`` (a function of ``model``'s) whose backward averages the gradients of
    ``model``'s parameters over the ranks (DistributedDataParallel). Needs a process group."""
    device = next(model.parameters()).device
    ids = None
    if device.type == "cuda":
        ids = [device.index if device.index is not None else torch.cuda.current_device()]
    return DistributedDataParallel(_Forward(model, loss), device_ids=ids)


def mean_over_ranks(metrics: dict[str, float], ranks: Ranks) -> dict[str, float]:
    """Each figure averaged over the ranks (one all-reduce): with equal shares, a mean over the
    global batch. Unchanged in one process."""
    if not ranks.distributed or not metrics:
        return metrics
    device = _collective_device()
    values = torch.tensor(list(metrics.values()), dtype=torch.float64, device=device)
    tdist.all_reduce(values)
    values /= ranks.world_size
    return dict(zip(metrics, values.tolist(), strict=True))


def gather_rows(ranks: Ranks, *tensors: Tensor) -> list[Tensor]:
    """Each of ``tensors`` concatenated over the ranks along dim 0, in rank order (every rank's
    of one shape): the global batch's values, where a statistic needs all of them rather than
    a mean of the ranks' (a percentile). Unchanged in one process."""
    if not ranks.distributed:
        return list(tensors)
    out = []
    for tensor in tensors:
        parts = [torch.empty_like(tensor) for _ in range(ranks.world_size)]
        tdist.all_gather(parts, tensor.contiguous())
        out.append(torch.cat(parts, dim=0))
    return out


def average_gradients(params: list[nn.Parameter], ranks: Ranks) -> None:
    """The mean over ranks of each parameter's gradient, in place, in one flat all-reduce: for
    updates whose loss is not one module's forward (the actor-critic's two optimisers)."""
    if not ranks.distributed:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    tdist.all_reduce(flat)
    flat /= ranks.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def rank_seed(seed: int, updates: int, ranks: Ranks) -> None:
    """Gives ranks other than 0 latent noise of their own, from the run's seed, the update count
    and the rank: otherwise every rank would draw the same noise for different sequences. Rank
    0 keeps its stream, the one a checkpoint saves and a single process resumes."""
    if ranks.rank:
        torch.manual_seed(seed * 1_000_003 + updates * 1009 + ranks.rank)


def barrier(ranks: Ranks) -> None:
    """Waits for every rank (so none reads what rank 0 is still writing)."""
    if ranks.distributed:
        tdist.barrier()


def _collective_device() -> torch.device:
    if tdist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
