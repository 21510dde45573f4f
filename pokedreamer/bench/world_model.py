"""``pokedreamer bench imagine`` and ``bench train``: how much cheaper dreaming is than playing.

Both measure, in one run, the real env's steps/s (one process, random buttons on the configured
ROM) beside the world model's rate, and report the ratio:

- imagine: imagined transitions/s of the prior rolled forward under a small actor (policy + GRU +
  prior, Gumbel-max sampling), batch x horizon per rollout, no gradients;
- train: replayed transitions/s of world-model updates (batch x length per update, forward,
  backward and the optimiser step).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pokedreamer.bench.env import env_steps_per_s
from pokedreamer.bench.timing import machine_description, timed
from pokedreamer.config import EnvSettings, WorldModelSettings
from pokedreamer.world_model.dist import categorical_st_sample
from pokedreamer.world_model.trainer import WorldModelTrainer


def device_name(device: torch.device, bf16: bool) -> str:
    precision = "bf16 autocast" if bf16 else "fp32"
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, {precision}"
    return f"CPU, {torch.get_num_threads()} threads, {precision}"


@dataclass(frozen=True)
class WorldModelBench:
    kind: str
    preset: str
    device: str
    batch: int
    length: int
    world_model_per_s: float
    env_steps_per_s: float
    machine: str

    def as_dict(self) -> dict[str, Any]:
        unit = "imagined" if self.kind == "imagine" else "replayed"
        return {
            "machine": self.machine,
            "device": self.device,
            "preset": self.preset,
            "batch": self.batch,
            "horizon" if self.kind == "imagine" else "length": self.length,
            f"{unit}_transitions_per_s": round(self.world_model_per_s, 1),
            "env_steps_per_s": round(self.env_steps_per_s, 1),
            "ratio": round(self.world_model_per_s / self.env_steps_per_s, 2),
        }


def _model(
    settings: WorldModelSettings, num_actions: int
) -> tuple[WorldModelTrainer, torch.device]:
    trainer = WorldModelTrainer(settings, num_actions)
    return trainer, trainer.device


def _synchronize(device: torch.device) -> Callable[[], None] | None:
    """What makes the clock wait for ``device``'s queued work (nothing to wait for on a CPU)."""
    return torch.cuda.synchronize if device.type == "cuda" else None


def bench_imagine(
    settings: WorldModelSettings, env_settings: EnvSettings, batch: int = 1024, horizon: int = 15,
    rollouts: int = 10,
) -> WorldModelBench:  # fmt: skip
    num_actions = env_settings.num_actions
    trainer, device = _model(settings, num_actions)
    model = trainer.model.eval()
    p = model.preset
    # An actor of the size System 1 will use: two hidden layers on the model state.
    actor = nn.Sequential(
        nn.Linear(p.feat_size, p.hidden), nn.SiLU(), nn.Linear(p.hidden, p.hidden), nn.SiLU(),
        nn.Linear(p.hidden, num_actions),
    ).to(device)  # fmt: skip

    def policy(feat: torch.Tensor) -> torch.Tensor:
        return categorical_st_sample(actor(feat), 0.0, True)

    start = model.rssm.initial(batch)
    with torch.no_grad(), trainer._autocast or contextlib.nullcontext():
        model.rssm.imagine(start, policy, horizon)  # warm-up: kernels, caches

        def rollout() -> None:
            for _ in range(rollouts):
                model.rssm.imagine(start, policy, horizon)

        rate = batch * horizon * rollouts / timed(rollout, sync=_synchronize(device))
    return WorldModelBench(
        "imagine", settings.preset, device_name(device, trainer._autocast is not None), batch,
        horizon, rate,
        env_steps_per_s(env_settings), machine_description(),
    )  # fmt: skip


def bench_train(
    settings: WorldModelSettings, env_settings: EnvSettings, updates: int = 5
) -> WorldModelBench:
    num_actions = env_settings.num_actions
    trainer, device = _model(settings, num_actions)
    b, t = settings.batch_size, settings.batch_length
    rng = np.random.default_rng(0)
    # Shapes and dtypes are what the replay gives; the values do not change the cost.
    batch = {
        "frames": rng.integers(0, 4, (b, t, 144, 160), dtype=np.uint8),
        "states": rng.random((b, t, 30), dtype=np.float32),
        "actions": rng.integers(0, num_actions, (b, t)),
        "rewards": rng.normal(size=(b, t)).astype(np.float32),
        "is_first": np.zeros((b, t), dtype=bool),
        "is_terminal": np.zeros((b, t), dtype=bool),
    }
    trainer.update(batch)  # warm-up

    def train() -> None:
        for _ in range(updates):
            trainer.update(batch)

    rate = b * t * updates / timed(train, sync=_synchronize(device))
    return WorldModelBench(
        "train", settings.preset, device_name(device, trainer._autocast is not None), b, t, rate,
        env_steps_per_s(env_settings), machine_description(),
    )  # fmt: skip
