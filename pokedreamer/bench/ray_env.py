"""``pokedreamer bench env --workers ray``: envs on Ray actors against the local vector env, and
what one Ray call per step costs.

Both vector envs hold the same number of envs on the same cores (``workers`` actors of
``envs_per_worker`` envs against one process per env), start from the same seeds and play the
same random buttons, in alternating rounds of one run; the ratio is the median over pairs of
neighbouring rounds of wall time (the envs step in other processes, so this thread's CPU time
would miss them). Then one actor of k envs is stepped alone, its calls compiled (as the vector env
sends them) and plain (Ray's ordinary actor calls): a call's cost is its round trip less the time
the actor spent stepping, and its share of the step tells how many envs per worker keep it under
10%.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from pokedreamer.bench.timing import alternate, machine_description
from pokedreamer.config import EnvSettings, RewardSettings
from pokedreamer.env.ray_workers import RayVectorEnv, connect
from pokedreamer.env.vector import VectorEnv, make_envs
from pokedreamer.errors import UserError

CALL_SHARE_GOAL = 0.10
"""A call's share of a worker's step that envs_per_worker should keep it under."""


@dataclass(frozen=True)
class RayCall:
    """One Ray step call on an actor of ``envs`` envs: medians over the calls timed."""

    envs: int
    call_ms: float
    """The round trip less the actor's stepping: sending actions, returning observations."""
    step_ms: float
    """The actor stepping its envs."""

    @property
    def share(self) -> float:
        return self.call_ms / (self.call_ms + self.step_ms)


@dataclass(frozen=True)
class RayEnvBenchResult:
    workers: int
    envs_per_worker: int
    steps: int
    rounds: int
    local_steps_per_s: float
    ray_steps_per_s: float
    ratio: float
    ray_calls: str
    """How the Ray vector env sent its calls: "compiled" (a Ray Compiled Graph) or "plain"."""
    calls: list[RayCall]
    plain_calls: list[RayCall]
    machine: str

    def as_dict(self) -> dict[str, Any]:
        under = [c.envs for c in self.calls if c.share < CALL_SHARE_GOAL]

        def table(calls: list[RayCall]) -> dict[str, Any]:
            return {
                str(c.envs): {
                    "call_ms": round(c.call_ms, 3),
                    "step_ms": round(c.step_ms, 3),
                    "call_share": round(c.share, 4),
                }
                for c in calls
            }

        return {
            "machine": self.machine,
            "workers": self.workers,
            "envs_per_worker": self.envs_per_worker,
            "envs": self.workers * self.envs_per_worker,
            "env_steps_per_round": self.steps,
            "rounds": self.rounds,
            "local_steps_per_s": round(self.local_steps_per_s, 1),
            "ray_steps_per_s": round(self.ray_steps_per_s, 1),
            "ray_over_local_ratio": round(self.ratio, 3),
            "ray_calls": self.ray_calls,
            "ray_call": table(self.calls),
            "ray_plain_call": table(self.plain_calls),
            "envs_per_worker_for_call_under_10pct": min(under) if under else None,
        }


def _round(venv: VectorEnv, actions: np.ndarray) -> float:
    start = time.perf_counter()
    for step_actions in actions:
        venv.step(step_actions)
    return time.perf_counter() - start


def ray_vs_local(
    env: EnvSettings, workers: int, envs_per_worker: int, steps: int, rounds: int, address: str
) -> tuple[float, float, float, str]:
    """(local steps/s, Ray steps/s, Ray/local, how the Ray env sent its calls) over ``rounds``
    alternating rounds of ``steps`` env steps (all envs together)."""
    n = workers * envs_per_worker
    local = make_envs(env, RewardSettings(), n, "local")
    far = make_envs(env, RewardSettings(), n, "ray", envs_per_worker, address)
    rng = np.random.default_rng(0)
    buttons = env.num_actions
    per_round = max(1, steps // n)
    try:
        for venv in (local, far):
            venv.reset(seed=list(range(n)))
            _round(venv, np.zeros((10, n), np.int64))  # the first steps, untimed
        plays = [rng.integers(0, buttons, (per_round, n)) for _ in range(rounds)]
        turn = iter(range(2 * rounds))
        # Round i of each plays the same buttons, so both play the same games throughout.
        times = alternate(
            rounds,
            lambda: _round(local, plays[next(turn) // 2]),
            lambda: _round(far, plays[next(turn) // 2]),
        )
    finally:
        local.close()
        far.close()
    done = per_round * n
    assert isinstance(far, RayVectorEnv)
    return (
        done / statistics.median(times.first),
        done / statistics.median(times.second),
        times.ratio(),
        far.calls,
    )


def call_cost(env: EnvSettings, envs: int, calls: int, address: str, compiled: bool) -> RayCall:
    """One actor of ``envs`` envs stepped ``calls`` times through the vector env, its calls
    compiled or plain: what a step costs beyond the actor's stepping (sending the actions,
    returning and unpacking the screens, assembling the batch)."""
    venv = RayVectorEnv(env, RewardSettings(), envs, envs, address or None, compiled=compiled)
    rng = np.random.default_rng(0)
    overheads, stepping = [], []
    try:
        venv.reset(seed=list(range(envs)))
        for i in range(calls + 10):
            actions = rng.integers(0, env.num_actions, envs)
            start = time.perf_counter()
            venv.step(actions)
            total = time.perf_counter() - start
            if i >= 10:  # the first calls warm up
                overheads.append(total - venv.stepping_s[0])
                stepping.append(venv.stepping_s[0])
        kind = venv.calls
    finally:
        venv.close()
    if compiled and kind != "compiled":
        raise UserError(f"Ray could not compile the env workers' calls: {venv.plain_because}")
    return RayCall(envs, statistics.median(overheads) * 1e3, statistics.median(stepping) * 1e3)


def bench_ray_env(
    env_settings: EnvSettings,
    workers: int = 2,
    envs_per_worker: int = 4,
    steps: int = 400,
    rounds: int = 21,
    address: str = "",
    call_envs: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64),
    calls: int = 100,
) -> RayEnvBenchResult:
    # No window and no step limit: a timed round of any length is one episode per env.
    env = env_settings.model_copy(update={"headless": True, "max_steps": 0})
    connect(address or None)  # once, before the timing: a local Ray takes seconds to start
    local, far, ratio, kind = ray_vs_local(env, workers, envs_per_worker, steps, rounds, address)
    costs = [call_cost(env, k, calls, address, compiled=True) for k in call_envs]
    plain = [call_cost(env, k, calls, address, compiled=False) for k in call_envs]
    return RayEnvBenchResult(
        workers=workers,
        envs_per_worker=envs_per_worker,
        steps=max(1, steps // (workers * envs_per_worker)) * workers * envs_per_worker,
        rounds=rounds,
        local_steps_per_s=local,
        ray_steps_per_s=far,
        ratio=ratio,
        ray_calls=kind,
        calls=costs,
        plain_calls=plain,
        machine=machine_description(),
    )
