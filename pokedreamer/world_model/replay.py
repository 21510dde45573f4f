"""Replay: the world model's experience, kept as chunks of consecutive steps of one env each.

A step is what the agent saw on arriving somewhere and how it got there:

    field        stored as       bytes  meaning
    frames       uint8 (5760,)   5,760  the screen, 2 bits a pixel (`pack_frames`), or
    tiles        uint16 (18, 20)   720  the screen's cell tokens (env/tiles.py), in a tiles replay
    states       float16 (30,)      60  the GameState vector (values in [0, 1], so fp16 holds them)
    actions      uint8               1  the action that led here; 0 at an episode's first step
    rewards      float32             4  the reward received on arriving here
    is_first     bool                1  this step starts an episode
    is_terminal  bool                1  the episode ended here (nothing to bootstrap beyond it)

Each env ("stream") fills its own chunk of `chunk_length` steps, so envs that interleave their steps
never mix their sequences. A full chunk is written as `chunk-<stream>-<seq>.npz` (plain arrays,
`np.savez`; read back with `allow_pickle=False`, so a chunk file can never run code). `seq` is one
counter across all streams, so it orders chunks by age: eviction drops the lowest, resume keeps the
highest. A chunk is written to a `.tmp` file first and renamed over the final name, so a killed run
leaves either the old file or the new one, never half of one.

A replay holds one observation kind. A tiles replay (made with a `TileVocabulary`) stores each
screen as its tokens and keeps the vocabulary that gives them meaning beside its chunks, as
`tiles.npz`, written before any chunk that uses a token it adds; a directory of the other kind is
refused in one line, as the world model's checkpoint of the other kind is.

Sampling draws a start uniformly over every position where `length` steps fit inside one chunk,
finished or still filling. A sequence may cross an episode boundary inside a chunk (`is_first`
marks it), but never a chunk boundary, so it never splices two streams or two runs.

A sequence starts as an episode does when the agent acts: `is_first[:, 0]` is set and
`actions[:, 0]` is 0, whether or not the episode began there. The world model filters every
sampled sequence from its initial (zero) state; stepping that state with the step's real action,
as a sequence cut from the middle of an episode otherwise would, is a transition the model never
meets when acting, where a zero state only ever follows a reset. `cut` (B,) says which sequences
began mid-episode: their first posteriors have seen only a few frames, so the trainer does not
imagine from them (`world_model.trainer.with_context`).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pokedreamer.env.frames import FRAME_SHAPE, PACKED_FRAME_BYTES, pack_frames
from pokedreamer.env.state import VECTOR_FIELDS, VECTOR_SIZE
from pokedreamer.env.tiles import GRID_HW, TileVocabulary
from pokedreamer.errors import UserError

if TYPE_CHECKING:
    from pokedreamer.config import WorldModelSettings

logger = logging.getLogger(__name__)

# Per-step layout of every chunk, in memory and on disk: name -> (dtype, shape of one step).
FIELDS: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
    "frames": (np.dtype(np.uint8), (PACKED_FRAME_BYTES,)),
    "states": (np.dtype(np.float16), (VECTOR_SIZE,)),
    "actions": (np.dtype(np.uint8), ()),
    "rewards": (np.dtype(np.float32), ()),
    "is_first": (np.dtype(np.bool_), ()),
    "is_terminal": (np.dtype(np.bool_), ()),
}
TILE_FIELDS: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
    "tiles": (np.dtype(np.uint16), GRID_HW),
    **{name: field for name, field in FIELDS.items() if name != "frames"},
}
"""The layout of a tiles replay: the cell tokens in place of the packed frame."""
VOCABULARY_FILE = "tiles.npz"
"""A tiles replay's vocabulary, in its directory."""
MAX_ACTION = np.iinfo(np.uint8).max

_CHUNK_NAME = re.compile(r"chunk-(\d+)-(\d+)\.npz")
_TMP_SUFFIX = ".tmp"


