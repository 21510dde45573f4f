"""Recorded episodes: ``runs/<name>/episodes/<n>/``, written step by step and read back.

    meta.json     written once at the start: start time, seed, ROM, settings summary
    frames.bin    packed frames (pokedreamer.env.frames), 5,760 bytes each: frame i at i*5760
    steps.jsonl   one JSON object per step: action, reward and its terms, GameState, subgoal
    plans.jsonl   the planner's trace, one PlanRecord per line
    summary.json  written at the end; its absence means the episode was cut short

Step i pairs frame i with line i of steps.jsonl. The first step of an episode is usually the reset
observation, recorded with ``action=None`` and reward 0.

Crash safety: every frame and line is handed to the OS before ``step`` returns, so a killed
process leaves everything up to its last step readable. The reader drops a trailing partial line
or frame and counts min(frames, lines) steps. There is no fsync per step (it would cost
milliseconds); ``end`` fsyncs, so only a power cut can lose a live episode's last moments.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import pydantic_core
from pydantic import ValidationError

from pokedreamer.env.frames import FRAME_SHAPE, PACKED_FRAME_BYTES, pack_frames, unpack_frames
from pokedreamer.env.state import GameState
from pokedreamer.errors import UserError
from pokedreamer.files import fsync_directory, write_atomic
from pokedreamer.rundir import RunDir

if TYPE_CHECKING:
    from pokedreamer.config import Settings
    from pokedreamer.env.rom import Rom

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


def episode_meta(
    settings: Settings | None = None, rom: Rom | None = None, **more: Any
) -> dict[str, Any]:
    """The usual ``meta.json`` content for ``EpisodeRecorder.start``: seed, ROM and settings.

    Secrets stay out: the API key is dropped, and pydantic masks any other SecretStr.
    """
    meta: dict[str, Any] = {}
    if settings is not None:
        meta["seed"] = settings.env.seed
        meta["settings"] = settings.model_dump(mode="json", exclude={"planner": {"api_key"}})
    if rom is not None:
        meta["rom"] = {
            "title": rom.title,
            "game": rom.game,
            "sha1": rom.sha1,
            "path": str(rom.path),
        }
    meta.update(more)
    return meta


# --- writing ---------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    # Only called for what the encoder cannot handle itself, so the common case costs nothing.
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"cannot record a {type(value).__name__} in an episode log")


def _dumps(record: Any) -> bytes:
    # pydantic-core's encoder writes the same compact UTF-8 JSON as json.dumps(separators=(",",
    # ":"), ensure_ascii=False) about 3x faster (~4 µs a step record), which is most of the
    # recorder's budget.
    return pydantic_core.to_json(record, bytes_mode="hex", fallback=_json_default) + b"\n"


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


def _write_all(fh: Any, data: Any) -> None:
    """One write call in the usual case. An unbuffered write may take less than all (a full
    disk, a signal): the rest is retried, or an error raised."""
    view = memoryview(data).cast("B")
    written = fh.write(view)
    while written is not None and written < len(view):
        view = view[written:]
        written = fh.write(view)
        if not written:
            raise OSError(f"could not write to {fh.name}")


_CLAIM_TRIES = 1000  # other recorders racing for numbers; only a broken folder exhausts it


def _numbers(folder: Path) -> set[int]:
    """Every number taken under ``folder``, by a folder or by anything else of that name."""
    return {int(p.name) for p in folder.iterdir() if p.name.isdecimal()}


def _numbered(folder: Path) -> dict[int, Path]:
    """The episode folders under ``folder`` by number; anything else there is ignored."""
    if not folder.is_dir():
        return {}
    return {int(p.name): p for p in folder.iterdir() if p.name.isdecimal() and p.is_dir()}


class EpisodeRecorder:
    """Writes a run's episodes, one at a time: ``start``, ``step``/``plan`` many times, ``end``.

    Files stay open between steps and are written unbuffered, so each step costs one pack and two
    write calls. Not thread-safe for ``step``; ``plan`` may come from the planner's thread.
    """

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self.number: int | None = None
        self.path: Path | None = None
        self.steps = 0
        self._frames: Any = None
        self._steps: Any = None
        self._plans: Any = None
        self._plan_lock = threading.Lock()

    @property
    def recording(self) -> bool:
        return self._steps is not None

    def start(self, episode_meta: Mapping[str, Any] | None = None) -> int:
        """Opens the next free episode number and returns it."""
        if self.recording:
            raise RuntimeError(f"episode {self.number} is still being recorded: end it first")
        root = self.run.episodes
        root.mkdir(parents=True, exist_ok=True)
        meta = {**(episode_meta or {}), "format": FORMAT_VERSION, "start_time": time.time()}
        # The episode is built in a hidden folder and renamed into place, so a numbered folder
        # always has its meta.json and empty logs; a crash here leaves only a hidden folder.
        # The rename fails if another recorder took the number first (its folder is not empty),
        # and then the next number is tried.
        # (Not tempfile.mkdtemp: its folder would keep mode 0700 after the rename.)
        pending = root / f".new-{os.getpid()}-{secrets.token_hex(4)}"
        pending.mkdir()
        for name in (FRAMES, STEPS, PLANS):
            (pending / name).touch()
        for _ in range(_CLAIM_TRIES):
            number = max(_numbers(root), default=0) + 1
            meta["episode"] = number
            write_atomic(pending / META, _dumps(meta), ".tmp")
            target = root / episode_folder_name(number)
            try:
                os.rename(pending, target)
                break
            except OSError:
                if not target.exists():
                    raise
        else:
            raise OSError(f"could not claim an episode number in {root}")
        self.number, self.path, self.steps = number, target, 0
        self._frames = (target / FRAMES).open("ab", buffering=0)
        self._steps = (target / STEPS).open("ab", buffering=0)
        self._plans = (target / PLANS).open("ab", buffering=0)
        return number

    def step(
        self,
        frame: np.ndarray,
        action: int | None,
        reward: float,
        terms: Mapping[str, float],
        state: GameState,
        subgoal: str | None,
        extra: Mapping[str, Any] | None = None,
    ) -> int:
        """Appends one step (the frame and state seen, the action that led there and its reward)
        and returns its index."""
        if self._steps is None:
            raise RuntimeError("no episode is being recorded: call start() first")
        if not isinstance(frame, np.ndarray) or frame.shape != FRAME_SHAPE:
            shape = getattr(frame, "shape", type(frame).__name__)
            raise ValueError(f"a step's frame must be one (144, 160) screen, got {shape}")
        record: dict[str, Any] = {
            "i": self.steps,
            "t": time.time(),
            "action": None if action is None else int(action),
            "reward": float(reward),
            "terms": {name: float(value) for name, value in terms.items()},
            "state": state_to_json(state),
            "subgoal": subgoal,
        }
        if extra is not None:
            record["extra"] = extra
        line = _dumps(record)  # before any write: an unencodable step must not leave a lone frame
        # Frame first, line second: a line on disk then always has its frame behind it.
        _write_all(self._frames, pack_frames(frame))
        _write_all(self._steps, line)
        self.steps += 1
        return self.steps - 1

    def plan(self, record: Any) -> None:
        """Appends a planning event: a PlanRecord (its ``json()``, verbatim) or a dict."""
        if self._plans is None:
            raise RuntimeError("no episode is being recorded: call start() first")
        if hasattr(record, "json"):
            text = record.json()
        else:
            text = json.dumps(record, ensure_ascii=False, default=_json_default)
        if "\n" in text:
            raise ValueError("a plan record must encode to a single line of JSON")
        data = (text + "\n").encode("utf-8")
        with self._plan_lock:
            _write_all(self._plans, data)

    def end(self, summary: Mapping[str, Any] | None = None) -> Path:
        """Syncs the logs to disk and writes ``summary.json`` (with ``steps`` and ``end_time``)."""
        if self.path is None or self._steps is None:
            raise RuntimeError("no episode is being recorded: call start() first")
        path = self.path
        for fh in (self._frames, self._steps, self._plans):
            os.fsync(fh.fileno())
        self.close()
        record = {**(summary or {}), "steps": self.steps, "end_time": time.time()}
        write_atomic(path / SUMMARY, _dumps(record), ".tmp")
        fsync_directory(path)
        return path

    def close(self) -> None:
        """Closes the files without a summary: the episode reads as cut short."""
        with self._plan_lock:
            for fh in (self._frames, self._steps, self._plans):
                if fh is not None:
                    fh.close()
            self._frames = self._steps = self._plans = None

    def __enter__(self) -> EpisodeRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- reading ---------------------------------------------------------------------------------


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
    if isinstance(exc, ValidationError):  # its str() is many lines; the first error will do
        error = exc.errors()[0]
        return f"state.{'.'.join(map(str, error['loc']))}: {error['msg']}"
    if isinstance(exc, KeyError):
        return f"no {exc} field"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


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
