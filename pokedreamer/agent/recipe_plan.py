"""What ``pokedreamer train agent`` is asked to do, checked before anything heavy is imported:
its stages and their sizes, the recipe's settings, and the runs it may go into."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pokedreamer.agent.collect_policy import GO_EXPLORE, RANDOM
from pokedreamer.config import Settings
from pokedreamer.errors import UserError

STAGES = ("collect", "world-model", "imitation", "imagination", "eval")
RECIPE_FILE = "recipe.json"

_BOTH_RECIPES: dict[str, Any] = {
    "world_model.checkpoint_every": 250,
    "env.max_steps": 3000,  # the quest's budget: the badge within 3,000 steps
    "agent.envs": 2,
    "agent.train_ratio": 32.0,
    "agent.behavior_updates": 8,
    "agent.end_at_badges": 1,
    "agent.shaping_scale": 10.0,
}

IMITATION_RECIPE: dict[str, Any] = {
    **_BOTH_RECIPES,
    "world_model.preset": "tiny",
    "agent.shaping_bonus": 10.0,
    "imitation.beta_steps": 10_000,
}
"""The settings of ``train agent --imitate``: docs/recipes/fixture-agent.toml's, which trained
the shipped checkpoint."""

IMAGINATION_RECIPE: dict[str, Any] = {
    **_BOTH_RECIPES,
    # tiny's 36x40 screen with a latent wide enough to imagine a blow landing in a battle.
    "world_model.preset": "mini",
    "world_model.observation": "tiles",
    # Half of each batch starts at a rare step (a battle, a message, a map change) or on a
    # rarely seen map: random play barely reaches the gym.
    "world_model.replay_event_share": 0.5,
    "world_model.replay_map_share": 0.5,
    # The map id, x and y of the GameState vector also in bits: the house and the gym, one
    # cell and the next, read as different inputs.
    "world_model.state_code": "bits",
    # The subgoal's map and tile in bits: the actor tells "go to the gym" from "go home".
    "agent.goal_code": "bits",
    # Each imagined row draws its subgoal first, so that talking to someone and battles are
    # rehearsed as often as walking; with four times the actor's updates (either alone lost
    # badges): 27 of 120 fresh episodes on four fresh training seeds, against 12 of 120.
    "agent.pairing": "subgoal",
    "agent.behavior_updates": 32,
}
"""The settings of ``train agent`` without ``--imitate``, learning in imagination alone:
docs/recipes/imagination-agent.toml's, the best measured so far (docs/benchmarks.md)."""


@dataclass(frozen=True)
class RecipeDefaults:
    """The stage sizes a recipe takes where its flags are not given."""

    world_model_updates: int
    steps: int
    collect_steps: int = 50_000
    collect_policy: str = RANDOM
    validate_every: int = 0


IMITATION_SIZES = RecipeDefaults(world_model_updates=2_000, steps=30_000)
IMAGINATION_SIZES = RecipeDefaults(
    world_model_updates=3_000,
    steps=5_000,
    collect_steps=150_000,
    collect_policy=GO_EXPLORE,
    validate_every=1_000,
)
"""Imagination alone: go-explore's 150,000 steps (two to four minutes on two envs) bring the
gym, trainers' battles and MOM's heal into the replay, and the mini world model needs its 3,000
updates on them (about 51 minutes of one thread), then 18 of imagination, validated every
1,000 steps: the badge in 188 of 210 fresh episodes on seven training seeds (30, 30, 8, 30, 30,
30 and 30 of 30), where 1,500 updates gave 15 of 60 on the first two (docs/benchmarks.md)."""


def recipe_settings(
    settings: Settings, chosen: frozenset[str] = frozenset(), *, imitate: bool = False
) -> Settings:
    """``settings`` with the recipe's own (IMITATION_RECIPE with ``imitate``, else
    IMAGINATION_RECIPE) where a setting holds its default and is not among the dotted keys
    ``chosen``: a default set on purpose, as by ``POKEDREAMER_AGENT__SHAPING_BONUS=1.0``,
    stays."""
    sections: dict[str, dict[str, Any]] = {}
    for dotted, value in (IMITATION_RECIPE if imitate else IMAGINATION_RECIPE).items():
        if dotted in chosen:
            continue
        section, key = dotted.split(".")
        current = getattr(settings, section)
        if getattr(current, key) == getattr(type(current)(), key):
            sections.setdefault(section, {})[key] = value
    update = {name: getattr(settings, name).model_copy(update=u) for name, u in sections.items()}
    return settings.model_copy(update=update)


