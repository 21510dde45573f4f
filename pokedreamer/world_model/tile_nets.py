"""The token world model's encoder and decoder: the screen as its 18x20 grid of tile tokens.

Each cell of the grid holds the token of the 8x8 pattern it shows (pokedreamer.env.tiles names
them; 0 is "unknown"). The encoder embeds each token and convolves the 18x20 map of embeddings
down to one vector, joined with the GameState vector as the pixel Encoder does. The decoder
mirrors it up to one feature vector per cell, joins the screen before (the one seen, or the one
imagined, a step earlier) and gives a categorical over the vocabulary per cell.

Why the screen before: most cells of a step's screen are the ones of the step before, or those
shifted by a cell or two as the view scrolls. A decoder that reads only the latent state must
redraw every one of them from it, and on the small preset after 30 minutes of training it got
0.7% of the unchanged cells wrong, nearly half of its error at one imagined step. Given the
screen before, it copies those and the latent state spends itself on what changes. The screen
before is an input of the decoder only: the RSSM, its imagination and everything the actor
learns from are the same as the pixel model's.

The output is a two-level (class-factored) softmax: token v lies in group v // S at slot v % S,
with S = ceil(sqrt(capacity)), and p(v) = p(group | cell) * p(slot | group, cell), each level a
softmax over about sqrt(capacity) classes with its own weight vector per token. It is an exact
categorical over the whole vocabulary, so its cross-entropy is the cells' log-likelihood as a
flat softmax's would be; but training touches only S + S logits per cell instead of
capacity: 64 instead of 1,024, where a flat softmax's 377 M logits per 16x64 batch (1.5 GB,
forward and backward) cost more than the rest of an update on this CPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pokedreamer.env.frames import FRAME_SHAPE
from pokedreamer.env.state import VECTOR_SIZE
from pokedreamer.world_model.nets import ChannelNorm, ResBlock, StateEncoder, _linear_norm_act
from pokedreamer.world_model.presets import BOTTOM_HW, Preset
from pokedreamer.world_model.state_code import StateCode

CELL = 8
"""Pixels per side of a tile, the Game Boy's."""
GRID_HW: tuple[int, int] = (FRAME_SHAPE[0] // CELL, FRAME_SHAPE[1] // CELL)
"""The screen's grid of cells, (18, 20); one stride-2 stage halves it to BOTTOM_HW."""
CELLS = GRID_HW[0] * GRID_HW[1]
CHUNK_ROWS = 4096
"""Cells whose full distribution over the vocabulary is computed at once when decoding: 16 MB of
float32 logits at capacity 1,024, however many frames are decoded."""

assert (GRID_HW[0] // 2, GRID_HW[1] // 2) == BOTTOM_HW


def tile_width(preset: Preset) -> int:
    """Width of a token's embedding, of the 9x10 map and of a cell's decoded features: twice the
    preset's first conv stage (the pixel encoder's second stage, whose maps are 18x20 too)."""
    return 2 * preset.depth


def token_input(tokens: Tensor) -> Tensor:
    """Token grids (N, 18, 20) of any integer dtype (the replay's uint16) -> int64 indices."""
    assert tokens.ndim == 3 and tokens.shape[-2:] == GRID_HW, tokens.shape
    assert not tokens.is_floating_point(), tokens.dtype
    return tokens.long()


class TileEncoder(nn.Module):
    """Token grid + GameState vector -> embedding (N, preset.embed_size).

    An embedding per token (an 18x20 map of width `tile_width`), one stride-2 4x4 conv down to
    9x10 and a residual block, flattened and projected to `hidden`; the GameState vector through
    the same StateEncoder as the pixel Encoder's. A cell's token is already what a pixel encoder
    spends its first stages finding, so one stage suffices."""

    def __init__(self, preset: Preset, capacity: int, state_code: StateCode = "scalar") -> None:
        super().__init__()
        self.preset = preset
        width = tile_width(preset)
        self.embedding = nn.Embedding(capacity, width)
        self.convs = nn.Sequential(
            nn.Conv2d(width, width, 4, stride=2, padding=1, bias=False),
            ChannelNorm(width),
            nn.SiLU(),
            ResBlock(width),
        )
        self.image_out = nn.Sequential(*_linear_norm_act(width * BOTTOM_HW[0] * BOTTOM_HW[1],
                                                         preset.hidden))  # fmt: skip
        self.state_mlp = StateEncoder(preset.embed_size - preset.hidden, state_code)

    def forward(self, tokens: Tensor, state: Tensor) -> Tensor:
        n = tokens.shape[0]
        assert tokens.shape == (n, *GRID_HW) and tokens.dtype == torch.int64, tokens.shape
        assert state.shape == (n, VECTOR_SIZE), state.shape
        x = self.embedding(tokens).permute(0, 3, 1, 2)  # (N, width, 18, 20)
        x = self.image_out(self.convs(x).flatten(1))
        embed = torch.cat([x, self.state_mlp(state)], dim=-1)
        assert embed.shape == (n, self.preset.embed_size), embed.shape
        return embed


class TileDecoder(nn.Module):
    """feat and the screen before -> a categorical over `capacity` tokens per cell.

    `cells(feat, before)` gives each cell's features (N, 18, 20, width): a linear map to 9x10, a
    residual block and a stride-2 4x4 transposed conv (the encoder's mirror), then two 3x3 convs
    over those features joined with an embedding of the token each cell showed the step before
    (two cells of reach each way: a step's walk scrolls the view by two), added back as a
    residual. `nll` scores them against the true tokens through the two-level softmax;
    `log_probs` and `argmax` give the whole distribution and its mode, in chunks of CHUNK_ROWS
    cells."""

    def __init__(self, preset: Preset, capacity: int) -> None:
        super().__init__()
        self.preset = preset
        self.capacity = capacity
        self.width = width = tile_width(preset)
        self.slots = math.isqrt(capacity - 1) + 1  # ceil(sqrt(capacity))
        self.groups = -(-capacity // self.slots)
        self.linear = nn.Linear(preset.feat_size, width * BOTTOM_HW[0] * BOTTOM_HW[1])
        self.norm = ChannelNorm(width)
        self.up = nn.Sequential(
            ResBlock(width),
            nn.ConvTranspose2d(width, width, 4, 2, padding=1, bias=False),
            ChannelNorm(width),
            nn.SiLU(),
        )
        # The screen before: a token per cell, or `none` where there is none (an episode's or a
        # sequence's first step).
        self.none = capacity
        self.before = nn.Embedding(capacity + 1, width)
        self.copy = nn.Sequential(
            nn.Conv2d(2 * width, width, 3, padding=1, bias=False),
            ChannelNorm(width),
            nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            ChannelNorm(width),
        )
        # Level 1: which group; level 2: which slot of the group, a weight vector per token.
        self.group_out = nn.Linear(width, self.groups)
        self.slot_weight = nn.Parameter(torch.empty(self.groups, self.slots, width))
        self.slot_bias = nn.Parameter(torch.zeros(self.groups, self.slots))
        nn.init.normal_(self.slot_weight, std=width**-0.5)
        # The last group's slots past the capacity are no tokens: -inf keeps them out of its
        # softmax. Derived from the capacity, so not saved.
        mask = torch.zeros(self.groups * self.slots)
        mask[capacity:] = -math.inf
        self.register_buffer("slot_mask", mask.reshape(self.groups, self.slots), persistent=False)

    def cells(self, feat: Tensor, before: Tensor | None) -> Tensor:
        """feat (N, F) and the grids of the step before (N, 18, 20) int64, ``self.none`` in the
        cells of a frame that has none (None: no frame has one) -> cell features (N, 18, 20,
        width)."""
        n = feat.shape[0]
        assert feat.shape == (n, self.preset.feat_size), feat.shape
        if before is None:
            before = torch.full((n, *GRID_HW), self.none, dtype=torch.int64, device=feat.device)
        assert before.shape == (n, *GRID_HW) and before.dtype == torch.int64, before.shape
        x = self.linear(feat).reshape(n, self.width, *BOTTOM_HW)
        # Channels-last: the cells leave as (N, 18, 20, width) rows without a copy, and each
        # cell's norm reads contiguous channels (17% of a small-preset update on this CPU).
        x = x.contiguous(memory_format=torch.channels_last)
        x = self.up(F.silu(self.norm(x)))
        seen = self.before(before).permute(0, 3, 1, 2).to(x.dtype)  # channels-last already
        x = F.silu(x + self.copy(torch.cat([x, seen], 1)))
        assert x.shape == (n, self.width, *GRID_HW), x.shape
        return x.permute(0, 2, 3, 1)

    def nll(self, cells: Tensor, tokens: Tensor) -> Tensor:
        """-log p(token) (...) of the true tokens (...) int64 under cells (..., width).

        Level 2 needs only each cell's true group: cells are sorted by it and each group's slot
        softmax runs on its own rows, so no cell computes another group's logits."""
        lead = tokens.shape
        h = cells.reshape(-1, self.width)
        target = tokens.reshape(-1)
        group, slot = target // self.slots, target % self.slots
        group_nll = F.cross_entropy(self.group_out(h), group, reduction="none")
        # index_select / index_copy, and split rather than slices: their backward passes are an
        # index_add, a gather and a concatenation, where indexing or slicing would zero-fill a
        # gradient the size of every cell for each group.
        order = torch.argsort(group)
        counts = torch.bincount(group, minlength=self.groups).tolist()  # one sync per batch
        h_parts = h.index_select(0, order).split(counts)
        slot_parts = slot.index_select(0, order).split(counts)
        weights, biases = self.slot_weight.unbind(), self.slot_bias.unbind()
        masks = self.slot_mask.unbind()
        parts = []
        for g, count in enumerate(counts):
            if count == 0:
                continue
            logits = F.linear(h_parts[g], weights[g], biases[g]) + masks[g]
            parts.append(F.cross_entropy(logits, slot_parts[g], reduction="none"))
        sorted_nll = torch.cat(parts)
        slot_nll = sorted_nll.new_zeros(target.shape).index_copy(0, order, sorted_nll)
        return (group_nll + slot_nll.to(group_nll.dtype)).reshape(lead)

    def _logits_rows(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Cells (R, width) -> (log p(group) (R, G), slot logits (R, G, S)), float32, the slots
        past the capacity at -inf."""
        group = F.log_softmax(self.group_out(h).float(), -1)
        weight = self.slot_weight.reshape(-1, self.width)
        slot = F.linear(h, weight, self.slot_bias.reshape(-1)).float()
        return group, slot.reshape(-1, self.groups, self.slots) + self.slot_mask

    def _log_probs_rows(self, h: Tensor) -> Tensor:
        """Cells (R, width) -> log p over the vocabulary (R, capacity)."""
        group, slot = self._logits_rows(h)
        full = (group.unsqueeze(-1) + F.log_softmax(slot, -1)).flatten(1)
        return full[:, : self.capacity]

    def log_probs(self, cells: Tensor) -> Tensor:
        """Cells (..., 18, 20, width) -> log-probabilities (..., capacity, 18, 20), the decoder's
        logits as the pixel decoder's shade logits are laid out (the class before the grid)."""
        lead = cells.shape[:-3]
        rows = cells.reshape(-1, self.width)
        out = torch.cat([self._log_probs_rows(c) for c in rows.split(CHUNK_ROWS)])
        return out.reshape(*lead, *GRID_HW, self.capacity).movedim(-1, -3)

    def argmax(self, cells: Tensor) -> Tensor:
        """Cells (..., 18, 20, width) -> each cell's most likely token (..., 18, 20) int64,
        without holding the whole distribution of every cell at once."""
        lead = cells.shape[:-1]
        rows = cells.reshape(-1, self.width)
        out = torch.cat([self._mode_rows(c) for c in rows.split(CHUNK_ROWS)])
        return out.reshape(lead)

    def _mode_rows(self, h: Tensor) -> Tensor:
        """Cells (R, width) -> each one's most likely token (R,) int64. Within a group the slot
        softmax keeps the logits' order, so the mode is the best group's best slot, scored by
        log p(group) + its best slot's logit - the group's logsumexp: a max and a logsumexp
        over the slot logits instead of the whole normalised distribution."""
        group, slot = self._logits_rows(h)
        best, best_slot = slot.max(-1)  # (R, G)
        g = (group + best - slot.logsumexp(-1)).argmax(-1, keepdim=True)
        return (g * self.slots + best_slot.gather(-1, g)).squeeze(-1)
