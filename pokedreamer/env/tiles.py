"""The tile observation: the screen as its 18 x 20 grid of 8 x 8 cells, each cell a token.

A token names the pattern a cell shows: its 64 pixels in the 4 shades, 2 bits each (16 bytes).
`TileVocabulary` hands out token ids in the order patterns are first seen (1, 2, ...; 0 is
`UNKNOWN`), and an id once given never changes, so a replay of tokens, a model trained on them and
a saved vocabulary keep meaning the same cells.

Why the rendered frame and not PyBoy's tile API: PyBoy offers the tile maps
(`pyboy.tilemap_background`, `pyboy.tilemap_window`), the sprites (`pyboy.get_sprite`, OAM) and
`pyboy.game_area()`, the background and window as tile *identifiers* with sprites' identifiers
written over them. An identifier is a slot in video RAM, not a picture: the game reloads the slots
(another map's tileset, the battle's graphics, the font), the palettes (BGP, OBP0/1, faded during
transitions) decide which shade each of a tile's 4 colours shows, sprites sit at any pixel offset
over up to four cells and are transparent in colour 0, the window covers part of the background,
and `game_area()` follows the scroll only in whole tiles. Rebuilding the screen from identifiers
would mean emulating the Game Boy's pixel pipeline again. The env's shade frame (obs["screen"]) is
that pipeline's output, so cutting it into cells keeps every one of those effects, and
`render(tokenize(frame)) == frame` holds pixel for pixel by construction.

Fine scroll: when SCX or SCY is not a multiple of 8 (mid-walk in the overworld, a battle's slide)
the background's tiles straddle the screen's cells. Cells are still cut on the screen's fixed grid
(rows 8r..8r+7, columns 8c..8c+7), so a scrolled frame shows other patterns, each a token of its
own: the round trip stays exact, at the price of more patterns (a walk's 7 in-between offsets).

Beyond `capacity` tokens (UNKNOWN included) a new pattern maps to UNKNOWN and is counted in
`unknown_cells`, never to a known token. UNKNOWN, and any id the vocabulary has not given out yet
(a model may predict one), renders as `UNKNOWN_PATTERN`: a checkerboard of 2 x 2 squares of the
lightest and darkest shades, which stands out on the Game Boy's screen. A game could draw that
pattern too, so how many cells were unknown is read from `unknown_cells`, not from pictures.

A vocabulary is saved as an .npz of plain arrays (read with allow_pickle=False) or as a small
dict for a checkpoint's JSON; a file built from a user's ROM stays with their runs.
"""

from __future__ import annotations

import base64
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pokedreamer.env.frames import FRAME_SHAPE, pack_frames
from pokedreamer.errors import UserError

GRID_HW: tuple[int, int] = (18, 20)
"""Cells down and across the screen."""
CELL = 8
"""A cell's side in pixels."""
UNKNOWN = 0
"""The token of a pattern beyond the vocabulary's capacity."""
PATTERN_BYTES = CELL * CELL // 4  # 16: 64 pixels at 2 bits
MAX_CAPACITY = int(np.iinfo(np.uint16).max) + 1  # tokens are uint16
FORMAT = "pokedreamer-tiles"
VERSION = 1