@dataclass(frozen=True)
class Sizes:
    """How much each stage does: totals, so that a resumed stage knows what is left."""

    collect_steps: int = IMAGINATION_SIZES.collect_steps
    collect_policy: str = IMAGINATION_SIZES.collect_policy
    """``collect``'s behaviour policy: random or go-explore (agent/collect_policy.py)."""
    world_model_updates: int = IMAGINATION_SIZES.world_model_updates
    imitation_steps: int = 0
    """0: no imitation stage."""
    steps: int = IMAGINATION_SIZES.steps
    """Env steps of the imagination stage; 0 skips it."""
    eval_episodes: int = 30
    eval_seed: int = 10_000
    eval_max_steps: int = 3000
    eval_variants: tuple[str, ...] = ("agent",)
    eval_every: int = 0
    """Also evaluate every this many imagination steps (0: only at the end): the curve."""
    validate_every: int = IMAGINATION_SIZES.validate_every
    """Validate a checkpoint every this many imagination steps and at the end, and end with
    the best (0: end with the last one); agent/validation.py."""
    validate_episodes: int = 10
    validate_seed: int = 20_000


def check_sizes(sizes: Sizes, until: str | None) -> None:
    """One-line refusals of a recipe that cannot run, before any folder is made."""
    # Deferred: the evaluation's module brings torch, and a refusal should not wait on it.
    from pokedreamer.agent.evaluate import KNOWN_VARIANTS

    if sizes.collect_policy not in (RANDOM, GO_EXPLORE):
        raise UserError(
            f"--collect-policy takes {RANDOM} or {GO_EXPLORE}, not {sizes.collect_policy!r}"
        )
    if until is not None and until not in STAGES:
        raise UserError(f"--until takes one of {', '.join(STAGES)}, not {until!r}")
    if until == "imitation" and not sizes.imitation_steps:
        raise UserError("--until imitation needs --imitate")
    tested = range(sizes.eval_seed, sizes.eval_seed + sizes.eval_episodes)
    validated = range(sizes.validate_seed, sizes.validate_seed + sizes.validate_episodes)
    if sizes.validate_every and range(
        max(tested[0], validated[0]), min(tested[-1], validated[-1]) + 1
    ):
        raise UserError(
            f"the validation seeds {validated[0]}-{validated[-1]} overlap the evaluation's "
            f"{tested[0]}-{tested[-1]}: choosing by the seeds that score the result flatters it; "
            "move --validate-seed"
        )
    unknown = [v for v in sizes.eval_variants if v not in KNOWN_VARIANTS]
    if unknown or not sizes.eval_variants:
        raise UserError(
            f"--eval-variants takes some of {', '.join(KNOWN_VARIANTS)}, not "
            f"{','.join(sizes.eval_variants) or 'none'}"
        )


def check_seeds(sizes: Sizes, seed: int, envs: int, stages: dict[str, Any] | None = None) -> None:
    """Refuses evaluation or validation seeds at or below the last seed training played. Every
    stage seeds its episodes upwards from env.seed: ``stages`` is recipe.json's record of them,
    None before a run has one (then the first ``envs`` seeds, before any folder is made)."""
    stages = stages or {}
    collected = envs * (stages.get("collect", {}).get("resumes", 0) + 1)
    played = [int(stages.get(s, {}).get("episodes", 0)) for s in ("imitation", "imagination")]
    last = seed + max(collected, *played) - 1
    asked = [(sizes.eval_seed, "--eval-seed")]
    if sizes.validate_every:
        asked.append((sizes.validate_seed, "--validate-seed"))
    for first, flag in asked:
        if first <= last:
            raise UserError(f"training played seeds {seed}-{last}; give a {flag} above them")


def check_run_kind(path: Path) -> None:
    """A recipe goes into an empty or missing folder, or one of its own; others are refused."""
    if (path / RECIPE_FILE).is_file() or not path.exists():
        return
    if not path.is_dir() or any(path.iterdir()):
        raise UserError(
            f"{path} is a run of another kind (it has no {RECIPE_FILE}); train agent makes its "
            "own run: give a new --run name"
        )
