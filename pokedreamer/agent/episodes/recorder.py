"""Writes a run's episodes step by step (the files are described in ``layout``).

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
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pydantic_core

from pokedreamer.agent.episodes.layout import (
    FORMAT_VERSION,
    FRAMES,
    META,
    PLANS,
    STEPS,
    SUMMARY,
    episode_folder_name,
    state_to_json,
)
from pokedreamer.env.frames import FRAME_SHAPE, pack_frames
from pokedreamer.env.state import GameState
from pokedreamer.files import fsync_directory, write_atomic
from pokedreamer.rundir import RunDir

if TYPE_CHECKING:
    from pokedreamer.config import Settings
    from pokedreamer.env.rom import Rom


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
