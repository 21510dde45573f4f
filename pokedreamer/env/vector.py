"""Several envs stepping in parallel processes, one emulator each, so play scales with cores."""

from __future__ import annotations

from functools import partial

import gymnasium as gym

from pokedreamer.config import EnvSettings, RewardSettings


def _make(env: EnvSettings, rewards: RewardSettings) -> gym.Env:
    from pokedreamer.env.gym_env import PokemonRedEnv  # imported in the worker process

    return PokemonRedEnv(env, rewards)


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
