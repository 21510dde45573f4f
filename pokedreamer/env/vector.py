"""Several envs stepping in parallel, one emulator each, so play scales with cores.

``VectorEnv`` is what the driver steps: gymnasium's vector env API with autoreset left to the
caller. Two implementations answer it: local processes (gymnasium's AsyncVectorEnv, or in this
process for one env) and Ray actors (env/ray_workers.py), chosen by ``make_envs``.
"""

from __future__ import annotations

import multiprocessing
import signal
import warnings
from functools import partial
from typing import Any, Literal, Protocol

import gymnasium as gym
import numpy as np

from pokedreamer.config import EnvSettings, RewardSettings

StepResult = tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]


class VectorEnv(Protocol):
    """``num_envs`` envs stepped together. ``reset(seed=[...], options={"reset_mask": m})``
    resets the envs of ``m``, env i to ``seed[i]``; ``step_async``/``step_wait`` split a step so
    that the caller works while the envs step. Observations are ``screen`` and ``state`` stacked
    over the envs; ``info`` holds ``state``, ``rewards`` and (when an env entered a map) ``map``,
    each with a ``_`` mask of the envs that gave one. Envs whose worker died and was replaced are
    reported truncated, with ``info["_restarted"]`` set."""

    num_envs: int

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]: ...

    def step(self, actions: np.ndarray) -> StepResult: ...

    def step_async(self, actions: np.ndarray) -> None: ...

    def step_wait(self) -> StepResult: ...

    def close(self) -> None: ...


Workers = Literal["local", "ray"]


def check_workers(workers: Workers, ray_address: str = "") -> None:
    """Refuses, in one line, Ray workers without Ray or without a cluster that answers; joins
    (or starts) the cluster, so that a run checks this before it makes anything."""
    if workers == "ray":
        from pokedreamer.env.ray_workers import connect

        connect(ray_address or None)


def make_envs(
    env: EnvSettings,
    rewards: RewardSettings,
    num_envs: int,
    workers: Workers = "local",
    envs_per_worker: int = 4,
    ray_address: str = "",
    autoreset: bool = False,
) -> VectorEnv:
    """``num_envs`` envs on local processes (one process each when more than one env) or on Ray
    actors of ``envs_per_worker`` envs each, on the cluster at ``ray_address`` (empty: a local
    Ray started for this process). Resets are the caller's unless ``autoreset`` (gymnasium's
    next-step mode: an ended env is reset by the step after, its action ignored)."""
    if workers == "ray":
        # Ray is imported here only: a run with local workers never loads it.
        from pokedreamer.env.ray_workers import RayVectorEnv

        return RayVectorEnv(env, rewards, num_envs, envs_per_worker, ray_address or None, autoreset)
    return make_vector_env(env, rewards, num_envs, asynchronous=num_envs > 1, autoreset=autoreset)


def _make(env: EnvSettings, rewards: RewardSettings) -> gym.Env:
    from pokedreamer.env.gym_env import PokemonRedEnv  # imported in the worker process

    if multiprocessing.parent_process() is not None:
        # Ctrl-C reaches every process of the terminal's group: the parent alone stops, and
        # closes its workers when they have answered the step they were on.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return PokemonRedEnv(env, rewards)


def close_quietly(venv: VectorEnv) -> None:
    """Closes ``venv``; stopped mid-step by Ctrl-C it waits for that step without gymnasium's
    warning that it does so."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        venv.close()


def make_vector_env(
    env: EnvSettings,
    rewards: RewardSettings,
    num_envs: int,
    asynchronous: bool = True,
    autoreset: bool = True,
) -> gym.vector.VectorEnv:
    """``num_envs`` PokemonRedEnvs; asynchronous runs each in its own process.

    Each env is seeded from the episode seed passed to ``reset`` (Gymnasium gives env i seed + i),
    so a vector of envs plays different but reproducible games. ``autoreset=False`` leaves
    resets to the caller (``reset(seed=[...], options={"reset_mask": ended})``), which can then
    seed every episode and record its first frame.
    """
    fns = [partial(_make, env, rewards) for _ in range(num_envs)]
    mode = gym.vector.AutoresetMode.NEXT_STEP if autoreset else gym.vector.AutoresetMode.DISABLED
    if asynchronous:
        # "spawn" starts clean interpreters: forking a process that already holds an emulator or
        # torch's threads is a known source of hangs.
        return gym.vector.AsyncVectorEnv(fns, context="spawn", autoreset_mode=mode)
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)
