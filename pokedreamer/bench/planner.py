"""``pokedreamer bench planner``: what an asynchronous LLM planner costs the acting loop.

The same loop — env steps with random buttons, the planner service consulted after every step —
runs without a planner, with the heuristic planner, and with the LLM planner against a local
OpenAI-compatible server that answers every request with a valid plan after the next of
``latencies_s`` (the local model's measured plan latencies, replayed in turn) — or, with
``local``, against the real local model's server, which computes on the same cores as the loop.
Both planners share the run's planner settings, except that the LLM may be called as often as the
triggers ask (``min_interval_s`` 0), so that a call is in flight whenever one has been asked for
since the last answer. The three run one after another in each round; a ratio is the median over
rounds of the round's two rates. The issue's figure is ``llm_over_heuristic``.

A round lasts as long as its steps take; the default is long enough (about 20 s here) for the
replayed median latency of the local model to be answered inside it a few times, and
``llm_plans_adopted`` counts the plans that were. The call still in flight when a round ends is
answered at once (the replaying server) or waited out (the real one), outside the timed part.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from pokedreamer.bench.env import headless_env, play, random_buttons
from pokedreamer.bench.fake_llm import FakeLLMServer, answer, replaying
from pokedreamer.bench.timing import Alternated, machine_description
from pokedreamer.config import LocalLLMSettings, PlannerSettings, Settings
from pokedreamer.errors import UserError
from pokedreamer.planner.heuristic import HeuristicPlanner
from pokedreamer.planner.llm import LLMPlanner
from pokedreamer.planner.prompts import PromptLibrary
from pokedreamer.planner.service import PlannerService

LOCAL_MODEL_LATENCY_S = 7.1
"""Median seconds the packaged local model (SmolLM2-135M-Instruct Q4_1, one thread) took for one
plan through llama-cpp-python's server here (``python -m pokedreamer.bench.local_llm``)."""


def parse_latencies(text: str) -> list[float]:
    """``--latency-s`` as seconds: one number, or several separated by commas to replay in turn."""
    try:
        latencies = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--latency-s {text!r}: give seconds, such as 40 or 38.5,41,44") from None
    if not latencies or any(not 0 <= value < float("inf") for value in latencies):
        raise UserError(f"--latency-s {text!r}: give one or more seconds, each 0 or more")
    return latencies