def _pair_table() -> np.ndarray:
    # Two packed bytes -> their 8 pixels as one uint64, so unpacking a batch is one gather over
    # half as many (and twice as wide) elements as `unpack_frames` does: ~2x faster here, which is
    # most of what `sample` costs. The table (512 KiB) is built from each pair's bytes in memory
    # order, so it holds on either byte order.
    pairs = np.arange(1 << 16, dtype=np.uint16).view(np.uint8).reshape(-1, 2)
    shifts = np.arange(0, 8, 2, dtype=np.uint8)
    pixels = (pairs[:, :, None] >> shifts) & 3  # (65536, 2 bytes, 4 pixels), pixel 4k+j in bits 2j
    return np.ascontiguousarray(pixels.reshape(-1, 8)).view(np.uint64).ravel()


_PAIRS = _pair_table()


_MAP = VECTOR_FIELDS.index("map_id")
_CALM = VECTOR_FIELDS.index("battle_none")
# What the quest's stages and the subgoals' potentials read, beside the map and the battle: a
# POKéMON gained, a level, HP (either side's: a blow landed in a battle, a heal), a badge or an
# event flag. Each changes on few steps of play, and a model that rarely sees them learns them
# last, though the shaping pays for exactly these.
_READ = np.array(
    [_MAP, _CALM]
    + [VECTOR_FIELDS.index(f) for f in ("party_size", "lead_level", "hp_fraction")]
    + [VECTOR_FIELDS.index(f) for f in ("enemy_hp_fraction", "event_count")]
    + [i for i, f in enumerate(VECTOR_FIELDS) if f.startswith("badge_")]
)


def rare_steps(states: np.ndarray, is_first: np.ndarray) -> np.ndarray:
    """Which steps (..., T) bool change what the quest reads: the GameState (..., T,
    VECTOR_SIZE) differs there from the step before's in map_id, battle_none, party_size,
    lead_level, hp_fraction, enemy_hp_fraction, event_count or a badge, inside one episode
    (never step 0, nor an episode's first step)."""
    assert states.shape == (*is_first.shape, VECTOR_SIZE), (states.shape, is_first.shape)
    before, after = states[..., :-1, _READ], states[..., 1:, _READ]
    changed = (after != before).any(-1)
    rare = np.zeros(is_first.shape, bool)
    rare[..., 1:] = changed & ~is_first[..., 1:]
    return rare


def rare_rows(batch: dict[str, np.ndarray]) -> float:
    """The share of a sampled batch's sequences that hold a rare step (`rare_steps`)."""
    return float(rare_steps(batch["states"], batch["is_first"]).any(axis=-1).mean())


def map_rows(batch: dict[str, np.ndarray], map_id: int | None) -> float:
    """The share of a sampled batch's sequences holding a step on ``map_id`` (0 for None)."""
    if map_id is None:
        return 0.0
    on = np.rint(batch["states"][..., _MAP].astype(np.float32) * 255.0) == map_id
    return float(on.any(axis=-1).mean())