_BLOCKS = (np.arange(CELL)[:, None] // 2 + np.arange(CELL)[None, :] // 2) % 2
UNKNOWN_PATTERN = (_BLOCKS * 3).astype(np.uint8)
"""How UNKNOWN renders: (8, 8) shades, 2 x 2 squares of shade 0 and shade 3."""
_KEY = np.dtype((np.void, PATTERN_BYTES))  # a cell as one opaque 16-byte value


def cell_keys(frames: np.ndarray) -> np.ndarray:
    """uint8 shade frames (..., 144, 160) -> each cell's 16-byte pattern, void (..., 18, 20)."""
    # pack_frames puts 4 neighbouring pixels of a row in a byte, so a cell's row of 8 pixels is
    # one whole uint16 (columns 8c..8c+7 are packed bytes 2c, 2c+1): regrouping the packed rows
    # is all it takes, several times cheaper than packing each cell's pixels on its own.
    lead = frames.shape[:-2]
    rows = pack_frames(frames).view(np.uint16).reshape(*lead, GRID_HW[0], CELL, GRID_HW[1])
    cells = np.ascontiguousarray(np.moveaxis(rows, -2, -1))  # (..., 18, 20, 8 rows)
    return cells.view(_KEY).reshape(*lead, *GRID_HW)


def _unpack_patterns(patterns: np.ndarray) -> np.ndarray:
    """uint8 (n, 16) packed patterns -> uint8 (n, 8, 8) shades."""
    shifts = np.arange(0, 8, 2, dtype=np.uint8)
    pixels = (patterns[:, :, None] >> shifts) & 3  # (n, 16 bytes, 4 pixels)
    return pixels.reshape(-1, CELL, CELL).astype(np.uint8)


class TileVocabulary:
    """Cell patterns and their token ids; see the module doc.

    `len()` counts the tokens defined, UNKNOWN included: ids run 0 .. len-1, at most `capacity`.
    Safe to share between threads (one lock around growing and reading)."""

    def __init__(self, capacity: int) -> None:
        if not 2 <= capacity <= MAX_CAPACITY:
            raise UserError(
                f"world_model.tile_capacity must be in 2..{MAX_CAPACITY} (token 0 is unknown), "
                f"got {capacity}"
            )
        self.capacity = capacity
        self.unknown_cells = 0
        """Cells tokenized as UNKNOWN because the vocabulary was full (over its life)."""
        self._ids: dict[bytes, int] = {}
        self._patterns = np.zeros((capacity, PATTERN_BYTES), np.uint8)  # row = token id
        # Every row starts as UNKNOWN's picture, so ids not given out yet render as unknown.
        self._shades = np.broadcast_to(UNKNOWN_PATTERN, (capacity, CELL, CELL)).copy()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._ids) + 1

    @property
    def patterns(self) -> np.ndarray:
        """uint8 (len-1, 16): the known patterns, packed as `cell_keys` packs them, by id."""
        return self._patterns[1 : len(self)].copy()

    def tokenize(self, frames: np.ndarray) -> np.ndarray:
        """uint8 shade frames (..., 144, 160) -> uint16 tokens (..., 18, 20), learning new
        patterns while there is room."""
        if not isinstance(frames, np.ndarray) or frames.shape[-2:] != FRAME_SHAPE:
            shape = getattr(frames, "shape", type(frames).__name__)
            raise ValueError(f"frames must be a numpy array (..., 144, 160), got {shape}")
        keys = cell_keys(frames)
        cells = keys.ravel().tolist()  # bytes objects, the dict's keys
        with self._lock:
            try:
                # A dict lookup per cell (~0.1 us) beats sorting the cells to look up each
                # pattern once (np.unique): most frames hold no pattern unseen before.
                ids = np.fromiter(map(self._ids.__getitem__, cells), np.uint16, len(cells))
            except KeyError:
                ids = np.fromiter(map(self._token, cells), np.uint16, len(cells))
        return ids.reshape(keys.shape)

    def _token(self, key: bytes) -> int:
        token = self._ids.get(key)
        if token is None:
            token = self._learn(key)
            if token == UNKNOWN:
                self.unknown_cells += 1
        return token

    def _learn(self, key: bytes) -> int:
        token = len(self)
        if token >= self.capacity:
            return UNKNOWN
        self._ids[key] = token
        row = np.frombuffer(key, np.uint8)
        self._patterns[token] = row
        self._shades[token] = _unpack_patterns(row[None])[0]
        return token

    def render(self, tokens: np.ndarray) -> np.ndarray:
        """Tokens (..., 18, 20) of any integer dtype -> uint8 shade frames (..., 144, 160)."""
        tokens = np.asarray(tokens)
        if tokens.shape[-2:] != GRID_HW or not np.issubdtype(tokens.dtype, np.integer):
            raise ValueError(
                f"tokens must be integers (..., 18, 20), got {tokens.dtype} {tokens.shape}"
            )
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.capacity):
            raise ValueError(f"tokens must be in 0..{self.capacity - 1}")
        lead = tokens.shape[:-2]
        cells = self._shades[tokens]  # (..., 18, 20, 8, 8)
        return np.moveaxis(cells, -2, -3).reshape(*lead, *FRAME_SHAPE)

    # --- persistence --------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Writes the vocabulary to `path` (.npz), atomically (a temporary file renamed)."""
        tmp = path.with_name(path.name + ".tmp")
        with self._lock:
            arrays = {
                "format": np.array(FORMAT),
                "version": np.array(VERSION),
                "capacity": np.array(self.capacity, np.int64),
                "unknown_cells": np.array(self.unknown_cells, np.int64),
                "patterns": self.patterns,
            }
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a name
            np.savez(f, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> TileVocabulary:
        """The vocabulary saved at `path`; UserError in one line if it is not a valid one."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
        except FileNotFoundError:
            raise UserError(f"no tile vocabulary at {path}; check the path") from None
        except Exception as e:  # truncated zip, bad header, object array, not an npz ...
            raise _corrupt(path, " ".join(str(e).split()) or type(e).__name__) from None
        try:
            if str(arrays["format"]) != FORMAT or int(arrays["version"]) != VERSION:
                raise ValueError(f"format {arrays['format']} version {arrays['version']}")
            return cls._from(
                int(arrays["capacity"]), arrays["patterns"], int(arrays["unknown_cells"])
            )
        except (KeyError, ValueError, TypeError, UserError) as e:
            raise _corrupt(path, " ".join(str(e).split())) from None

    def to_meta(self) -> dict[str, Any]:
        """The vocabulary as JSON-safe values, for a checkpoint's meta."""
        with self._lock:
            patterns = self.patterns
            unknown = self.unknown_cells
        return {
            "capacity": self.capacity,
            "unknown_cells": unknown,
            "patterns": base64.b64encode(patterns.tobytes()).decode("ascii"),
        }

    @classmethod
    def from_meta(cls, meta: object, source: object) -> TileVocabulary:
        """The vocabulary `to_meta` wrote; UserError naming `source` if it is malformed."""
        try:
            if not isinstance(meta, dict):
                raise ValueError("not a mapping")
            raw = base64.b64decode(str(meta["patterns"]), validate=True)
            if len(raw) % PATTERN_BYTES:
                raise ValueError(f"{len(raw)} pattern bytes, not a multiple of {PATTERN_BYTES}")
            patterns = np.frombuffer(raw, np.uint8).reshape(-1, PATTERN_BYTES)
            return cls._from(int(meta["capacity"]), patterns, int(meta["unknown_cells"]))
        except (KeyError, ValueError, TypeError, UserError) as e:
            raise _corrupt(source, " ".join(str(e).split())) from None

    @classmethod
    def _from(cls, capacity: int, patterns: np.ndarray, unknown_cells: int) -> TileVocabulary:
        if patterns.dtype != np.uint8 or patterns.ndim != 2 or patterns.shape[1] != PATTERN_BYTES:
            raise ValueError(
                f"patterns are {patterns.dtype} {patterns.shape}, expected uint8 (n, 16)"
            )
        if len(patterns) >= capacity:
            raise ValueError(f"{len(patterns)} patterns do not fit a capacity of {capacity}")
        if unknown_cells < 0:
            raise ValueError(f"unknown_cells is {unknown_cells}")
        vocab = cls(capacity)
        for row in patterns:
            key = row.tobytes()
            if key in vocab._ids:
                raise ValueError("a pattern appears twice")
            vocab._learn(key)
        vocab.unknown_cells = unknown_cells
        return vocab

    def translation(self, other: TileVocabulary) -> np.ndarray:
        """uint16 (capacity,): for each of ``other``'s token ids, the id this vocabulary gives
        the same pattern, learning the patterns it lacks while there is room (UNKNOWN beyond,
        counted). ``table[tokens]`` renumbers another run's grids into this vocabulary, so a
        model can be scored on episodes whose vocabulary grew in another order."""
        table = np.zeros(other.capacity, np.uint16)  # ids not given out stay UNKNOWN
        with self._lock:
            for token, row in enumerate(other.patterns, start=1):
                table[token] = self._token(row.tobytes())
        return table

    def adopt(self, other: TileVocabulary, what: str) -> None:
        """Takes the patterns `other` knows beyond this one's, when one vocabulary begins as the
        other does (both grew from the same start); UserError naming `what` otherwise."""
        if other.capacity != self.capacity:
            raise UserError(
                f"{what} has a tile capacity of {other.capacity}, this run's is {self.capacity}; "
                "set world_model.tile_capacity to match or start another run"
            )
        mine, theirs = self.patterns, other.patterns
        n = min(len(mine), len(theirs))
        if not np.array_equal(mine[:n], theirs[:n]):
            raise UserError(
                f"{what} numbers tile patterns differently from this run's "
                "vocabulary; use a checkpoint and replay of the same run"
            )
        with self._lock:
            for row in theirs[n:]:
                self._learn(row.tobytes())
            self.unknown_cells = max(self.unknown_cells, other.unknown_cells)


def _corrupt(source: object, reason: str) -> UserError:
    return UserError(f"{source} is not a valid tile vocabulary ({reason}); delete it or restore it")
