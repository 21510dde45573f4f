"""Which of a recipe's checkpoints to keep: the one that did best on validation seeds.

The actor's badge rate wavers between saves once it has learnt the quest (docs/benchmarks.md:
26 of 30 fresh episodes after 2,000 imagination steps, 8 after 5,000 on the same run). So
``train agent`` plays a few episodes on seeds of its own every ``--validate-every`` steps and
ends with the checkpoint that earned the most badges there. Those seeds are neither training's
nor the final evaluation's: choosing by the seeds that score the result would flatter it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pokedreamer.agent.evaluate import evaluate_from
from pokedreamer.config import Settings
from pokedreamer.errors import UserError
from pokedreamer.world_model.checkpoint import META_SUFFIX, TENSORS_SUFFIX


@dataclass(frozen=True)
class Validated:
    """One checkpoint's validation: its badges in ``episodes`` episodes."""

    step: int
    checkpoint: str
    badges: int
    episodes: int
    median_steps: float | None
    """Median steps to the badge over the episodes that got it; None when none did."""

    @classmethod
    def from_report(cls, step: int, checkpoint: Path, report: dict[str, Any]) -> Validated:
        badge = report["variants"]["agent"]["stages"]["badge"]
        episodes = int(report["episodes"])
        return cls(
            step=step,
            checkpoint=str(checkpoint),
            badges=round(float(badge["reached"]) * episodes),
            episodes=episodes,
            median_steps=badge["median_steps"],
        )

    def rank(self) -> tuple[float, float, int]:
        """Larger is better: the badge rate, then quicker badges, then more training."""
        quick = -self.median_steps if self.median_steps is not None else float("-inf")
        return (self.badges / self.episodes, quick, self.step)

    def line(self) -> str:
        median = "" if self.median_steps is None else f", median {self.median_steps:,.0f} steps"
        return f"{self.badges}/{self.episodes} badges{median}"


def record(validations: dict[str, Any], validated: Validated) -> None:
    """Adds one validation to the recipe's record (keyed by step, as JSON keeps them)."""
    validations[str(validated.step)] = asdict(validated)


def best(validations: dict[str, Any]) -> Validated | None:
    """The best validated checkpoint still on disk, or None when there is none."""
    try:
        found = [Validated(**v) for v in validations.values()]
    except TypeError:
        raise UserError(
            "recipe.json's imagination validations are not the recipe's; fix or remove them"
        ) from None
    found = [v for v in found if complete(Path(v.checkpoint))]
    return max(found, key=Validated.rank, default=None)


def validate(
    settings: Settings, checkpoint: Path, out: Path, seed: int, episodes: int, max_steps: int
) -> tuple[Validated, dict[str, Any]]:
    """Plays ``checkpoint``'s agent ``episodes`` episodes from ``seed`` into ``out``: its
    validation and its report."""
    report = evaluate_from(settings, checkpoint, out, seed, episodes, max_steps)
    return Validated.from_report(checkpoint_number(checkpoint), checkpoint, report), report


def complete(checkpoint: Path) -> bool:
    """Whether both of a checkpoint's files are there."""
    files = (checkpoint.with_name(checkpoint.name + s) for s in (META_SUFFIX, TENSORS_SUFFIX))
    return all(f.is_file() for f in files)


def checkpoint_number(checkpoint: Path | None) -> int:
    """The step or update count in a checkpoint's name, ``wm-000002250``; 0 for none."""
    return int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint is not None else 0
