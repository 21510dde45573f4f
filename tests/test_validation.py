"""Which checkpoint the recipe keeps: the most badges on the validation seeds, then the quickest,
then the most trained; a checkpoint gone from disk is not chosen."""

from __future__ import annotations

from pathlib import Path

import pytest

from pokedreamer.agent.validation import Validated, best, checkpoint_number, record
from pokedreamer.errors import UserError


def validated(tmp: Path, step: int, badges: int, median: float | None) -> Validated:
    path = tmp / f"agent-{step:09d}"
    for suffix in (".json", ".safetensors"):
        path.with_name(path.name + suffix).touch()
    return Validated(step, str(path), badges, 10, median)


def test_the_most_badges_then_the_quickest_then_the_latest(tmp_path: Path) -> None:
    validations: dict[str, object] = {}
    assert best(validations) is None
    for step, badges, median in ((1000, 0, None), (2000, 9, 700.0), (3000, 4, 300.0)):
        record(validations, validated(tmp_path, step, badges, median))
    assert best(validations).step == 2000  # type: ignore[union-attr]
    record(validations, validated(tmp_path, 4000, 9, 650.0))
    assert best(validations).step == 4000  # type: ignore[union-attr]
    record(validations, validated(tmp_path, 5000, 9, 650.0))
    assert best(validations).step == 5000  # type: ignore[union-attr]  # a tie: more training
    Path(validations["5000"]["checkpoint"] + ".safetensors").unlink()  # type: ignore[index]
    assert best(validations).step == 4000  # type: ignore[union-attr]


def test_no_badge_anywhere_keeps_the_latest(tmp_path: Path) -> None:
    validations: dict[str, object] = {}
    for step in (1000, 2000, 3000):
        record(validations, validated(tmp_path, step, 0, None))
    chosen = best(validations)
    assert chosen is not None and chosen.step == 3000 and chosen.line() == "0/10 badges"
    assert validated(tmp_path, 7, 3, 12.0).line() == "3/10 badges, median 12 steps"
    assert checkpoint_number(Path(chosen.checkpoint)) == 3000 and checkpoint_number(None) == 0


def test_a_validation_record_not_the_recipes_is_refused_in_one_line() -> None:
    with pytest.raises(UserError, match="validations are not the recipe's; fix or remove them"):
        best({"1000": {"step": 1000, "badges": "many"}})
