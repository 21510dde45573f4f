"""Where the first imagined step's error lies: split by what happened in the game.

Most steps change a few cells around the player; a few change the whole screen at once: a battle
starts or ends, a message opens or closes, a warp leads to another map. Those few carry much of
the pooled error, and they differ in how foreseeable they are. A wild encounter is drawn by the
game's random number generator at the end of a step in grass, which nothing the model observes
predicts (nor the damage a move does, inside a battle); a message that opens because A was
pressed facing a sign is foreseeable. Each frame goes to the first kind below that the GameState
vectors before and after it show, so the shares add up to one.
"""

from __future__ import annotations

import math

import torch

from pokedreamer.env.state import VECTOR_FIELDS

EVENTS = (
    ("a battle starts", "battle starts"),
    ("a battle ends", "battle ends"),
    ("the map changes", "map changes"),
    ("a message opens", "message opens"),
    ("a message closes", "message closes"),
    ("a battle goes on", "in battle"),
    ("none of these", "other"),
)
"""(label, key) of each kind of step, in the order frames are assigned."""

_MAP = VECTOR_FIELDS.index("map_id")
_TEXT = VECTOR_FIELDS.index("text_shown")
_NO_BATTLE = VECTOR_FIELDS.index("battle_none")


def step_events(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """The kind of each step (an index into EVENTS), from the GameState vectors (B, 30) seen
    before and after it."""
    assert before.shape == after.shape and before.shape[-1] == len(VECTOR_FIELDS), before.shape
    calm_before, calm_after = before[:, _NO_BATTLE] > 0.5, after[:, _NO_BATTLE] > 0.5
    text_before, text_after = before[:, _TEXT] > 0.5, after[:, _TEXT] > 0.5
    masks = (
        calm_before & ~calm_after,
        ~calm_before & calm_after,
        (before[:, _MAP] - after[:, _MAP]).abs() > 0.5 / 255,
        ~text_before & text_after,
        text_before & ~text_after,
        ~calm_before & ~calm_after,
    )
    kind = torch.full(before.shape[:1], len(EVENTS) - 1, dtype=torch.long, device=before.device)
    for index in reversed(range(len(masks))):  # the first kind that holds wins
        kind[masks[index]] = index
    return kind


def split_error(
    guess: torch.Tensor, truth: torch.Tensor, last: torch.Tensor, kind: torch.Tensor
) -> list[dict[str, float | str | int | None]]:
    """Per kind of step: its frames, their share of all frames and of the pooled squared error
    of ``guess`` against ``truth`` (shade frames (B, h, w)), the PSNR of the others, and the
    PSNR a guess right everywhere else would score if it drew these frames as ``last`` (the
    screen before): the ceiling for a model that cannot foresee them (None for "other")."""
    assert guess.shape == truth.shape == last.shape and guess.dim() == 3, guess.shape
    assert kind.shape == guess.shape[:1], kind.shape
    pixels = truth[0].numel()

    def frame_error(frames: torch.Tensor) -> torch.Tensor:
        return ((frames.float() - truth.float()) / 3.0).pow(2).flatten(1).sum(1)  # (B,)

    ours, still = frame_error(guess), frame_error(last)
    total, n = float(ours.sum()), kind.numel()
    rows: list[dict[str, float | str | int | None]] = []
    for index, (label, key) in enumerate(EVENTS):
        these = kind == index
        count = int(these.sum())
        rows.append(
            {
                "kind": key,
                "label": label,
                "frames": count,
                "frame_share": count / n,
                "error_share": float(ours[these].sum()) / total if total else 0.0,
                "psnr_without": _psnr(float(ours[~these].sum()), (n - count) * pixels),
                # Steps where none of these happened have nothing to foresee.
                "ceiling_if_unforeseen": None
                if key == "other"
                else _psnr(float(still[these].sum()), n * pixels),
            }
        )
    return rows


def _psnr(squared_error: float, pixels: int) -> float:
    if pixels == 0 or squared_error == 0.0:
        return math.inf
    return 10.0 * math.log10(pixels / squared_error)
