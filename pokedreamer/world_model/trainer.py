"""Training the world model on replayed sequences, with exact-resume checkpoints."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pokedreamer.config import WorldModelSettings
from pokedreamer.errors import UserError
from pokedreamer.world_model.checkpoint import (
    checkpoint_path,
    load_checkpoint,
    module_tensors,
    optimizer_tensors,
    restore_module,
    restore_optimizer,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from pokedreamer.world_model.distributed import SINGLE, Ranks, data_parallel, mean_over_ranks
from pokedreamer.world_model.heads import StateRanges
from pokedreamer.world_model.model import WorldModel
from pokedreamer.world_model.observation import META_KEYS, check_observation, observation_meta
from pokedreamer.world_model.presets import PRESETS
from pokedreamer.world_model.rssm import RSSMState

CHECKPOINT_NAME = "wm"

BURN_IN = 8
"""Steps a sequence cut from the middle of an episode is filtered before its posteriors are
imagined from (at most half the sequence). A fresh GRU keeps ~73% of its state a step, so after
8 steps the reset weighs under a tenth; by then the posterior has the context of the frames
before it, as when acting, rather than one frame's."""


def with_context(is_first: torch.Tensor, cut: torch.Tensor | None, burn_in: int) -> torch.Tensor:
    """Which posteriors (B, T) bool have the context of a posterior when acting: those of a
    sequence that began at an episode's start, those after an episode start inside the
    sequence, and those of a cut sequence from step ``min(burn_in, T // 2)`` on.

    is_first (B, T) bool as sampled (step 0 set); cut (B,) bool, the sequences that began
    mid-episode (Replay.sample's ``cut``; when None, those whose step 0 is not is_first)."""
    b, t = is_first.shape
    if cut is None:
        cut = ~is_first[:, 0]
    assert cut.shape == (b,) and cut.dtype == torch.bool, cut
    steps = torch.arange(t, device=is_first.device)
    # An episode start at step 1..t puts every later posterior on an episode's own footing.
    restarted = is_first[:, 1:].cumsum(1) > 0
    restarted = torch.cat([torch.zeros_like(restarted[:, :1]), restarted], dim=1)
    burnt = (steps >= min(burn_in, t // 2)).expand(b, t)
    return ~cut.unsqueeze(1) | restarted | burnt


def resolve_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise UserError("world_model.device is cuda but no CUDA device is available")
    return torch.device(setting)


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (Linux /proc/cpuinfo flags)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast(device: torch.device, amp: str) -> torch.autocast | None:
    """The bf16 autocast context for ``device`` under the ``amp`` setting, or None."""
    if amp == "off" or (amp == "auto" and device.type == "cpu" and not cpu_has_bf16()):
        return None
    return torch.autocast(device.type, dtype=torch.bfloat16)


class WorldModelTrainer:
    """One world model, its optimiser and its update count."""

    def __init__(
        self,
        settings: WorldModelSettings,
        num_actions: int,
        seed: int = 0,
        ranges: StateRanges | None = None,
        ranks: Ranks = SINGLE,
    ) -> None:
        """``ranks``: the learner's processes under torchrun; each update's batch is then this
        rank's share, and the gradients are averaged over the ranks (DDP)."""
        self.settings = settings
        self.ranks = ranks
        self.num_actions = num_actions
        self.device = resolve_device(settings.device)
        if settings.threads:
            torch.set_num_threads(settings.threads)
        torch.manual_seed(seed)
        self.model = WorldModel(PRESETS[settings.preset], num_actions, settings, ranges)
        self.model.to(self.device)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=settings.lr, eps=settings.adam_eps
        )
        self.updates = 0
        self.last_posts: RSSMState | None = None
        self.last_context: torch.Tensor | None = None
        cuda = self.device.type == "cuda"
        self._autocast = autocast(self.device, settings.amp)
        self._loss = (
            torch.compile(self.model.loss) if cuda and settings.compile else self.model.loss
        )
        if ranks.distributed:
            self._loss = data_parallel(self.model, self._loss)

    def tensors(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(v).to(self.device, non_blocking=True) for k, v in batch.items()}

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        """One gradient step on a replayed batch; returns the loss terms and diagnostics.
        The batch's posteriors (B, T, ...), detached and float32, stay in ``last_posts``: the
        behaviour imagines from those that ``last_context`` (B, T) bool marks (with_context)."""
        self.model.train()
        tensors = self.tensors(batch)
        with self._autocast or contextlib.nullcontext():
            loss, metrics, posts = self._loss(tensors)
        self.last_posts = posts.map(lambda x: x.float())
        self.last_context = with_context(tensors["is_first"], tensors.get("cut"), BURN_IN)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
        self.optimizer.step()
        self.updates += 1
        metrics = {**metrics, "loss": float(loss.detach())}
        # Every rank clips the same averaged gradients: its norm is already the global one.
        return {**mean_over_ranks(metrics, self.ranks), "grad_norm": float(grad_norm)}

    # --- checkpoints ------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be loaded into this trainer."""
        preset = PRESETS[self.settings.preset].meta()
        return {
            "kind": "world_model",
            "preset": preset,
            "num_actions": self.num_actions,
            **observation_meta(self.settings),
        }

    def save(self, directory: Path, extra: dict[str, Any] | None = None) -> Path:
        """Writes ``directory/wm-<updates>``; ``extra`` joins the JSON (e.g. the replay's RNG)."""
        path = checkpoint_path(directory, CHECKPOINT_NAME, self.updates)
        tensors = module_tensors("model", self.model)
        opt_tensors, opt_meta = optimizer_tensors("optimizer", self.optimizer)
        meta = {
            **self.identity(),
            "updates": self.updates,
            "optimizer": opt_meta,
            "rng": rng_state(),
            "settings": self.settings.model_dump(),
            **(extra or {}),
        }
        save_checkpoint(path, {**tensors, **opt_tensors}, meta)
        return path

    def load(self, path: Path) -> dict[str, Any]:
        """Restores model, optimiser, update count and RNG; returns the checkpoint's JSON."""
        # The observation is checked apart: a checkpoint without it is a pixel model's.
        expect = {k: v for k, v in self.identity().items() if k not in META_KEYS}
        tensors, meta = load_checkpoint(path, expect=expect)
        check_observation(meta, self.settings, path)
        restore_module("model", self.model, tensors, path)
        restore_optimizer("optimizer", self.optimizer, tensors, meta["optimizer"])
        restore_rng(meta["rng"])
        self.updates = int(meta["updates"])
        return meta