def training_batch(
    replay: Replay, settings: WorldModelSettings, rows: slice | None = None
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """A world-model training batch drawn as ``settings`` asks (its rare-step and map shares),
    and how it was drawn: ``rare_rows`` and ``rarest_map_rows`` for the metrics. ``rows``: a
    learner rank's share of the whole draw (``Replay.sample``)."""
    batch = replay.sample(
        settings.batch_size, settings.batch_length, rows=rows,
        event_share=settings.replay_event_share, map_share=settings.replay_map_share,
    )  # fmt: skip
    drawn = {"rare_rows": rare_rows(batch), "rarest_map_rows": map_rows(batch, replay.rarest_map())}
    return batch, drawn


def _unpack(packed: np.ndarray) -> np.ndarray:
    """uint8 (..., 5760) -> uint8 (..., 144, 160); the same result as `unpack_frames`."""
    # Fancy indexing measured a little faster here than np.take (which buffers `out=`). Most of
    # the time goes on writing 23.6 MB of fresh memory for a 16 x 64 batch, not on the lookups.
    pixels = _PAIRS[np.ascontiguousarray(packed).view(np.uint16)]
    return pixels.view(np.uint8).reshape(*packed.shape[:-1], *FRAME_SHAPE)


@dataclass(eq=False)
class _Chunk:
    stream: int
    seq: int
    data: dict[str, np.ndarray]  # each field with room for the chunk's capacity in steps
    size: int  # steps held (rows of `data` in use)
    open: bool  # still filling
    path: Path | None  # the file, once one has been written
    saved: int = 0  # steps the file holds
    events: np.ndarray | None = None  # rare_steps of the first `events_at` steps
    events_at: int = 0
    maps: np.ndarray | None = None  # the map id of each of the first `maps_at` steps
    maps_at: int = 0


class Replay:
    """Chunks of consecutive env steps, optionally persisted under `directory`; see the module doc.

    Past `capacity` steps, the oldest finished chunks are dropped whole and their files deleted, so
    the buffer holds at most `capacity` steps, and less than that by under one chunk. Open chunks
    (one per stream) are never dropped: with many streams and a small capacity they may exceed it.

    With `tiles`, a tiles replay: `add` tokenizes each screen with that vocabulary (growing it),
    and the vocabulary saved in `directory` is adopted into it first (`TileVocabulary.adopt`).

    Safe to share between one thread that adds and one that samples.
    """

    def __init__(
        self,
        directory: Path | None,
        capacity: int,
        chunk_length: int = 1024,
        seed: int = 0,
        tiles: TileVocabulary | None = None,
    ) -> None:
        if chunk_length < 1:
            raise UserError(f"replay chunk length must be at least 1, got {chunk_length}")
        if capacity < chunk_length:
            # Otherwise every chunk would be dropped the moment it finished.
            raise UserError(
                f"replay capacity ({capacity} steps) must be at least its chunk length "
                f"({chunk_length}); raise the capacity or shorten the chunks"
            )
        self.directory = directory
        self.vocabulary = tiles
        self.fields = FIELDS if tiles is None else TILE_FIELDS
        self.observation = "pixels" if tiles is None else "tiles"
        self._obs_field = "frames" if tiles is None else "tiles"
        self._vocabulary_saved = 0  # tokens the vocabulary file holds
        self.capacity = capacity
        self.chunk_length = chunk_length
        # Public so that a trainer can checkpoint and restore it for an exact resume.
        self.rng = np.random.default_rng(seed)
        self._chunks: list[_Chunk] = []  # oldest first (ascending seq)
        self._open: dict[int, _Chunk] = {}
        self._steps = 0
        self._next_seq = 0
        self._lock = threading.Lock()
        if directory is not None:
            self._load(directory)

    # --- adding -------------------------------------------------------------------------------

    def add(
        self,
        stream: int,
        frame: np.ndarray,
        state: np.ndarray,
        action: int,
        reward: float,
        is_first: bool,
        is_terminal: bool = False,
    ) -> None:
        """Appends one step of env `stream`: the frame and state it arrived at, and how."""
        if self.vocabulary is None:
            observed = pack_frames(frame)  # checks dtype, shape and 0-3 values
        else:
            observed = self.vocabulary.tokenize(frame)  # checks the same, via pack_frames
        state = np.asarray(state)
        if state.shape != (VECTOR_SIZE,):
            raise ValueError(f"state must have shape ({VECTOR_SIZE},), got {state.shape}")
        if not 0 <= action <= MAX_ACTION:
            raise ValueError(f"action must be in 0..{MAX_ACTION}, got {action}")
        if stream < 0:
            raise ValueError(f"stream must be a non-negative int, got {stream}")
        with self._lock:
            chunk = self._open.get(stream)
            if chunk is None:
                chunk = self._start_chunk(stream)
            i = chunk.size
            data = chunk.data
            data[self._obs_field][i] = observed
            data["states"][i] = state
            data["actions"][i] = action
            data["rewards"][i] = reward
            data["is_first"][i] = is_first
            data["is_terminal"][i] = is_terminal
            chunk.size += 1
            self._steps += 1
            if chunk.size == self.chunk_length:
                chunk.open = False
                del self._open[stream]
                self._save(chunk)
            if self._steps > self.capacity:
                self._evict()

    def _start_chunk(self, stream: int) -> _Chunk:
        data = {
            name: np.empty((self.chunk_length, *shape), dtype)
            for name, (dtype, shape) in self.fields.items()
        }
        chunk = _Chunk(stream, self._next_seq, data, 0, True, None)
        self._next_seq += 1
        self._chunks.append(chunk)  # the highest seq yet, so the list stays sorted
        self._open[stream] = chunk
        return chunk

    def _evict(self) -> None:
        i = 0
        while self._steps > self.capacity and i < len(self._chunks):
            chunk = self._chunks[i]
            if chunk.open:
                i += 1
                continue
            del self._chunks[i]
            self._steps -= chunk.size
            if chunk.path is not None:
                chunk.path.unlink(missing_ok=True)

    # --- sampling -----------------------------------------------------------------------------

    def num_sequences(self, length: int) -> int:
        """How many distinct sequences of `length` steps `sample` can draw from now."""
        with self._lock:
            return int(self._counts(length).sum())

    def sample(
        self,
        batch: int,
        length: int,
        packed: bool = False,
        rows: slice | None = None,
        event_share: float = 0.0,
        map_share: float = 0.0,
    ) -> dict[str, np.ndarray]:
        """`batch` sequences of `length` consecutive steps of one chunk each, uniformly at random;
        with `event_share`, that share of them (rounded, the first rows) drawn instead to hold a
        rare step (`rare_steps`) after their first, each such step as likely as another (a
        uniform draw while the replay holds none); with `map_share`, that share (rounded, the
        rows after those) drawn to hold a step on a map picked uniformly from the maps the
        replay holds, each of that map's steps as likely as another, so that a map seldom
        visited is learnt as well as one played on all the time.

        Returns frames uint8 (B, L, 144, 160) with shades 0-3 (a tiles replay: tiles uint16
        (B, L, 18, 20) instead), states float32 (B, L, 30),
        actions int64 (B, L), rewards float32 (B, L), is_first and is_terminal bool (B, L), and
        cut bool (B,). Each sequence starts as an episode does (module doc): is_first[:, 0] set,
        actions[:, 0] 0; cut marks those whose first step was not an episode's first.
        `packed=True` leaves frames as stored, uint8 (B, L, 5760) (see `pack_frames`): a trainer
        on a GPU can copy a quarter of the bytes and unpack there, skipping most of the cost here.
        `rows`: copy only these rows of the batch drawn (a learner rank's share): the generator
        draws the whole batch, so every rank's generator stays where one process's would be.
        """
        if batch < 1 or length < 1:
            raise ValueError(f"batch and length must be at least 1, got {batch} and {length}")
        with self._lock:
            counts = self._counts(length)
            ends = np.cumsum(counts)
            total = int(ends[-1]) if len(ends) else 0
            if total == 0:
                raise ValueError(
                    f"the replay holds no sequence of {length} steps yet ({self._steps} steps in "
                    f"{len(self._chunks)} chunks of up to {self.chunk_length}); check "
                    f"num_sequences() before sampling"
                )
            picks = self.rng.integers(0, total, size=batch)
            which = np.searchsorted(ends, picks, side="right")
            starts = picks - (ends[which] - counts[which])
            rare = round(batch * event_share)
            if rare:
                drawn = self._event_starts(length, rare)
                if drawn is not None:
                    which[:rare], starts[:rare] = drawn
            mapped = min(round(batch * map_share), batch - rare)
            if mapped:
                which[rare : rare + mapped], starts[rare : rare + mapped] = self._map_starts(
                    length, mapped
                )
            if rows is not None:
                which, starts = which[rows], starts[rows]
                batch = len(which)
            out = {
                name: np.empty((batch, length, *shape), dtype)
                for name, (dtype, shape) in self.fields.items()
            }
            # Copy under the lock (a chunk still filling may be written meanwhile); unpack after.
            for b, (c, s) in enumerate(zip(which.tolist(), starts.tolist(), strict=True)):
                data = self._chunks[c].data
                for name, array in out.items():
                    array[b] = data[name][s : s + length]
        cut = ~out["is_first"][:, 0]
        out["is_first"][:, 0] = True
        out["actions"][:, 0] = 0
        if self.vocabulary is None:
            observed = {"frames": out["frames"] if packed else _unpack(out["frames"])}
        else:
            observed = {"tiles": out["tiles"]}
        return {
            **observed,
            "states": out["states"].astype(np.float32),
            "actions": out["actions"].astype(np.int64),
            "rewards": out["rewards"],
            "is_first": out["is_first"],
            "is_terminal": out["is_terminal"],
            "cut": cut,
        }

    def _event_starts(self, length: int, n: int) -> tuple[np.ndarray, np.ndarray] | None:
        """`n` draws of (chunk index, start) of a sequence of `length` steps holding a rare step
        after its first, or None when no chunk holds one."""
        none = np.empty(0, np.int64)
        found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = [(none, none, none)]
        for c, chunk in enumerate(self._chunks):
            if chunk.size < length:
                continue
            events = self._events(chunk)
            first = np.maximum(events - (length - 1), 0)
            last = np.minimum(events - 1, chunk.size - length)
            fits = first <= last
            found.append((np.full(int(fits.sum()), c), first[fits], last[fits]))
        chunks, first, last = (np.concatenate(column) for column in zip(*found, strict=True))
        if len(chunks) == 0:
            return None
        k = self.rng.integers(0, len(chunks), size=n)
        return chunks[k], self.rng.integers(first[k], last[k] + 1)

    def _map_starts(self, length: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """`n` draws of (chunk index, start) of a sequence of `length` steps holding a step on a
        map drawn uniformly from those the replay's full-length chunks hold. Called only when a
        sequence exists (``sample`` has checked), so some map does."""
        chunks, steps, maps = [], [], []
        for c, chunk in enumerate(self._chunks):
            if chunk.size < length:
                continue
            on = self._maps(chunk)
            chunks.append(np.full(len(on), c))
            steps.append(np.arange(len(on)))
            maps.append(on)
        chunk_of, step, map_of = (np.concatenate(column) for column in (chunks, steps, maps))
        order = np.argsort(map_of, kind="stable")
        ids, first, count = np.unique(map_of[order], return_index=True, return_counts=True)
        pick = self.rng.integers(0, len(ids), size=n)
        at = order[first[pick] + self.rng.integers(0, count[pick])]
        c, anchor = chunk_of[at], step[at]
        sizes = np.array([self._chunks[i].size for i in c.tolist()], np.int64)
        low = np.maximum(anchor - (length - 1), 0)
        high = np.minimum(anchor, sizes - length)
        return c, self.rng.integers(low, high + 1)

    def rarest_map(self) -> int | None:
        """The map id the replay holds fewest steps on (the lowest id of a tie); None while it
        holds none. What ``replay_map_share`` is for: the batches' share of rows on it
        (``map_rows``) is logged as ``rarest_map_rows``."""
        with self._lock:
            counts = [np.bincount(self._maps(c), minlength=256) for c in self._chunks if c.size]
        if not counts:
            return None
        total = np.sum(counts, axis=0)
        held = np.flatnonzero(total)
        return int(held[np.argmin(total[held])])

    @staticmethod
    def _maps(chunk: _Chunk) -> np.ndarray:
        """The map id of each of the chunk's steps, read again only once it has grown."""
        if chunk.maps is None or chunk.maps_at != chunk.size:
            states = chunk.data["states"][: chunk.size, _MAP].astype(np.float32)
            chunk.maps, chunk.maps_at = np.rint(states * 255.0).astype(np.int64), chunk.size
        return chunk.maps

    def battle_maps(self) -> np.ndarray:
        """The map ids (sorted, unique) where the replay has seen a battle start."""
        with self._lock:
            found = [np.empty(0, np.int64)]
            for chunk in self._chunks:
                states = chunk.data["states"]
                events = self._events(chunk)
                started = states[events, _CALM] < states[events - 1, _CALM]
                found.append(self._maps(chunk)[events[started]])
            return np.unique(np.concatenate(found))

    @staticmethod
    def _events(chunk: _Chunk) -> np.ndarray:
        """The chunk's rare steps (indices), found again only once it has grown."""
        if chunk.events is None or chunk.events_at != chunk.size:
            data = chunk.data
            rare = rare_steps(data["states"][: chunk.size], data["is_first"][: chunk.size])
            chunk.events, chunk.events_at = np.flatnonzero(rare), chunk.size
        return chunk.events

    def _counts(self, length: int) -> np.ndarray:
        sizes = np.fromiter((c.size for c in self._chunks), np.int64, len(self._chunks))
        return np.maximum(sizes - (length - 1), 0)

    def __len__(self) -> int:
        return self._steps

    @property
    def bytes_per_step(self) -> int:
        """Memory a stored step takes: 5,827 bytes (5,760 of them the packed frame); 787 in a
        tiles replay (720 of them the tokens)."""
        return sum(dtype.itemsize * int(np.prod(shape)) for dtype, shape in self.fields.values())

    # --- persistence --------------------------------------------------------------------------

    def checkpoint_meta(self) -> dict[str, Any]:
        """What a checkpoint keeps so that its model's tokens mean something wherever it is
        loaded: a tiles replay's vocabulary (`TileVocabulary.to_meta`) under "tiles"."""
        return {} if self.vocabulary is None else {"tiles": self.vocabulary.to_meta()}

    def adopt_checkpoint(self, meta: dict[str, Any], source: object) -> None:
        """Grows a tiles replay's vocabulary to the one checkpoint `source` saved (its model
        names those tokens); UserError if the two number patterns differently."""
        if self.vocabulary is not None and "tiles" in meta:
            saved = TileVocabulary.from_meta(meta["tiles"], f"checkpoint {source}")
            self.vocabulary.adopt(saved, f"checkpoint {source}")

    def flush(self) -> None:
        """Writes the steps of chunks still filling, so that a run killed later loses few steps.

        Each open chunk is written under its final name and rewritten whole when it fills. A
        resumed Replay loads such a file as a finished (short) chunk and starts new chunks after
        it, so no step is held twice.
        """
        if self.directory is None:
            return
        with self._lock:
            self._save_vocabulary()
            for chunk in self._open.values():
                if chunk.size > chunk.saved:
                    self._save(chunk)

    def _save(self, chunk: _Chunk) -> None:
        if self.directory is None:
            return
        self._save_vocabulary()  # first: a chunk on disk never holds a token the file lacks
        path = self.directory / f"chunk-{chunk.stream}-{chunk.seq:09d}.npz"
        tmp = path.with_name(path.name + _TMP_SUFFIX)
        # An open file object, because np.savez appends ".npz" to a name that lacks it. No fsync:
        # the rename already survives a killed process, and a file that a power cut leaves
        # damaged is skipped on load like any corrupt chunk, whereas an fsync every chunk would
        # stall the env loop.
        with open(tmp, "wb") as f:
            np.savez(f, **{name: array[: chunk.size] for name, array in chunk.data.items()})
        os.replace(tmp, path)
        chunk.path = path
        chunk.saved = chunk.size

    def _save_vocabulary(self) -> None:
        vocabulary = self.vocabulary
        if self.directory is None or vocabulary is None:
            return
        if len(vocabulary) != self._vocabulary_saved:
            vocabulary.save(self.directory / VOCABULARY_FILE)
            self._vocabulary_saved = len(vocabulary)

    def _load(self, directory: Path) -> None:
        if directory.exists() and not directory.is_dir():
            raise UserError(f"replay directory {directory} is a file; move it or pick another run")
        directory.mkdir(parents=True, exist_ok=True)
        self._check_kind(directory)
        found: list[tuple[int, int, Path]] = []
        for path in sorted(directory.iterdir()):
            name = path.name
            if name == VOCABULARY_FILE:
                continue
            if name.endswith(_TMP_SUFFIX) and _CHUNK_NAME.fullmatch(name[: -len(_TMP_SUFFIX)]):
                path.unlink(missing_ok=True)  # a write that a killed run left half done
                continue
            match = _CHUNK_NAME.fullmatch(name)
            if match is None or not path.is_file():
                logger.warning("replay: ignoring %s: not a replay chunk file", path)
                continue
            stream, seq = int(match[1]), int(match[2])
            # Past every seq on disk, even unreadable ones, so no new chunk overwrites a file.
            self._next_seq = max(self._next_seq, seq + 1)
            found.append((seq, stream, path))

        # Newest first, keeping the longest run of newest chunks that fits, as eviction would.
        found.sort(reverse=True)
        kept: list[_Chunk] = []
        dropped = 0
        for seq, stream, path in found:
            if dropped:
                path.unlink(missing_ok=True)
                dropped += 1
                continue
            data = _read_chunk(path, self.fields)
            if data is None:
                continue
            size = len(data[self._obs_field])
            if self._steps + size > self.capacity:
                path.unlink(missing_ok=True)
                dropped += 1
                continue
            kept.append(_Chunk(stream, seq, data, size, False, path, size))
            self._steps += size
        self._chunks = kept[::-1]
        if dropped:
            logger.info(
                "replay: deleted the %d oldest chunks in %s: beyond capacity %d",
                dropped,
                directory,
                self.capacity,
            )

    def _check_kind(self, directory: Path) -> None:
        """Refuses a directory of the other observation kind; a tiles replay adopts the
        vocabulary saved there."""
        saved = directory / VOCABULARY_FILE
        if self.vocabulary is None:
            if saved.exists():
                raise UserError(
                    f"{directory} holds a tiles replay and world_model.observation is pixels; "
                    "set world_model.observation = tiles or pick another run"
                )
            return
        if saved.exists():
            self.vocabulary.adopt(TileVocabulary.load(saved), f"{saved}")
            self._vocabulary_saved = -1  # rewritten at the next save: it may have grown
        elif any(_CHUNK_NAME.fullmatch(p.name) for p in directory.iterdir()):
            raise UserError(
                f"{directory} holds a pixel replay (chunks without {VOCABULARY_FILE}) and "
                "world_model.observation is tiles; "
                "set world_model.observation = pixels or pick another run"
            )


def run_replay(directory: Path | None, settings: WorldModelSettings, seed: int = 0) -> Replay:
    """The replay `settings` call for: of tiles, with a vocabulary of `settings.tile_capacity`
    (grown from the one saved in `directory`), when world_model.observation is tiles."""
    tiles = TileVocabulary(settings.tile_capacity) if settings.observation == "tiles" else None
    return Replay(directory, settings.replay_capacity, settings.replay_chunk, seed, tiles)


def _read_chunk(
    path: Path, fields: dict[str, tuple[np.dtype, tuple[int, ...]]]
) -> dict[str, np.ndarray] | None:
    """A chunk file's arrays, or None (after one warning line) if it is not a valid chunk."""
    try:
        # allow_pickle=False: an object array raises instead of being unpickled.
        loaded = np.load(path, allow_pickle=False)
    except Exception as e:  # any failure to parse means the file is unusable; the run goes on
        _skip(path, e)
        return None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        _skip(path, "not an .npz archive")
        return None
    with loaded:
        if sorted(loaded.files) != sorted(fields):
            _skip(path, f"holds {sorted(loaded.files)}, expected {sorted(fields)}")
            return None
        try:
            data = {name: loaded[name] for name in fields}
        except Exception as e:  # truncated member, bad header, object array, ...
            _skip(path, e)
            return None
    first = data[next(iter(fields))]
    size = len(first) if first.ndim else 0
    if size < 1:
        _skip(path, "holds no steps")
        return None
    for name, (dtype, shape) in fields.items():
        array = data[name]
        if array.dtype != dtype or array.shape != (size, *shape):
            _skip(
                path,
                f"{name} is {array.dtype} {array.shape}, expected {dtype} {(size, *shape)}",
            )
            return None
    return data


def _skip(path: Path, reason: object) -> None:
    line = " ".join(str(reason).split())  # exception texts may span lines; the log gets one
    logger.warning("replay: skipping corrupt chunk %s: %s", path, line)
