"""``pokedreamer eval planner``: how well a planner, with a folder of prompts, answers the stored
scenarios (``planner/scenarios/*.json``).

Per scenario and in total: whether the first answer was a valid plan (the Plan schema and the
game's facts, no repair turn), whether there was a valid plan after the repair turn, whether the
subgoal the agent would pursue first is an acceptable one, and each plan's latency and tokens.
The acceptable rate comes with a Wilson 95% interval, which stays honest at a score of 0 or n
and on a couple of dozen scenarios.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pokedreamer.errors import UserError
from pokedreamer.planner.answers import (
    EVAL_KINDS,
    Answer,
    Answerer,
    EvalKind,
    PlannerInfo,
    open_answerer,
)
from pokedreamer.planner.prompts import PromptLibrary
from pokedreamer.planner.scenario import Scenario, load_scenarios, select

if TYPE_CHECKING:
    from pokedreamer.config import Settings

Z_95 = 1.959964


@dataclass(frozen=True)
class ScenarioResult:
    """One scenario's score."""

    id: str
    game: str
    quick: bool
    valid_first: bool
    """The first answer was a valid plan (no repair turn needed)."""
    valid: bool
    """A valid plan came back, after the repair turn if one was needed."""
    acceptable: bool
    """The subgoal the agent would pursue first is one the scenario accepts."""
    subgoal: str | None
    """That subgoal, in words; None without a plan."""
    plan: dict[str, Any] | None
    error: str | None
    raw_response: str | None
    latency_s: float
    prompt_tokens: int
    completion_tokens: int


OnResult = Callable[[int, int, ScenarioResult], None]
"""Told each scenario's result as it comes: (index, total, result)."""


def score(scenario: Scenario, answer: Answer) -> ScenarioResult:
    plan = answer.plan
    subgoal = scenario.pursued(plan) if plan is not None else None
    return ScenarioResult(
        id=scenario.id,
        game=scenario.game,
        quick=scenario.quick,
        valid_first=answer.first_valid,
        valid=plan is not None,
        acceptable=plan is not None and scenario.accepts(plan),
        subgoal=subgoal.describe() if subgoal is not None else None,
        plan=plan.model_dump(mode="json") if plan is not None else None,
        error=answer.error,
        raw_response=answer.raw_response,
        latency_s=round(answer.latency_s, 6),
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
    )


