"""The driver: N emulators in one vector env, stepped together, each with its books.

The envs are a part (env/vector.py): local processes or Ray actors. With more than one env, or
on Ray, the envs step elsewhere, and the last step's writes (replay, episode files, events) are
done while they step. An env whose Ray worker died has its episode ended ("worker lost") and
begins a new one from the next seed. The driver times the envs: ``env``
(stepping and resetting, including ``hidden``, the writes done meanwhile, and ``wait``, blocked
on the envs).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from pokedreamer.agent.books import EnvBook, PlanCallback, StepCallback
from pokedreamer.agent.episodes import EpisodeRecorder
from pokedreamer.agent.planners import Planners
from pokedreamer.agent.subgoal_pool import SubgoalPool
from pokedreamer.agent.tally import Tally
from pokedreamer.config import Settings
from pokedreamer.env.rom import Rom
from pokedreamer.env.vector import make_envs
from pokedreamer.rundir import RunDir


class Transition(NamedTuple):
    """What the vector env returned for one step of every env."""

    obs: dict[str, Any]
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    info: dict[str, Any]


class Driver:
    def __init__(
        self,
        settings: Settings,
        rom: Rom,
        run: RunDir,
        planners: Planners,
        tally: Tally,
        *,
        on_step: Sequence[StepCallback],
        on_plan: Sequence[PlanCallback],
        on_lost: Callable[[list[int]], None] | None = None,
    ) -> None:
        """Starts the envs; ``on_step`` and ``on_plan`` take every step and plan written;
        ``on_lost`` the envs whose episodes a dead worker cut short."""
        self.n = n = settings.agent.envs
        self.tally = tally
        self.graph = planners.graph
        env_settings = settings.env.model_copy(update={"rom": str(rom.path)})
        agent = settings.agent
        self.venv = make_envs(
            env_settings, settings.rewards, n, agent.workers, agent.envs_per_worker,
            agent.ray_address,
        )  # fmt: skip
        self.on_lost = on_lost
        self.envs = []
        for i in range(n):
            book = EnvBook(
                i, EpisodeRecorder(run), planners, tally, rom, record=agent.record,
                end_at_badges=agent.end_at_badges, on_step=on_step, on_plan=on_plan,
            )  # fmt: skip
            self.envs.append(book)
        self.overlap = n > 1 or agent.workers == "ray"
        self.timings = {"env": 0.0, "hidden": 0.0, "wait": 0.0}

    def start(self) -> None:
        """Resets every env to the next seeds; each begins its first episode."""
        t0 = time.perf_counter()
        seeds = [self.tally.next_seed() for _ in range(self.n)]
        obs, info = self.venv.reset(seed=seeds)
        self.timings["env"] += time.perf_counter() - t0
        self.map_seen(info)
        for env in self.envs:
            i = env.index
            env.begin(obs["screen"][i], obs["state"][i], info["state"][i], seeds[i])

    def observations(self) -> tuple[np.ndarray, np.ndarray]:
        """The newest frames (n, 144, 160) and state vectors (n, V) of every env."""
        frames = np.stack([env.frame for env in self.envs])
        vectors = np.stack([env.vector for env in self.envs])
        return frames, vectors

    def goals(self, pool: SubgoalPool) -> torch.Tensor:
        """The actor's goal input (n, G): each env's active subgoal, encoded."""
        return torch.stack([pool.goal_row(env.subgoal) for env in self.envs])

    def pursued(self) -> list[Any]:
        """The subgoals the envs pursue now."""
        return [s for s in (env.subgoal for env in self.envs) if s is not None]

    def step(self, actions: torch.Tensor) -> Transition:
        """Steps every env; the writes of the step before are done meanwhile."""
        t0 = time.perf_counter()
        if self.overlap:
            self.venv.step_async(actions.numpy())
            t1 = time.perf_counter()
            self.flush()
            t2 = time.perf_counter()
            self.timings["hidden"] += t2 - t1
            out = self.venv.step_wait()
            self.timings["wait"] += time.perf_counter() - t2
        else:
            out = self.venv.step(actions.numpy())
        self.timings["env"] += time.perf_counter() - t0
        if not self.overlap:
            self.flush()
        return Transition(*out)

    def take(self, out: Transition, actions: torch.Tensor, human: bool) -> np.ndarray:
        """Hands each env its step (``human``: a person pressed env 0's button); which envs'
        episodes ended with it."""
        ended = np.zeros(self.n, dtype=bool)
        obs, info = out.obs, out.info
        self.map_seen(info)
        self.texts_read(info["state"])
        lost = info.get("_restarted")
        for env in self.envs:
            i = env.index
            if lost is not None and lost[i]:
                # The step never happened: the episode ends at its last step taken.
                env.end("worker lost")
                ended[i] = True
                continue
            ended[i] = env.take(
                obs["screen"][i], obs["state"][i], info["state"][i], int(actions[i]),
                float(out.reward[i]), _terms(info["rewards"], i), bool(out.terminated[i]),
                bool(out.truncated[i]), human and i == 0,
            )  # fmt: skip
        if lost is not None and lost.any() and self.on_lost is not None:
            self.on_lost(np.flatnonzero(lost).tolist())
        return ended

    def reset(self, ended: np.ndarray) -> None:
        """Resets the envs whose episodes ended to the next seeds; each begins a new one."""
        t0 = time.perf_counter()
        seeds = [self.tally.next_seed() if ended[i] else None for i in range(self.n)]
        obs, info = self.venv.reset(seed=seeds, options={"reset_mask": ended})
        self.timings["env"] += time.perf_counter() - t0
        self.map_seen(info)
        for env, seed in zip(self.envs, seeds, strict=True):
            if seed is not None:
                i = env.index
                env.begin(obs["screen"][i], obs["state"][i], info["state"][i], seed)

    def map_seen(self, info: dict[str, Any]) -> None:
        """Merges the maps the envs read as they entered them (info "map") and the ground
        their screens showed (info "ground") into the run's graph, before the planners and
        the policy look at the step."""
        seen = info.get("_map")
        if seen is not None:
            for node in info["map"][seen]:
                self.graph.add(node)
        shown = info.get("_ground")
        if shown is not None:
            for map_id, cells in info["ground"][shown]:
                self.graph.see(map_id, cells)

    def texts_read(self, states: Any) -> None:
        """Puts in the run's graph the text boxes the envs show outside a battle, with the
        cell each player stands on: imagination reads there that those words can be read."""
        for state in states:
            if state is not None and state.text and state.battle == "none":
                self.graph.read(state.map_id, state.x, state.y, " ".join(state.text))

    def flush(self) -> None:
        """Writes every env's newest step, if not yet written."""
        for env in self.envs:
            env.flush()

    def close(self) -> None:
        """Ends the episodes still running as cut short, then the envs."""
        for env in self.envs:
            env.flush()
            env.close()
        self.venv.close()


def _terms(rewards: dict[str, np.ndarray], i: int) -> dict[str, float]:
    return {name: float(values[i]) for name, values in rewards.items() if not name.startswith("_")}