def bench_planner(
    settings: Settings,
    steps: int = 20_000,
    rounds: int = 3,
    latency_s: float | Sequence[float] = LOCAL_MODEL_LATENCY_S,
    local: LocalLLMSettings | None = None,
) -> dict[str, Any]:
    """Steps/s of ``rounds`` rounds of ``steps`` random buttons with no planner, the heuristic
    planner and the LLM planner answering after ``latency_s`` (one latency or several to replay),
    or the real local model's server started with ``local`` (its ``threads`` say how many cores
    it may take from the loop).

    A round plays for as long as its steps take: an LLM plan is adopted within it only when the
    round outlasts the planner's latency, and ``llm_plans_adopted`` says how many were.
    """
    latencies = [float(latency_s)] if isinstance(latency_s, int | float) else list(latency_s)
    if not latencies:
        raise ValueError("bench_planner needs at least one latency")
    env = headless_env(settings.env, settings.rewards)
    heuristic = HeuristicPlanner(env.rom.game)
    _, info = env.reset(seed=0)
    reply = answer(heuristic.plan(info["state"]).model_dump())
    shared = settings.planner.model_copy(update={"min_interval_s": 0.0})
    actions = random_buttons(env, steps)
    adopted: list[float] = []
    requests = 0

    def with_heuristic() -> float:
        planner_settings = shared.model_copy(update={"kind": "heuristic"})
        service = PlannerService(planner_settings, heuristic.facts, heuristic)
        seconds = play(env, actions, after_step=service.observe)
        service.close()
        return seconds

    def with_llm() -> float:
        nonlocal requests
        if real is not None:
            planner_settings = llm_settings(shared, real.base_url, local_timeout)
            planner_settings = planner_settings.model_copy(update={"model": real.model})
            # llama.cpp's server takes a schema in JSON mode, which its grammar enforces.
            llm = LLMPlanner(
                planner_settings, heuristic.facts, mode="schema", response_schema=grammar
            )
        else:
            server = FakeLLMServer()
            server.default = replaying(reply, latencies)
            planner_settings = llm_settings(shared, server.url, max(latencies))
            llm = LLMPlanner(planner_settings, heuristic.facts)
        calls_before = llm.totals.calls
        service = PlannerService(
            planner_settings, heuristic.facts, heuristic, PromptLibrary(), llm,
            sink=lambda record: record.source == "llm" and adopted.append(record.latency_s),
        )  # fmt: skip
        try:
            seconds = play(env, actions, after_step=service.observe)
        finally:
            if real is None:
                # The call in flight is answered at once, so that the round ends without
                # waiting out a replayed latency.
                server.release()
            # The real model's call in flight is waited out, so that it does not compute
            # during the next arm's timed steps.
            service.close(wait=True)
            requests += llm.totals.calls - calls_before
            llm.close()
            if real is None:
                server.close()
        return seconds

    real: Any = None
    grammar: dict[str, Any] | None = None
    local_timeout = local.timeout_s if local is not None else 0.0
    none_s: list[float] = []
    heuristic_s: list[float] = []
    llm_s: list[float] = []
    try:
        if local is not None:
            real, grammar = _start_local(local)
        for _ in range(rounds):
            none_s.append(play(env, actions))
            heuristic_s.append(with_heuristic())
            llm_s.append(with_llm())
    finally:
        env.close()
        if real is not None:
            real.close()
    return {
        "machine": machine_description(),
        "steps_per_round": steps,
        "rounds": rounds,
        "llm_server": (
            f"local model {real.model}, {local.threads} thread(s)"
            if real is not None and local is not None
            else "replaying"
        ),
        "llm_latency_s": None if real is not None else round(statistics.fmean(latencies), 3),
        "no_planner_steps_per_s": round(steps / statistics.median(none_s), 1),
        "llm_planner_steps_per_s": round(steps / statistics.median(llm_s), 1),
        "with_over_without": round(Alternated(none_s, llm_s).ratio(), 4),
        "llm_plans_adopted": len(adopted),
        "mean_llm_latency_s": round(statistics.fmean(adopted), 3) if adopted else None,
        "llm_latencies_s": None if real is not None else latencies,
        "heuristic_planner_steps_per_s": round(steps / statistics.median(heuristic_s), 1),
        "llm_over_heuristic": round(Alternated(heuristic_s, llm_s).ratio(), 4),
        "llm_requests": requests,
    }


def llm_settings(shared: PlannerSettings, url: str, longest_s: float) -> PlannerSettings:
    """The LLM arm's planner settings: the bench's server, a timeout no replayed latency reaches,
    and a call budget that never refuses, so that the server answers every request."""
    return shared.model_copy(
        update={
            "kind": "llm",
            "base_url": url,
            "model": "bench",
            "api_key": None,
            "timeout_s": 2 * longest_s + 1.0,
            "max_calls_per_hour": 1_000_000,
        }
    )


def _start_local(local: LocalLLMSettings) -> tuple[Any, dict[str, Any]]:
    """The real local model's server, and the schema its grammar takes; one line if missing."""
    try:
        # The local model is an optional extra, and its module starts a server process.
        from pokedreamer.planner.local import (
            LocalModelServer,
            local_model_available,
            plan_grammar_schema,
        )
    except ImportError:
        raise UserError("bench planner --local needs the local-llm extra: make local-llm") from None
    problem = local_model_available(local)
    if problem:
        raise UserError(problem)
    return LocalModelServer.start(local), plan_grammar_schema()
