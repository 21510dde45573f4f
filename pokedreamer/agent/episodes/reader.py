"""Reads recorded episodes back (the files are described in ``layout``), live ones included:
a reader counts only the steps whose line and frame are both complete.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np
from pydantic import ValidationError

from pokedreamer.agent.episodes.layout import FRAMES, META, PLANS, STEPS, SUMMARY, state_from_json
from pokedreamer.env.frames import PACKED_FRAME_BYTES, unpack_frames
from pokedreamer.env.state import GameState
from pokedreamer.errors import UserError, dotted, error_line, validation_summary
from pokedreamer.rundir import RunDir


def _numbered(folder: Path) -> dict[int, Path]:
    """The episode folders under ``folder`` by number; anything else there is ignored."""
    if not folder.is_dir():
        return {}
    return {int(p.name): p for p in folder.iterdir() if p.name.isdecimal() and p.is_dir()}


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One line of steps.jsonl, its state rebuilt."""

    index: int
    time: float
    action: int | None
    reward: float
    terms: dict[str, float]
    state: GameState
    subgoal: str | None
    extra: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class EpisodeInfo:
    """What ``list_episodes`` tells about one episode without reading its frames."""

    number: int
    path: Path
    steps: int
    start_time: float | None
    summary: dict[str, Any] | None
    #: Why the episode cannot be read, or None.
    error: str | None = None

    @property
    def ended(self) -> bool:
        return self.summary is not None


def _read_json(path: Path, folder: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise UserError(f"not a recorded episode: {folder} has no {path.name}") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"corrupt episode {folder}: cannot read {path.name} ({exc})") from None
    if not isinstance(value, dict):
        raise UserError(f"corrupt episode {folder}: {path.name} is not a JSON object")
    return value


def _complete_lines(path: Path, folder: Path) -> bytes:
    """The file up to its last newline: a line cut short by a crash is dropped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"corrupt episode {folder}: {path.name} is missing") from None
    except OSError as exc:
        raise UserError(f"corrupt episode {folder}: cannot read {path.name} ({exc})") from None
    return data[: data.rfind(b"\n") + 1]


_CHUNK = 1 << 20


def _count_lines(path: Path, folder: Path, most: int) -> int:
    """Complete lines in the file, up to ``most``; read in chunks, so that a long episode is
    never held in memory whole, and no further than ``most`` lines need."""
    count = 0
    try:
        with path.open("rb") as fh:
            while count < most and (chunk := fh.read(_CHUNK)):
                count += chunk.count(b"\n")
    except FileNotFoundError:
        raise UserError(f"corrupt episode {folder}: {path.name} is missing") from None
    except OSError as exc:
        raise UserError(f"corrupt episode {folder}: cannot read {path.name} ({exc})") from None
    return min(count, most)


def _parse_lines(data: bytes, name: str, folder: Path) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(data.splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise UserError(f"corrupt episode {folder}: {name} line {number}: {exc}") from None
        if not isinstance(record, dict):
            raise UserError(f"corrupt episode {folder}: {name} line {number} is not an object")
        records.append(record)
    return records


def _why(exc: Exception) -> str:
    """One line about a bad step record."""
    if isinstance(exc, ValidationError):  # its str() is many lines: the first error, others counted
        return validation_summary(exc, lambda loc: f"state.{dotted(loc)}", most=1)
    if isinstance(exc, KeyError):
        return f"no {exc} field"
    return error_line(exc)


def _frame_count(folder: Path) -> int:
    try:
        return (folder / FRAMES).stat().st_size // PACKED_FRAME_BYTES  # drops a partial record
    except FileNotFoundError:
        raise UserError(f"corrupt episode {folder}: {FRAMES} is missing") from None


class EpisodeFrames(Sequence[np.ndarray]):
    """An episode's frames, unpacked one at a time from a memory map of frames.bin."""

    def __init__(self, path: Path, count: int) -> None:
        self._packed: np.ndarray = (
            np.memmap(path, np.uint8, "r", shape=(count, PACKED_FRAME_BYTES))
            if count
            else np.zeros((0, PACKED_FRAME_BYTES), np.uint8)  # numpy cannot map 0 bytes
        )

    def __len__(self) -> int:
        return len(self._packed)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[np.ndarray]: ...
    def __getitem__(self, index: int | slice) -> Any:
        """Frame i as a fresh uint8 (144, 160) array; a slice gives a (k, 144, 160) array."""
        return unpack_frames(np.asarray(self._packed[index]))

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self[i]


