"""``pokedreamer bench planner``: what an asynchronous LLM planner costs the acting loop.

The same loop — env steps with random buttons, the planner consulted after every step — runs
without a planner and with the LLM planner against a local OpenAI-compatible server that takes
``latency_s`` to answer (a call is always in flight: the service starts the next one as soon as
the last returns). Rounds alternate; the ratio is the median over neighbouring pairs.
"""

from __future__ import annotations

import statistics
from typing import Any

from pokedreamer.bench.env import headless_env, play, random_buttons
from pokedreamer.bench.fake_llm import FakeLLMServer, answer, slow
from pokedreamer.bench.timing import alternate, machine_description
from pokedreamer.config import Settings
from pokedreamer.planner.heuristic import HeuristicPlanner
from pokedreamer.planner.llm import LLMPlanner
from pokedreamer.planner.prompts import PromptLibrary
from pokedreamer.planner.service import PlannerService


def bench_planner(
    settings: Settings, steps: int = 6000, rounds: int = 5, latency_s: float = 2.0
) -> dict[str, Any]:
    env = headless_env(settings.env, settings.rewards)
    heuristic = HeuristicPlanner(env.rom.game)
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
    actions = random_buttons(env, steps)
    calls: list[float] = []

    def with_planner() -> float:
        llm = LLMPlanner(planner_settings, heuristic.facts)
        service = PlannerService(
            planner_settings, heuristic.facts, heuristic, PromptLibrary(), llm,
            sink=lambda record: record.source == "llm" and calls.append(record.latency_s),
        )  # fmt: skip
        seconds = play(env, actions, after_step=service.observe)
        service.close(wait=True)
        llm.close()
        return seconds

    try:
        times = alternate(rounds, lambda: play(env, actions), with_planner)
    finally:
        server.close()
        env.close()
    return {
        "machine": machine_description(),
        "steps_per_round": steps,
        "rounds": rounds,
        "llm_latency_s": latency_s,
        "no_planner_steps_per_s": round(steps / statistics.median(times.first), 1),
        "llm_planner_steps_per_s": round(steps / statistics.median(times.second), 1),
        "with_over_without": round(times.ratio(), 4),
        "llm_plans_adopted": len(calls),
        "mean_llm_latency_s": round(statistics.fmean(calls), 3) if calls else None,
    }
