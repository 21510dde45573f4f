"""``pokedreamer bench imagine`` and ``bench train``: how much cheaper dreaming is than playing.

Both measure, in one run, the real env's steps/s (one process, random buttons on the configured
ROM) beside the world model's rate, and report the ratio:

- imagine: imagined transitions/s of the prior rolled forward under a small actor (policy + GRU +
  prior, Gumbel-max sampling), batch x horizon per rollout, no gradients; and, in rounds
  alternating with it, of the real behaviour update (``Behavior.imagine_and_train``: the rollout
  under the actor, the reward, continue and state heads, the subgoal's shaping on the predicted
  states, the actor and critic losses, their backward passes and steps) under a subgoal that
  reads the state heads; ``behavior_ratio`` is the update's rate over the bare rollout's, the
  median of the rounds' ratios;
- train: replayed transitions/s of world-model updates (batch x length per update, forward,
  backward and the optimiser step), of the pixel model and the token model (world_model.
  observation "pixels" and "tiles") at the same preset, one update of each in turn;
  ``tiles_over_pixels`` is the median of the rounds' ratios. Under ``torchrun`` the processes
  train with DDP, each on its share of the batch, and the rates are the global batch's; rank 0
  measures the env alone.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pokedreamer.agent.behavior import Behavior, goal_tensor
from pokedreamer.bench.env import env_steps_per_s
from pokedreamer.bench.timing import alternate, machine_description, timed
from pokedreamer.config import AgentSettings, EnvSettings, WorldModelSettings
from pokedreamer.env.cartridge import ROM_PATH
from pokedreamer.env.rom import load_rom
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.subgoals import GoToTile
from pokedreamer.world_model.dist import categorical_st_sample
from pokedreamer.world_model.distributed import SINGLE, Ranks, barrier
from pokedreamer.world_model.heads import StateRanges
from pokedreamer.world_model.model import WorldModel
from pokedreamer.world_model.presets import PRESETS
from pokedreamer.world_model.trainer import WorldModelTrainer, autocast, resolve_device


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
    behavior_per_s: float | None = None
    """imagine: imagined transitions/s of the real behaviour update."""
    behavior_ratio: float | None = None
    """imagine: the behaviour update's rate over the bare rollout's (median of the rounds)."""
    imagine_only_ratio: float | None = None
    """imagine: the update's imagination alone (the rollout under the real actor, the reward,
    continue and state heads, the shaping; no losses, no backward pass) over the bare rollout:
    the most behavior_ratio could be if the actor's and critic's learning cost nothing."""
    tiles_per_s: float | None = None
    """train: replayed transitions/s of the token model (world_model_per_s is the pixel
    model's)."""
    tiles_over_pixels: float | None = None
    """train: the token model's rate over the pixel model's (median of the rounds)."""
    processes: int = 1
    """train: the learner's processes (torchrun's ranks) sharing each batch."""

    def as_dict(self) -> dict[str, Any]:
        unit = "imagined" if self.kind == "imagine" else "replayed"
        extra: dict[str, float] = {}
        if self.behavior_per_s is not None and self.behavior_ratio is not None:
            extra = {
                "behavior_transitions_per_s": round(self.behavior_per_s, 1),
                "behavior_ratio": round(self.behavior_ratio, 2),
            }
            if self.imagine_only_ratio is not None:
                extra["imagine_only_ratio"] = round(self.imagine_only_ratio, 2)
        if self.tiles_per_s is not None and self.tiles_over_pixels is not None:
            extra = {
                "tiles_transitions_per_s": round(self.tiles_per_s, 1),
                "tiles_over_pixels": round(self.tiles_over_pixels, 2),
            }
        return {
            "machine": self.machine,
            "device": self.device,
            "preset": self.preset,
            "batch": self.batch,
            **({"processes": self.processes} if self.kind == "train" else {}),
            "horizon" if self.kind == "imagine" else "length": self.length,
            f"{unit}_transitions_per_s": round(self.world_model_per_s, 1),
            **extra,
            "env_steps_per_s": round(self.env_steps_per_s, 1),
            "ratio": round(self.world_model_per_s / self.env_steps_per_s, 2),
        }


def _model(
    settings: WorldModelSettings, num_actions: int, ranks: Ranks = SINGLE
) -> tuple[WorldModelTrainer, torch.device]:
    trainer = WorldModelTrainer(settings, num_actions, ranks=ranks)
    return trainer, trainer.device


def _synchronize(device: torch.device) -> Callable[[], None] | None:
    """What makes the clock wait for ``device``'s queued work (nothing to wait for on a CPU)."""
    return torch.cuda.synchronize if device.type == "cuda" else None


def bench_imagine(
    settings: WorldModelSettings, env_settings: EnvSettings, batch: int = 1024, horizon: int = 15,
    rollouts: int = 10, agent: AgentSettings | None = None, rounds: int = 5,
) -> WorldModelBench:  # fmt: skip
    """The bare rollout and the real behaviour update, ``rounds`` times each in turn, on one
    world model with state heads sized to the configured ROM's game; then the env's steps/s.

    On a CPU with one torch thread all the work is this thread's, so its CPU time is the clock:
    other jobs on a shared machine then slow neither figure. Otherwise the wall clock."""
    num_actions = env_settings.num_actions
    facts = GameFacts.for_game(load_rom(env_settings.rom or ROM_PATH).game)
    device = resolve_device(settings.device)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(0)
    p = PRESETS[settings.preset]
    ranges = StateRanges.of_maps(facts.maps.values())
    model = WorldModel(p, num_actions, settings, ranges).to(device).eval()
    amp = autocast(device, settings.amp)
    # An actor of the size System 1 will use: two hidden layers on the model state.
    actor = nn.Sequential(
        nn.Linear(p.feat_size, p.hidden), nn.SiLU(), nn.Linear(p.hidden, p.hidden), nn.SiLU(),
        nn.Linear(p.hidden, num_actions),
    ).to(device)  # fmt: skip

    def policy(feat: torch.Tensor) -> torch.Tensor:
        return categorical_st_sample(actor(feat), 0.0, True)

    agent = (agent or AgentSettings()).model_copy(update={"horizon": horizon})
    behavior = Behavior(p, num_actions, agent).to(device)
    # go_to_tile reads the map, x and y heads: the update pays for the state heads.
    first_map = next(iter(facts.maps.values()))
    subgoal = GoToTile(map=first_map.name, x=first_map.width // 2, y=first_map.height // 2)
    goal = goal_tensor(subgoal, facts, batch, device)
    start = model.rssm.initial(batch)
    precision = amp or contextlib.nullcontext()
    sync = _synchronize(device)
    one_thread = device.type == "cpu" and torch.get_num_threads() == 1
    clock = time.thread_time if one_thread else time.perf_counter

    def timed_side(work: Callable[[], object]) -> Callable[[], float]:
        """One side of the comparison: ``rollouts`` runs of ``work`` in the model's precision,
        timed on ``clock``."""

        def side() -> float:
            def repeated() -> None:
                for _ in range(rollouts):
                    work()

            with precision:
                return timed(repeated, clock, sync)

        return side

    def rollout() -> object:
        with torch.no_grad():
            return model.rssm.imagine(start, policy, horizon)

    bare = timed_side(rollout)
    full = timed_side(lambda: behavior.imagine_and_train(model, start, goal, subgoal, facts))
    imagine_only = timed_side(lambda: behavior.imagine(model, start, goal, subgoal, facts))

    bare(), full(), imagine_only()  # warm-up: kernels, caches
    rounds_timed = alternate(rounds, bare, full)
    ceiling = alternate(rounds, bare, imagine_only)
    transitions = batch * horizon * rollouts * rounds
    return WorldModelBench(
        "imagine", settings.preset,
        device_name(device, amp is not None) + (", thread CPU time" if one_thread else ""), batch,
        horizon, transitions / sum(rounds_timed.first),
        env_steps_per_s(env_settings), machine_description(),
        behavior_per_s=transitions / sum(rounds_timed.second),
        behavior_ratio=rounds_timed.ratio(), imagine_only_ratio=ceiling.ratio(),
    )  # fmt: skip


def bench_train(
    settings: WorldModelSettings, env_settings: EnvSettings, updates: int = 5, ranks: Ranks = SINGLE
) -> WorldModelBench | None:
    """``updates`` rounds of one pixel-model update then one token-model update, at the
    configured preset and batch; then the env's steps/s. ``replayed_transitions_per_s`` is the
    pixel model's, ``tiles_transitions_per_s`` the token model's (tile_capacity tokens). The
    result on rank 0; None on the other ranks.

    On a CPU with one torch thread its CPU time is the clock, as in bench_imagine."""
    num_actions = env_settings.num_actions
    pixels, device = _model(
        settings.model_copy(update={"observation": "pixels"}), num_actions, ranks
    )
    tiles, _ = _model(settings.model_copy(update={"observation": "tiles"}), num_actions, ranks)
    share = ranks.share(settings.batch_size)  # this rank's rows of the global batch
    b, t = share.stop - share.start, settings.batch_length
    rng = np.random.default_rng(ranks.rank)
    # Shapes and dtypes are what the replay gives. The values do not change the pixel model's
    # cost; the token model's two-level softmax costs a little more the more groups of tokens a
    # batch holds, and random tokens over the whole capacity hold them all (the worst case).
    batch = {
        "states": rng.random((b, t, 30), dtype=np.float32),
        "actions": rng.integers(0, num_actions, (b, t)),
        "rewards": rng.normal(size=(b, t)).astype(np.float32),
        "is_first": np.zeros((b, t), dtype=bool),
        "is_terminal": np.zeros((b, t), dtype=bool),
    }
    frames = rng.integers(0, 4, (b, t, 144, 160), dtype=np.uint8)
    grids = rng.integers(0, settings.tile_capacity, (b, t, 18, 20), dtype=np.uint16)
    pixel_batch, tile_batch = {**batch, "frames": frames}, {**batch, "tiles": grids}
    pixels.update(pixel_batch), tiles.update(tile_batch)  # warm-up
    sync = _synchronize(device)
    # Ranks wait on each other's gradients: only a lone process's CPU time is its clock.
    one_thread = device.type == "cpu" and torch.get_num_threads() == 1 and ranks.world_size == 1
    clock = time.thread_time if one_thread else time.perf_counter

    def pixel_update() -> float:
        return timed(lambda: pixels.update(pixel_batch), clock, sync)

    def tile_update() -> float:
        return timed(lambda: tiles.update(tile_batch), clock, sync)

    rounds = alternate(updates, pixel_update, tile_update)
    env_rate = env_steps_per_s(env_settings) if ranks.is_main else 0.0
    barrier(ranks)
    if not ranks.is_main:
        return None
    amp = pixels._autocast is not None
    total = settings.batch_size * t * updates
    return WorldModelBench(
        "train", settings.preset,
        device_name(device, amp) + (", thread CPU time" if one_thread else ""),
        settings.batch_size, t, total / sum(rounds.first), env_rate, machine_description(),
        tiles_per_s=total / sum(rounds.second), tiles_over_pixels=rounds.ratio(),
        processes=ranks.world_size,
    )  # fmt: skip