def evaluate(
    scenarios: Sequence[Scenario],
    answerer: Answerer,
    on_result: OnResult | None = None,
) -> list[ScenarioResult]:
    """Asks ``answerer`` each scenario in turn; ``on_result(index, total, result)`` after each."""
    results = []
    for index, scenario in enumerate(scenarios):
        result = score(scenario, answerer.answer(scenario))
        results.append(result)
        if on_result is not None:
            on_result(index, len(scenarios), result)
    return results


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial rate: (low, high), (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At 0 or n successes the bound is exactly 0 or 1; rounding would leave 1e-16 either side.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def _nearest_rank(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _rate(count: int, n: int) -> float:
    return round(count / n, 4) if n else 0.0


def summarise(results: Sequence[ScenarioResult], about: dict[str, Any]) -> dict[str, Any]:
    """The report: ``about`` (planner, model, prompts, selection), the totals, then each
    scenario. Keys stay stable: scripts and docs/benchmarks.md read them."""
    n = len(results)
    accepted = sum(r.acceptable for r in results)
    low, high = wilson_interval(accepted, n)
    latencies = [r.latency_s for r in results]
    by_game: dict[str, dict[str, Any]] = {}
    for game in dict.fromkeys(r.game for r in results):
        mine = [r for r in results if r.game == game]
        by_game[game] = {
            "scenarios": len(mine),
            "accept_rate": _rate(sum(r.acceptable for r in mine), len(mine)),
        }
    return {
        **about,
        "scenarios": n,
        "accept_rate": _rate(accepted, n),
        "accept_ci95": [round(low, 4), round(high, 4)],
        "acceptable": accepted,
        "valid_first_rate": _rate(sum(r.valid_first for r in results), n),
        "valid_first": sum(r.valid_first for r in results),
        "valid_rate": _rate(sum(r.valid for r in results), n),
        "valid": sum(r.valid for r in results),
        "errors": sum(r.error is not None for r in results),
        "latency_s": {
            "median": round(statistics.median(latencies), 6) if n else None,
            "p95": round(_nearest_rank(latencies, 0.95), 6) if n else None,
            "mean": round(statistics.fmean(latencies), 6) if n else None,
        },
        "tokens_per_plan": {
            "prompt": round(statistics.fmean(r.prompt_tokens for r in results), 1) if n else 0,
            "completion": (
                round(statistics.fmean(r.completion_tokens for r in results), 1) if n else 0
            ),
        },
        "tokens": {
            "prompt": sum(r.prompt_tokens for r in results),
            "completion": sum(r.completion_tokens for r in results),
        },
        "by_game": by_game,
        "results": [asdict(r) for r in results],
    }


def evaluate_planner(
    settings: Settings,
    kind: EvalKind,
    prompts_dir: str | Path | None = None,
    which: str = "all",
    on_result: OnResult | None = None,
    scenario_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Scores the planner of ``kind`` with the templates of ``prompts_dir`` (default
    ``planner.prompts_dir``, else the built-in ones) on the scenarios ``which`` selects.
    UserError (one line) when the planner or the prompts cannot be used at all."""
    scenarios = select(load_scenarios(scenario_dir), which)
    folder = settings.planner.prompts_dir if prompts_dir is None else str(prompts_dir)
    library = PromptLibrary(folder)  # a missing or broken folder fails here, for any planner
    with open_answerer(settings, kind, library) as (answerer, info):
        results = evaluate(scenarios, answerer, on_result)
    return summarise(results, _about(info, folder, which))


def run_eval_planner(
    settings: Settings,
    kind: str | None,
    prompts_dir: Path | None,
    which: str,
    json_out: bool,
    out: Path | None,
    progress: bool,
) -> str:
    """``pokedreamer eval planner``: scores the planner of ``kind`` (default ``planner.kind``),
    writes ``report.json`` and ``report.md`` to ``out`` if given, and returns what to print: the
    JSON report or the table. ``progress`` prints a line per scenario on stderr."""
    kind = kind or settings.planner.kind
    if kind not in EVAL_KINDS:
        raise UserError(f"cannot score planner {kind!r}: choose --planner heuristic, llm or local")

    def show(index: int, total: int, result: ScenarioResult) -> None:
        print(progress_line(index, total, result), file=sys.stderr, flush=True)

    report = evaluate_planner(settings, kind, prompts_dir, which, show if progress else None)
    text = json.dumps(report, indent=1, ensure_ascii=False)
    table = markdown(report)
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "report.json").write_text(text + "\n", encoding="utf-8")
            (out / "report.md").write_text(table, encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write the report to {out}: {exc}") from None
        table += f"\nreport: {out / 'report.md'}\n"
    return text if json_out else table


def _about(info: PlannerInfo, folder: str, which: str) -> dict[str, Any]:
    if info.planner == "heuristic":
        prompts = None  # it reads none
    else:
        prompts = str(Path(folder).expanduser().resolve()) if folder else "built-in"
    return {
        "planner": info.planner,
        "model": info.model,
        "endpoint": info.endpoint,
        "prompts": prompts,
        "selection": which,
    }


def progress_line(index: int, total: int, result: ScenarioResult) -> str:
    """One scenario's outcome as a progress line."""
    if result.acceptable:
        verdict = "acceptable"
    elif result.valid:
        verdict = f"not acceptable ({result.subgoal})"
    else:
        verdict = f"no valid plan ({result.error or 'invalid'})"
    return f"[{index + 1}/{total}] {result.id}: {verdict}, {_seconds(result.latency_s)}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 0.001:
        return f"{value * 1e6:.0f} µs"
    return f"{value * 1000:.1f} ms" if value < 0.1 else f"{value:.2f} s"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def markdown(report: dict[str, Any]) -> str:
    """The report as a markdown table and a totals line."""
    n = report["scenarios"]
    lines = [
        f"# Planner evaluation: {report['planner']} on {n} scenarios ({report['selection']})",
        "",
        f"model: {report['model'] or '-'} · endpoint: {report['endpoint'] or '-'} · "
        f"prompts: {report['prompts'] or 'none (the heuristic planner reads none)'}",
        "",
        "| scenario | valid first | valid after repair | acceptable | pursued subgoal | latency "
        "| tokens (prompt + completion) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        pursued = r["subgoal"] or f"({r['error'] or 'no plan'})"
        lines.append(
            f"| {r['id']} | {_yes(r['valid_first'])} | {_yes(r['valid'])} | "
            f"{_yes(r['acceptable'])} | {pursued.replace('|', '/')} | "
            f"{_seconds(r['latency_s'])} | {r['prompt_tokens']} + {r['completion_tokens']} |"
        )
    low, high = report["accept_ci95"]
    latency = report["latency_s"]
    tokens = report["tokens_per_plan"]
    games = ", ".join(
        f"{game} {g['accept_rate']:.0%} of {g['scenarios']}"
        for game, g in report["by_game"].items()
    )
    lines += [
        "",
        f"**acceptable first subgoal: {report['acceptable']}/{n} ({report['accept_rate']:.0%}, "
        f"95% CI {low:.0%}–{high:.0%})** · {games}",
        "",
        f"valid on the first answer {report['valid_first']}/{n} · valid after repair "
        f"{report['valid']}/{n} · latency median {_seconds(latency['median'])}, p95 "
        f"{_seconds(latency['p95'])} · tokens per plan {tokens['prompt']:g} + "
        f"{tokens['completion']:g}",
    ]
    return "\n".join(lines) + "\n"