class EpisodeReader:
    """A recorded episode, read as it was when opened (a live one keeps growing on disk).

    A folder that is missing or is not an episode raises a one-line UserError naming it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise UserError(f"episode not found: {self.path}")
        self.meta = _read_json(self.path / META, self.path)
        summary = self.path / SUMMARY
        self.summary: dict[str, Any] | None = (
            _read_json(summary, self.path) if summary.exists() else None
        )
        # Steps are those with both their line and their frame. Lines are read from disk when
        # asked for, and never past this count: a trailing partial line is not looked at.
        self._count = _count_lines(self.path / STEPS, self.path, _frame_count(self.path))

    @property
    def number(self) -> int:
        return int(self.meta.get("episode", self.path.name))

    @property
    def ended(self) -> bool:
        return self.summary is not None

    def __len__(self) -> int:
        """Complete steps: those with both their line and their frame."""
        return self._count

    def frames(self) -> EpisodeFrames:
        return EpisodeFrames(self.path / FRAMES, self._count)

    def frame(self, i: int) -> np.ndarray:
        if not 0 <= i < self._count:
            raise IndexError(f"frame {i} out of range: the episode has {self._count} steps")
        with (self.path / FRAMES).open("rb") as fh:
            fh.seek(i * PACKED_FRAME_BYTES)
            packed = np.frombuffer(fh.read(PACKED_FRAME_BYTES), np.uint8)
        return unpack_frames(packed)

    def steps(self) -> list[StepRecord]:
        return list(self.iter_steps())

    def iter_steps(self) -> Iterator[StepRecord]:
        """The steps one by one, read as they are needed."""
        with (self.path / STEPS).open("rb") as fh:
            for i, line in zip(range(self._count), fh, strict=False):
                try:
                    r = json.loads(line)
                    if r["i"] != i:
                        raise ValueError(f"its index is {r['i']}")
                    record = StepRecord(
                        index=i,
                        time=r["t"],
                        action=r["action"],
                        reward=r["reward"],
                        terms=r["terms"],
                        state=state_from_json(r["state"]),
                        subgoal=r["subgoal"],
                        extra=r.get("extra"),
                    )
                except (KeyError, TypeError, ValueError) as exc:
                    raise UserError(
                        f"corrupt episode {self.path}: {STEPS} line {i + 1}: {_why(exc)}"
                    ) from None
                yield record

    def plans(self) -> list[dict[str, Any]]:
        """The planner trace: each PlanRecord as a dict of its fields."""
        return _parse_lines(_complete_lines(self.path / PLANS, self.path), PLANS, self.path)


def list_episodes(run: RunDir | str | Path) -> list[EpisodeInfo]:
    """A run's episodes by number. An unreadable one is listed with ``error`` set, not raised."""
    root = run.episodes if isinstance(run, RunDir) else RunDir(Path(run)).episodes
    infos = []
    for number, folder in sorted(_numbered(root).items()):
        try:
            meta = _read_json(folder / META, folder)
            summary_path = folder / SUMMARY
            summary = _read_json(summary_path, folder) if summary_path.exists() else None
            steps = summary.get("steps") if summary else None
            if not isinstance(steps, int):  # a live or cut-short episode: count what is there
                steps = _count_lines(folder / STEPS, folder, _frame_count(folder))
        except UserError as exc:
            infos.append(EpisodeInfo(number, folder, 0, None, None, error=str(exc)))
            continue
        infos.append(EpisodeInfo(number, folder, steps, meta.get("start_time"), summary))
    return infos


def open_episode(run: RunDir, number: int | None = None) -> EpisodeReader:
    """Episode ``number`` of a run (default: the latest), or a UserError saying what there is."""
    numbers = _numbered(run.episodes)
    if not numbers:
        raise UserError(f"no recorded episodes in {run.path} ({run.episodes} is empty or missing)")
    if number is None:
        number = max(numbers)
    if number not in numbers:
        have = sorted(numbers)
        raise UserError(
            f"episode {number} not found in {run.episodes} (it has {len(have)}, numbered "
            f"{have[0]} to {have[-1]})"
        )
    return EpisodeReader(numbers[number])
