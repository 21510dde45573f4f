"""``pokedreamer eval agent``: how often, and how fast, the agent reaches each quest stage.

Every variant plays the same seeded episodes (seeds env.seed .. env.seed + episodes - 1) with no
learning, each episode ending at the first badge or after ``max_steps``. The CLI starts them at
seed 10,000, well clear of the seeds training plays (env.seed upward, 0 by default) and those a
checkpoint is chosen on (100-119 in the README's recipe), so that a rate is measured on games
the agent never met; 30 episodes give it a 95% interval of useful width.

- ``agent``: the checkpoint's policy with the configured planner (heuristic by default), its
  own buttons only (agent.explore_after's random buttons are for collecting, not scored); an
  LLM planner (``llm`` or ``local``) is paced by default: the game waits for each of its plans,
  so a slow model is judged on its own plans rather than on the heuristic plans that would
  fill its wait;
- ``no-planner``: the same policy with no subgoal (System 1 alone);
- ``random``: uniformly random buttons (the baseline);
- ``demonstrator``: the scripted player of the planner's subgoals that ``train imitation``
  teaches the actor to copy (the ceiling of the imitation; not part of the default set);
- ``floor``: the demonstrator pacing the tall grass it has found when a battle is wanted,
  instead of roaming; with the whole map graph (``--map-graph``) and warm-up episodes before
  the scored ones (it keeps walls and grass across episodes), the fewest steps the quest takes
  given its random encounters (not part of the default set).

Each variant starts from the same map graph — an empty one unless a file is given — and grows
its own copy over its episodes; the report says which graph it started from.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from pokedreamer.agent.loop import AgentLoop
from pokedreamer.agent.planners import check_planner
from pokedreamer.agent.policy import SCRIPTED
from pokedreamer.agent.quest import STAGE_NAMES
from pokedreamer.config import LLM_KINDS, Settings
from pokedreamer.env.graph import MapGraph
from pokedreamer.errors import UserError
from pokedreamer.planner.evaluate import wilson_interval
from pokedreamer.rundir import RunDir

VARIANTS = ("agent", "no-planner", "random")
KNOWN_VARIANTS = (*VARIANTS, *SCRIPTED)


def evaluate_agent(
    settings: Settings,
    checkpoint: Path | None,
    out: Path,
    episodes: int = 30,
    max_steps: int = 3000,
    variants: tuple[str, ...] = VARIANTS,
    pace: str | None = None,
    map_graph: Path | None = None,
) -> dict[str, Any]:
    """Plays each variant's episodes and writes ``report.json`` and ``report.md`` to ``out``.
    ``pace``: the LLM planner's (planner.pace); None means "wait" for llm and local.
    ``map_graph``: the map graph to start from (a file or a run folder); None: an empty one."""
    unknown = [v for v in variants if v not in KNOWN_VARIANTS]
    if unknown:
        raise UserError(
            f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(KNOWN_VARIANTS)}"
        )
    check_planner(settings.planner, settings.local_llm)
    start_graph = MapGraph.load(map_graph) if map_graph is not None else MapGraph()
    kind = settings.planner.kind
    pace = pace or ("wait" if kind in LLM_KINDS else settings.planner.pace)
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint) if checkpoint else None,
        "episodes": episodes,
        "max_steps": max_steps,
        "seeds": [settings.env.seed, settings.env.seed + episodes - 1],
        "map_graph": {
            "start": str(map_graph) if map_graph is not None else "empty",
            "maps": len(start_graph),
        },
        "variants": {},
    }
    for variant in variants:
        planner = settings.planner.kind if variant in ("agent", *SCRIPTED) else "none"
        variant_settings = settings.model_copy(
            update={
                "env": settings.env.model_copy(update={"max_steps": max_steps}),
                "agent": settings.agent.model_copy(
                    # Random buttons where stuck collect data; scored is the actor alone.
                    update={
                        "end_at_badges": 1,
                        "train_ratio": 0.0,
                        "record": False,
                        "explore_after": 0,
                    },
                ),
                "planner": settings.planner.model_copy(update={"kind": planner, "pace": pace}),
            }
        )
        policy = variant if variant in ("random", *SCRIPTED) else "agent"
        run = RunDir.make(out / variant)
        graph = MapGraph(start_graph.nodes.values())
        loop = AgentLoop(
            variant_settings, run, checkpoint=checkpoint, train=False, store=False,
            policy=policy, map_graph=graph,
        )  # fmt: skip
        start = time.perf_counter()
        result = loop.run(None, episodes=episodes)
        first, last = settings.env.seed, settings.env.seed + episodes
        played = sorted(
            (e for e in loop.finished if first <= e["seed"] < last), key=lambda e: e["seed"]
        )
        report["variants"][variant] = summarise(played) | {
            "seconds": round(time.perf_counter() - start, 1),
            "steps_per_s": round(result.steps / max(result.seconds, 1e-9), 1),
            "planner": planner,
            "maps_seen": len(graph),
        }
        if planner in LLM_KINDS:
            report["variants"][variant] |= {"pace": pace, "llm": loop.planners.ledger.totals()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    (out / "report.md").write_text(markdown(report), encoding="utf-8")
    return report


def summarise(played: list[dict[str, Any]]) -> dict[str, Any]:
    """Success rate (the badge) and, per stage, the share of episodes reaching it with its
    Wilson 95% interval, and the median steps it took them."""
    n = len(played)
    stages = {}
    for name in STAGE_NAMES:
        steps = [e["stages"][name] for e in played if name in e["stages"]]
        low, high = wilson_interval(len(steps), n)
        stages[name] = {
            "reached": round(len(steps) / n, 3) if n else 0.0,
            "interval_95": [round(low, 3), round(high, 3)],
            "median_steps": statistics.median(steps) if steps else None,
        }
    return {
        "success_rate": stages["badge"]["reached"],
        "stages": stages,
        "episodes": [
            {"seed": e["seed"], "steps": e["steps"], "stages": e["stages"]} for e in played
        ],
    }


def _graph_start(report: dict[str, Any]) -> str:
    start = report.get("map_graph", {"start": "empty", "maps": 0})
    if start["start"] == "empty":
        return "empty (grown over the episodes)"
    return f"`{start['start']}` ({start['maps']} maps)"


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Agent evaluation: {report['episodes']} seeded episodes of up to "
        f"{report['max_steps']} steps",
        "",
        f"checkpoint: `{report['checkpoint']}`",
        "",
        f"map graph at the start: {_graph_start(report)}",
        "",
        "| variant | " + " | ".join(STAGE_NAMES) + " | steps/s |",
        "|---|" + "---|" * len(STAGE_NAMES) + "---|",
    ]
    for variant, result in report["variants"].items():
        cells = []
        for name in STAGE_NAMES:
            stage = result["stages"][name]
            median = stage["median_steps"]
            low, high = stage.get("interval_95", (None, None))
            interval = f" [{low:.0%}–{high:.0%}]" if low is not None else ""
            cells.append(
                f"{stage['reached']:.0%}{interval}"
                + (f" ({median:.0f})" if median is not None else "")
            )
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {result['steps_per_s']:.0f} |")
    lines += [
        "",
        "Each stage: share of episodes reaching it [Wilson 95% interval] (median steps to "
        "it); the badge column is the success rate.",
    ]
    return "\n".join(lines) + "\n"


def eval_metrics(report: dict[str, Any], prefix: str = "eval") -> dict[str, float]:
    """An evaluation's figures as metrics named ``<prefix>/<variant>/...``: each variant's
    badge rate, its 95% interval and the median steps to it (when any episode got it)."""
    metrics: dict[str, float] = {}
    for variant, result in report["variants"].items():
        badge = result["stages"]["badge"]
        low, high = badge["interval_95"]
        name = f"{prefix}/{variant}/badge"
        metrics |= {
            f"{name}_rate": badge["reached"],
            f"{name}_low_95": low,
            f"{name}_high_95": high,
        }
        if badge["median_steps"] is not None:
            metrics[f"{name}_median_steps"] = float(badge["median_steps"])
    return metrics


def evaluate_from(
    settings: Settings, checkpoint: Path, out: Path, seed: int, episodes: int, max_steps: int,
    variants: tuple[str, ...] = ("agent",),
) -> dict[str, Any]:  # fmt: skip
    """``eval agent`` of ``checkpoint`` on the seeds from ``seed`` into ``out``, replacing what
    an interrupted evaluation left there: its report."""
    if out.exists():
        shutil.rmtree(out)
    played = settings.model_copy(update={"env": settings.env.model_copy(update={"seed": seed})})
    return evaluate_agent(played, checkpoint, out, episodes, max_steps, variants)
