"""The milestones an evaluation times: the same for the fixture cartridge and for Pokémon Red's
opening (a starter, Route 1, a trained party, Pewter's gym, the first badge). The maps between
them tell where an agent that never earns the badge stops."""

from __future__ import annotations

from collections.abc import Callable

from pokedreamer.env.state import GameState

# Name -> when it is reached. In order: each normally comes after the one before it.
QUEST_STAGES: tuple[tuple[str, Callable[[GameState], bool]], ...] = (
    ("left_house", lambda s: s.map_name != "REDS_HOUSE_1F" and s.map_name != "REDS_HOUSE_2F"),
    ("starter", lambda s: len(s.party) > 0),
    ("route_1", lambda s: s.map_name == "ROUTE_1"),
    ("level_6", lambda s: max((m.level for m in s.party), default=0) >= 6),
    ("pewter_gym", lambda s: s.map_name == "PEWTER_GYM"),
    ("badge", lambda s: s.badge_count > 0),
)
STAGE_NAMES = tuple(name for name, _ in QUEST_STAGES)


def stages_reached(state: GameState, reached: dict[str, int], step: int) -> None:
    """Notes in ``reached`` the step each stage is first seen at."""
    for name, test in QUEST_STAGES:
        if name not in reached and test(state):
            reached[name] = step
