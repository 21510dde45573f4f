"""``pokedreamer bench tiles``: what the tile observation costs beside an env step, and how many
patterns a game shows.

One env plays random buttons from seed 0 and keeps every screen; each screen is then tokenized
alone, as the agent loop tokenizes a step's screens, and rendered back. Both are timed (the mean
per screen, first sightings included) in this
thread's CPU time (time the shared machine gives to others does not count), and so is the env's
step, so the ratio of the two is fair on a noisy machine. The vocabulary grows as a run's would:
its size after each share of the steps, and the patterns the screens of each kind of scene
(overworld, text box, battle) use, are what `world_model.tile_capacity` is chosen from. Every
rendered screen is checked against the one played: a bench that saw a wrong pixel fails.

Random buttons see little of a game; `--run RUN_DIR` tokenizes the screens of that run's recorded
episodes instead (a run of the shipped agent plays the whole quest: `pokedreamer run --headless
--no-train`), the env's step still timed on random buttons.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pokedreamer.agent.episodes.reader import EpisodeReader, list_episodes
from pokedreamer.bench.env import headless_env, random_buttons
from pokedreamer.bench.timing import machine_description
from pokedreamer.config import EnvSettings
from pokedreamer.env.state import GameState
from pokedreamer.env.tiles import GRID_HW, TileVocabulary
from pokedreamer.errors import UserError

CHECKPOINTS = (0.05, 0.25, 0.5, 1.0)
"""Shares of the steps after which the vocabulary's size is reported."""


@dataclass(frozen=True)
class TilesBenchResult:
    steps: int
    capacity: int
    env_step_us: float
    tokenize_us: float
    render_us: float
    growth: dict[int, int]  # steps -> tokens defined (UNKNOWN included)
    scenes: dict[str, tuple[int, int]]  # scene -> (screens, distinct patterns on them)
    unknown_cells: int
    maps: int
    source: str
    machine: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "env_steps": self.steps,
            "tile_capacity": self.capacity,
            "env_step_us": round(self.env_step_us, 1),
            "tokenize_us_per_frame": round(self.tokenize_us, 1),
            "tokenize_over_env_step": round(self.tokenize_us / self.env_step_us, 4),
            "render_us_per_frame": round(self.render_us, 1),
            "vocabulary_after_steps": {str(k): v for k, v in self.growth.items()},
            "unknown_cells": self.unknown_cells,
            "scenes": {
                name: {"screens": screens, "patterns": patterns}
                for name, (screens, patterns) in self.scenes.items()
            },
            "maps_visited": self.maps,
            "screens_from": self.source,
        }


def scene(state: GameState) -> str:
    if state.battle != "none":
        return "battle"
    return "text" if state.text_shown else "overworld"


def recorded(run: Path) -> tuple[list[np.ndarray], list[str], set[int]]:
    """The screens of ``run``'s recorded episodes, their scenes and the maps they show."""
    screens: list[np.ndarray] = []
    kinds: list[str] = []
    maps: set[int] = set()
    for info in list_episodes(run):
        reader = EpisodeReader(info.path)
        for frame, step in zip(reader.frames(), reader.iter_steps(), strict=False):
            screens.append(frame)
            kinds.append(scene(step.state))
            maps.add(step.state.map_id)
    if not screens:
        raise UserError(f"{run} has no recorded episode; record one with pokedreamer run")
    return screens, kinds, maps


def bench_tiles(
    env_settings: EnvSettings, steps: int, capacity: int, run: Path | None = None
) -> TilesBenchResult:
    """Plays ``steps`` random buttons, then tokenizes and renders every screen (or those of
    ``run``'s episodes) one at a time."""
    env = headless_env(env_settings)
    try:
        obs, info = env.reset(seed=0)
        screens, kinds, maps = [obs["screen"]], [scene(info["state"])], {info["state"].map_id}
        env_seconds = 0.0
        for action in random_buttons(env, steps):
            began = time.thread_time()
            obs, _, _, _, info = env.step(action)
            env_seconds += time.thread_time() - began
            screens.append(obs["screen"])
            kinds.append(scene(info["state"]))
            maps.add(info["state"].map_id)
    finally:
        env.close()
    source = "random buttons"
    if run is not None:
        screens, kinds, maps = recorded(run)
        source = f"the episodes of {run}"

    vocab = TileVocabulary(capacity)
    marks = {max(1, round(share * (len(screens) - 1))) for share in CHECKPOINTS}
    growth: dict[int, int] = {}
    tokenize, render = [], []
    tokens = np.empty((len(screens), *GRID_HW), np.uint16)
    for i, screen in enumerate(screens):
        began = time.thread_time()
        tokens[i] = vocab.tokenize(screen)
        tokenize.append(time.thread_time() - began)
        began = time.thread_time()
        drawn = vocab.render(tokens[i])
        render.append(time.thread_time() - began)
        if vocab.unknown_cells == 0 and not np.array_equal(drawn, screen):
            raise AssertionError(f"screen {i} rendered back differs from the screen played")
        if i in marks:
            growth[i] = len(vocab)

    by_kind: dict[str, tuple[int, int]] = {}
    kinds_array = np.array(kinds)
    for name in ("overworld", "text", "battle"):
        chosen = tokens[kinds_array == name]
        by_kind[name] = (len(chosen), len(np.unique(chosen)))
    return TilesBenchResult(
        steps=steps, capacity=capacity, env_step_us=env_seconds / steps * 1e6,
        tokenize_us=statistics.fmean(tokenize) * 1e6, render_us=statistics.fmean(render) * 1e6,
        growth=growth, scenes=by_kind, unknown_cells=vocab.unknown_cells, maps=len(maps),
        source=source, machine=machine_description(),
    )  # fmt: skip
