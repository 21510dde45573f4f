"""The learning curve of ``train agent`` runs: each evaluation the recipe made (``--eval-every``
and the last), against the env steps and the wall clock of training before it.

    python docs/recipes/learning_curve.py runs/v15 runs/v16

Prints one markdown row per evaluation: the run, the imagination stage's env steps (and, where
validation chose an earlier checkpoint, the checkpoint evaluated), the env steps of the whole run
(collection included), the minutes of training (evaluations not counted), the badge rate with
its Wilson 95% interval, the median steps to the badge, and the checkpoint's badges on the
validation seeds. It reads the run's metrics.jsonl (the recipe's ``eval`` lines) and recipe.json
(the collection's size, the episodes an evaluation played, the validations), nothing else.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(run: Path) -> list[str]:
    recipe = json.loads((run / "recipe.json").read_text(encoding="utf-8"))
    stages = recipe["stages"]
    collected = int(stages.get("collect", {}).get("steps", 0))
    episodes = int(stages.get("eval", {}).get("asked", {}).get("episodes", 30))
    validations = stages.get("imagination", {}).get("validations", {})
    out: list[str] = []
    for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("kind") != "eval" or "eval/agent/badge_rate" not in record:
            continue  # a world-model or agent line, or an evaluation without the agent variant
        steps = int(record["step"])
        rate = float(record["eval/agent/badge_rate"])
        low = float(record["eval/agent/badge_low_95"])
        high = float(record["eval/agent/badge_high_95"])
        median = record.get("eval/agent/badge_median_steps")
        played = int(record.get("checkpoint_step", steps))
        where = f"{steps:,}" if played == steps else f"{steps:,} (checkpoint {played:,})"
        validated = validations.get(str(played))
        checked = f"{validated['badges']}/{validated['episodes']}" if validated else "—"
        out.append(
            f"| {run.name} | {where} | {collected + steps:,} | "
            f"{float(record['train_seconds']) / 60:.1f} | "
            f"{round(rate * episodes)}/{episodes} [{low:.0%}–{high:.0%}] | "
            f"{'—' if median is None else f'{median:,.0f}'} | {checked} |"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="train agent run folders")
    args = parser.parse_args()
    print(
        "| run | imagination steps | env steps in all | training minutes | badge [95%] "
        "| median steps | validation |"
    )
    print("|---|---|---|---|---|---|---|")
    for run in args.runs:
        for row in rows(run):
            print(row)


if __name__ == "__main__":
    main()
