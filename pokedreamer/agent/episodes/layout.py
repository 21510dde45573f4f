"""The layout of a recorded episode, ``runs/<name>/episodes/<n>/``, which the recorder writes and
the reader reads:

    meta.json     written once at the start: start time, seed, ROM, settings summary
    frames.bin    packed frames (pokedreamer.env.frames), 5,760 bytes each: frame i at i*5760
    steps.jsonl   one JSON object per step: action, reward and its terms, GameState, subgoal
    plans.jsonl   the planner's trace, one PlanRecord per line
    summary.json  written at the end; its absence means the episode was cut short

Step i pairs frame i with line i of steps.jsonl. The first step of an episode is usually the reset
observation, recorded with ``action=None`` and reward 0. Episode folders are named by number,
``episode_folder_name``, counting from 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pokedreamer.env.state import GameState

FORMAT_VERSION = 1
META, FRAMES, STEPS, PLANS, SUMMARY = (
    "meta.json",
    "frames.bin",
    "steps.jsonl",
    "plans.jsonl",
    "summary.json",
)


def episode_folder_name(number: int) -> str:
    return f"{number:06d}"


def state_to_json(state: GameState) -> dict[str, Any]:
    """A GameState as a JSON-ready dict; ``state_from_json`` rebuilds an equal one.

    The fields are read straight from the model (~0.5 µs, against ~3 µs for ``model_dump``):
    tuples and PartyMon become JSON arrays, and ``event_flags`` becomes hex, because pydantic's
    JSON mode would write the raw bytes as UTF-8 text (escaped, or failing on invalid UTF-8).
    """
    fields = dict(state.__dict__)
    fields["event_flags"] = fields["event_flags"].hex()
    return fields


def state_from_json(fields: Mapping[str, Any]) -> GameState:
    data = dict(fields)
    data["event_flags"] = bytes.fromhex(data["event_flags"])
    return GameState.model_validate(data)
