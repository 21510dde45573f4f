"""``bench local-llm``: how fast and how well the local model answers the planner's real prompt.

The local server is started as ``--planner local`` starts it, once per thread count. Each request
carries the built-in system and user prompts rendered against the fixture cartridge's start state,
with a new trigger line each time (as the planner service asks: the system prompt stays the same,
and the server reuses its evaluation; the user prompt changes from its first line on). It asks for
JSON constrained by the Plan schema (``response_format`` ``json_object`` with
``plan_grammar_schema()``: the form llama.cpp's server turns into a grammar); one last request
asks for plain JSON mode, without a schema, to show what that gives. Each answer is judged: a
valid Plan or not, and whether that plan passes the game's facts (``planner.validate.check``).

    python -m pokedreamer.bench.local_llm --requests 10 --threads 1,2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import openai
from pydantic import ValidationError

from pokedreamer.bench.env import headless_env
from pokedreamer.bench.timing import machine_description
from pokedreamer.config import LocalLLMSettings, Settings, load_settings
from pokedreamer.errors import error_line, validation_summary
from pokedreamer.planner.facts import GameFacts
from pokedreamer.planner.heuristic import HeuristicPlanner
from pokedreamer.planner.local import LocalModelServer, plan_grammar_schema
from pokedreamer.planner.prompts import PromptLibrary, sample_fields
from pokedreamer.planner.subgoals import Plan
from pokedreamer.planner.validate import check

TRIGGERS = ("start", "plan done", "new dialog", "map change", "stuck", "periodic", "timeout")
FIRST_LINE = "Why you are asked now: start"
"""The built-in user prompt's first line as sample_fields renders it."""


def planner_prompts(settings: Settings) -> tuple[str, str, GameFacts]:
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


def asked_because(user: str, i: int) -> str:
    """``user`` with the ``i``-th request's own first line."""
    line = f"Why you are asked now: {TRIGGERS[i % len(TRIGGERS)]} (request {i + 1})"
    return user.replace(FIRST_LINE, line, 1)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank: of 10 values, p95 is the slowest."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ask(client: openai.OpenAI, model: str, system: str, user: str, schema: bool) -> dict[str, Any]:
    """One plan request: its latency, tokens and answer."""
    response_format: dict[str, Any] = {"type": "json_object"}
    if schema:
        response_format["schema"] = plan_grammar_schema()
    started = time.perf_counter()
    try:
        reply = client.chat.completions.create(
            model=model,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            response_format=response_format,
        )
    except openai.OpenAIError as exc:
        # A timeout counts as a request that took the whole timeout and answered nothing.
        latency = time.perf_counter() - started
        failure = error_line(exc, named=True)
        print(f"request failed after {latency:.1f} s: {failure}", file=sys.stderr)
        return {"latency_s": latency, "prompt_tokens": 0, "completion_tokens": 0, "answer": ""}
    usage = reply.usage
    latency = time.perf_counter() - started
    print(f"answered in {latency:.1f} s", file=sys.stderr)
    return {
        "latency_s": latency,
        "prompt_tokens": usage.prompt_tokens if usage else 0,
        "completion_tokens": usage.completion_tokens if usage else 0,
        "answer": reply.choices[0].message.content or "",
    }


def judge(content: str, facts: GameFacts) -> str:
    """ "plan" for a Plan that passes the game's facts; "plan, raw control characters" for one
    that does once raw line breaks inside its strings are let through (llama-cpp-python's
    grammar allows them, strict JSON does not); else what is wrong with the answer."""
    if not content:
        return "invalid: no answer"
    note = ""
    try:
        plan = Plan.model_validate_json(content)
    except ValidationError as exc:
        try:
            plan = Plan.model_validate(json.loads(content, strict=False))
        except (ValueError, ValidationError):
            return "invalid: " + validation_summary(exc, most=3)
        note = ", raw control characters"
    issues = check(plan, facts)
    return f"rejected{note}: " + "; ".join(issues) if issues else f"plan{note}"


def bench_local_llm(
    settings: Settings, requests: int = 10, threads: tuple[int, ...] = (1, 2)
) -> dict[str, Any]:
    system, user, facts = planner_prompts(settings)
    runs = []
    for count in threads:
        local = settings.local_llm.model_copy(update={"threads": count})
        runs.append(_run(local, system, user, facts, requests))
    return {"machine": machine_description(), "requests": requests, "runs": runs}


def _run(
    local: LocalLLMSettings, system: str, user: str, facts: GameFacts, requests: int
) -> dict[str, Any]:
    started = time.perf_counter()
    with LocalModelServer.start(local) as server:
        start_s = time.perf_counter() - started
        client = openai.OpenAI(
            base_url=server.base_url, api_key="none", max_retries=0, timeout=local.timeout_s
        )
        answers = [
            ask(client, server.model, system, asked_because(user, i), schema=True)
            for i in range(requests)
        ]
        plain = ask(client, server.model, system, user, schema=False)
        client.close()
    latencies = [answer["latency_s"] for answer in answers]
    completion = [answer["completion_tokens"] for answer in answers]
    verdicts = [judge(answer["answer"], facts) for answer in answers]
    strict = [v for v in verdicts if not v.startswith("invalid") and "raw control" not in v]
    lenient = [v for v in verdicts if not v.startswith("invalid")]
    return {
        "model": server.model,
        "threads": local.threads,
        "start_s": round(start_s, 2),
        "first_latency_s": round(latencies[0], 2),
        "latency_median_s": round(statistics.median(latencies), 2),
        "latency_p95_s": round(percentile(latencies, 0.95), 2),
        "prompt_tokens": max(answer["prompt_tokens"] for answer in answers),
        "completion_tokens_median": statistics.median(completion),
        "completion_tokens_max": max(completion),
        "valid_plans": len(strict),
        "valid_plans_lenient_json": len(lenient),
        "plans_passing_facts": strict.count("plan"),
        "plans_passing_facts_lenient_json": sum(v.startswith("plan") for v in lenient),
        "requests": requests,
        "verdicts": verdicts,
        "first_answer": answers[0]["answer"],
        "without_schema": plain["answer"][:200],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The local model's speed and plans.")
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--model-path", default="", help="a GGUF file (default: the packaged one)")
    args = parser.parse_args(argv)
    settings = load_settings(None, {"local_llm.model_path": args.model_path or None})
    threads = tuple(int(part) for part in args.threads.split(","))
    print(json.dumps(bench_local_llm(settings, args.requests, threads), indent=2))


if __name__ == "__main__":
    main()
