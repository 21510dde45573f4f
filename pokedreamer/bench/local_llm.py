"""``bench local-llm``: how fast and how well the local model answers the planner's real prompt.

The local server is started as ``--planner local`` starts it, once per thread count. Each request
carries the built-in system and user prompts rendered against the fixture cartridge's start state,
and asks for JSON constrained by the Plan schema (``response_format`` ``json_object`` with a
``schema``: the form llama.cpp's server turns into a grammar). Every answer is judged twice: does
it parse as a Plan, and does that plan pass the game's facts (``planner.validate.check``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import openai
from pydantic import ValidationError

from pokedreamer.bench.env import headless_env
from pokedreamer.bench.timing import machine_description
from pokedreamer.config import LocalLLMSettings, Settings, load_settings
from pokedreamer.planner.heuristic import HeuristicPlanner
from pokedreamer.planner.local import LocalModelServer
from pokedreamer.planner.prompts import PromptLibrary, plan_schema, sample_fields
from pokedreamer.planner.subgoals import Plan
from pokedreamer.planner.validate import check


def planner_prompts(settings: Settings) -> tuple[str, str, Any]:
    """The system and user prompts for the cartridge's start state, and the game's facts."""
    env = headless_env(settings.env, settings.rewards)
    try:
        _, info = env.reset(seed=0)
        facts = HeuristicPlanner(env.rom.game).facts
    finally:
        env.close()
    library = PromptLibrary(settings.planner.prompts_dir)
    fields = sample_fields(info["state"])
    return library.render("system", **fields), library.render("user", **fields), facts


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank: with 10 values, p95 is the slowest."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ask(client: openai.OpenAI, model: str, system: str, user: str, schema: bool) -> dict[str, Any]:
    """One plan request; its latency, tokens and how its answer judges."""
    response_format: dict[str, Any] = {"type": "json_object"}
    if schema:
        response_format["schema"] = json.loads(plan_schema())
    started = time.perf_counter()
    reply = client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
        response_format=response_format,  # type: ignore[arg-type]
    )
    latency = time.perf_counter() - started
    content = reply.choices[0].message.content or ""
    usage = reply.usage
    return {
        "latency_s": latency,
        "prompt_tokens": usage.prompt_tokens if usage else 0,
        "completion_tokens": usage.completion_tokens if usage else 0,
        "answer": content,
    }


def judge(content: str, facts: Any) -> tuple[bool, bool]:
    """(a valid Plan, a plan that also passes the game's facts)."""
    try:
        plan = Plan.model_validate_json(content)
    except ValidationError:
        return False, False
    return True, not check(plan, facts)


def bench_local_llm(
    settings: Settings, requests: int = 10, threads: tuple[int, ...] = (1, 2)
) -> dict[str, Any]:
    system, user, facts = planner_prompts(settings)
    result: dict[str, Any] = {"machine": machine_description(), "requests": requests, "runs": []}
    for count in threads:
        local = settings.local_llm.model_copy(update={"threads": count})
        result["runs"].append(_run(local, system, user, facts, requests))
    return result


def _run(
    local: LocalLLMSettings, system: str, user: str, facts: Any, requests: int
) -> dict[str, Any]:
    started = time.perf_counter()
    with LocalModelServer.start(local) as server:
        start_s = time.perf_counter() - started
        client = openai.OpenAI(
            base_url=server.base_url, api_key="none", max_retries=0, timeout=local.timeout_s
        )
        answers = [ask(client, server.model, system, user, schema=True) for _ in range(requests)]
        plain = ask(client, server.model, system, user, schema=False)
        client.close()
    latencies = [a["latency_s"] for a in answers]
    judged = [judge(a["answer"], facts) for a in answers]
    return {
        "model": server.model,
        "threads": local.threads,
        "start_s": round(start_s, 2),
        "latency_median_s": round(statistics.median(latencies), 2),
        "latency_p95_s": round(percentile(latencies, 0.95), 2),
        "prompt_tokens": answers[0]["prompt_tokens"],
        "completion_tokens_median": statistics.median(a["completion_tokens"] for a in answers),
        "valid_plans": sum(valid for valid, _ in judged),
        "plans_passing_facts": sum(sound for _, sound in judged),
        "requests": requests,
        "first_answer": answers[0]["answer"],
        "without_schema": plain["answer"][:200],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--model-path", default="", help="a GGUF file (default: the packaged one)")
    args = parser.parse_args(argv)
    overrides = {"local_llm.model_path": args.model_path or None}
    settings = load_settings(None, overrides)
    threads = tuple(int(part) for part in args.threads.split(","))
    print(json.dumps(bench_local_llm(settings, args.requests, threads), indent=2))


if __name__ == "__main__":
    main()
