"""``pokedreamer collect``: play with a behaviour policy and keep every step in a run's replay."""

from __future__ import annotations

import time

import numpy as np
from rich.progress import Progress

from pokedreamer.agent.collect_policy import GO_EXPLORE, CollectResult, check_policy
from pokedreamer.agent.go_explore import collect_go_explore
from pokedreamer.config import Settings
from pokedreamer.env.stops import between_steps
from pokedreamer.env.vector import close_quietly, make_envs
from pokedreamer.rundir import RunDir
from pokedreamer.world_model.replay import run_replay


def collect_with_checkpoint(
    settings: Settings, run: RunDir, steps: int, envs: int, policy: str
) -> CollectResult:
    """Plays a checkpoint's policy (with the configured planner, learning nothing) into the
    run's replay."""
    # Deferred as in check_policy: torch only for a checkpoint's policy.
    from pokedreamer.agent.checkpointer import resolve_checkpoint
    from pokedreamer.agent.loop import AgentLoop

    settings = settings.model_copy(
        update={"agent": settings.agent.model_copy(update={"envs": envs, "record": False})}
    )
    loop = AgentLoop(settings, run, checkpoint=resolve_checkpoint(policy), train=False, store=True)
    result = loop.run(steps)
    return CollectResult(result.steps, len(loop.finished), result.seconds, len(loop.replay))


def collect(
    settings: Settings, run: RunDir, steps: int, envs: int = 1, policy: str = "random"
) -> CollectResult:
    """Plays ``steps`` env steps in total over ``envs`` parallel envs into ``run``'s replay;
    ``policy`` is ``random``, ``go-explore`` (agent/go_explore.py: local envs only) or an agent
    checkpoint."""
    check_policy(policy)
    if policy == GO_EXPLORE:
        return collect_go_explore(settings, run, steps, envs)
    if policy != "random":
        return collect_with_checkpoint(settings, run, steps, envs, policy)
    wm = settings.world_model
    replay = run_replay(run.replay, wm, seed=settings.env.seed)
    agent = settings.agent
    venv = make_envs(
        settings.env, settings.rewards, envs, agent.workers, agent.envs_per_worker,
        agent.ray_address, autoreset=True,
    )  # fmt: skip
    rng = np.random.default_rng(settings.env.seed)
    n_actions = settings.env.num_actions
    start = time.perf_counter()
    episodes = 0
    try:
        obs, _ = venv.reset(seed=settings.env.seed)
        for i in range(envs):
            replay.add(i, obs["screen"][i], obs["state"][i], 0, 0.0, is_first=True)
        # Gymnasium's vector envs reset a finished env on the *next* step and ignore its action
        # there: that step's observation is a first one.
        just_ended = np.zeros(envs, dtype=bool)
        done = envs
        with Progress(transient=True) as progress, between_steps() as stop_asked:
            task = progress.add_task("collecting", total=steps, completed=done)
            while done < steps:
                stop_asked()
                actions = rng.integers(0, n_actions, envs)
                obs, reward, terminated, truncated, _ = venv.step(actions)
                for i in range(envs):
                    first = bool(just_ended[i])
                    replay.add(
                        i,
                        obs["screen"][i],
                        obs["state"][i],
                        0 if first else int(actions[i]),
                        0.0 if first else float(reward[i]),
                        is_first=first,
                        is_terminal=bool(terminated[i]) and not first,
                    )
                ended = np.logical_or(terminated, truncated) & ~just_ended
                episodes += int(ended.sum())
                just_ended = ended
                done += envs
                progress.update(task, completed=done)
    finally:
        replay.flush()
        close_quietly(venv)
    return CollectResult(done, episodes, time.perf_counter() - start, len(replay))
