"""``pokedreamer bench planner``: what an asynchronous LLM planner costs the acting loop.

The same loop — env steps with random buttons, the planner consulted after every step — runs
without a planner and with the LLM planner against a local OpenAI-compatible server that takes
``latency_s`` to answer (a call is always in flight: the service starts the next one as soon as
the last returns). Rounds alternate; the ratio is the median over neighbouring pairs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pokedreamer.config import Settings


def bench_planner(
    settings: Settings, steps: int = 6000, rounds: int = 5, latency_s: float = 2.0
) -> dict[str, Any]:
    from pokedreamer.env.bench import machine_description
    from pokedreamer.env.gym_env import PokemonRedEnv
    from pokedreamer.planner.fake_llm import FakeLLMServer, answer, slow
    from pokedreamer.planner.heuristic import HeuristicPlanner
    from pokedreamer.planner.llm import LLMPlanner
    from pokedreamer.planner.prompts import PromptLibrary
    from pokedreamer.planner.service import PlannerService

    env = PokemonRedEnv(settings.env.model_copy(update={"headless": True}), settings.rewards)
    game = env.rom.game
    heuristic = HeuristicPlanner(game)
    _, info = env.reset(seed=0)
    server = FakeLLMServer()
    server.default = slow(answer(heuristic.plan(info["state"]).model_dump()), latency_s)
    planner_settings = settings.planner.model_copy(
        update={
            "kind": "llm",
            "base_url": server.url,
            "model": "bench",
            "timeout_s": latency_s * 3,
            "max_calls_per_hour": 1_000_000,
            "min_interval_s": 0.0,
            "replan_every": 1,  # every step asks; the service keeps one call in flight
        }
    )
    actions = np.random.default_rng(0).integers(0, env.action_space.n, steps).tolist()
    calls: list[float] = []

    def play(service: PlannerService | None) -> float:
        _, info = env.reset(seed=0)
        start = time.perf_counter()
        for step, action in enumerate(actions, 1):
            _, _, _, _, info = env.step(action)
            if service is not None:
                service.observe(step, info["state"])
        return time.perf_counter() - start

    try:
        without, with_planner = [], []
        for _ in range(rounds):
            without.append(play(None))
            llm = LLMPlanner(planner_settings, heuristic.facts)
            service = PlannerService(
                planner_settings, heuristic.facts, heuristic, PromptLibrary(), llm,
                sink=lambda record: record.source == "llm" and calls.append(record.latency_s),
            )  # fmt: skip
            with_planner.append(play(service))
            service.close(wait=True)
            llm.close()
    finally:
        server.close()
        env.close()
    ratio = float(np.median([a / b for a, b in zip(without, with_planner, strict=True)]))
    return {
        "machine": machine_description(),
        "steps_per_round": steps,
        "rounds": rounds,
        "llm_latency_s": latency_s,
        "no_planner_steps_per_s": round(steps / float(np.median(without)), 1),
        "llm_planner_steps_per_s": round(steps / float(np.median(with_planner)), 1),
        "with_over_without": round(ratio, 4),
        "llm_plans_adopted": len(calls),
        "mean_llm_latency_s": round(float(np.mean(calls)), 3) if calls else None,
    }
