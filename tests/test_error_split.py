"""The first imagined step's error split by what happened in the game."""

from __future__ import annotations

import math

import pytest
import torch

from pokedreamer.env.state import VECTOR_FIELDS
from pokedreamer.world_model.error_split import EVENTS, split_error, step_events
from pokedreamer.world_model.evaluate import OpenLoopReport, summary_line

KEYS = [key for _, key in EVENTS]


def state(map_id: int = 1, battle: str = "none", text: bool = False) -> torch.Tensor:
    vector = torch.zeros(len(VECTOR_FIELDS))
    vector[VECTOR_FIELDS.index("map_id")] = map_id / 255
    vector[VECTOR_FIELDS.index(f"battle_{battle}")] = 1.0
    vector[VECTOR_FIELDS.index("text_shown")] = float(text)
    return vector


def test_each_step_goes_to_the_first_kind_that_holds() -> None:
    pairs = [
        (state(), state(battle="wild", text=True)),  # the battle's first message too
        (state(battle="trainer", text=True), state(map_id=2)),  # a lost battle warps home
        (state(map_id=1), state(map_id=2, text=True)),
        (state(), state(text=True)),
        (state(text=True), state()),
        (state(), state()),
        (state(battle="wild"), state(battle="wild", text=True)),  # a message inside a battle
        (state(battle="wild"), state(battle="wild")),
    ]
    before = torch.stack([b for b, _ in pairs])
    after = torch.stack([a for _, a in pairs])
    kinds = [KEYS[k] for k in step_events(before, after).tolist()]
    assert kinds == [
        "battle starts", "battle ends", "map changes", "message opens", "message closes",
        "other", "message opens", "in battle",
    ]  # fmt: skip


def test_the_split_adds_up_and_gives_the_ceiling_of_an_unforeseen_kind() -> None:
    truth = torch.zeros(4, 2, 2, dtype=torch.uint8)
    truth[0] = 3  # a battle starts: the whole screen turns dark
    last = torch.zeros_like(truth)
    guess = truth.clone()
    guess[0] = 0  # drawn as the screen before
    guess[3, 0, 0] = 3  # and one wrong pixel on a calm step
    kind = torch.tensor([KEYS.index("battle starts"), *[KEYS.index("other")] * 3])
    rows = {row["kind"]: row for row in split_error(guess, truth, last, kind)}
    assert list(rows) == KEYS
    assert sum(r["frames"] for r in rows.values()) == 4
    assert sum(r["error_share"] for r in rows.values()) == pytest.approx(1.0)
    starts = rows["battle starts"]
    assert starts["frames"] == 1 and starts["frame_share"] == 0.25
    assert starts["error_share"] == pytest.approx(4 / 5)
    # Without it, one wrong pixel in 12; the ceiling: 4 wrong pixels in 16, all else right.
    assert starts["psnr_without"] == pytest.approx(10 * math.log10(12))
    assert starts["ceiling_if_unforeseen"] == pytest.approx(10 * math.log10(16 / 4))
    assert rows["map changes"]["frames"] == 0 and rows["map changes"]["error_share"] == 0.0
    assert rows["map changes"]["ceiling_if_unforeseen"] == math.inf
    assert rows["other"]["ceiling_if_unforeseen"] is None


def test_the_summary_and_the_markdown_name_the_ceiling_battles_starting_put_on_step_one() -> None:
    truth = torch.zeros(4, 2, 2, dtype=torch.uint8)
    truth[0] = 3
    kind = torch.tensor([KEYS.index("battle starts"), *[KEYS.index("other")] * 3])
    split = split_error(torch.zeros_like(truth), truth, torch.zeros_like(truth), kind)
    row = {"step": 1, "psnr": 6.02, "map_accuracy": 1.0, "tile_error": 0.0, "reward_error": 0.0}
    row |= {f"baseline_{k}": v for k, v in row.items() if k != "step"}
    report = OpenLoopReport(1, 1, 4, 30.0, [row], first_step_split=split)
    assert summary_line(report).endswith(
        "battles starting (25.00% of step 1's frames) carry 100% of its error and, unforeseen, "
        "cap its PSNR (6.02 dB) at 6.02 dB"
    )
    table = report.markdown("t")
    assert "| a battle starts | 1 (25.00%) | 100.00% | ∞ dB | 6.02 dB |" in table
    assert "| none of these | 3 (75.00%) | 0.00% | 0.00 dB | — |" in table
