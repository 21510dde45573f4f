"""A person's demonstrations as a run keeps them, and reading them back for behaviour cloning.

A run keeps the steps a person played (``pokedreamer play``, or "take control" in the dashboard)
in two places side by side:

    demos/         the observations, as a replay of their own (chunk files, replay.py): each
                   row is the screen and GameState vector a press led to, and that press
    demos.jsonl    one line per row, in the same order: the press, the episode and step it was
                   made at, and the subgoal the planner had set when the person pressed it;
                   each session of the loop begins with a line naming the format

A row's press was chosen on the row before it, so the pairs to learn from are (row t, the press
stored with row t + 1) wherever row t + 1 is the very next step of the same episode. A person who
hands control back and takes it again leaves a gap, which starts a new stretch.
"""

from __future__ import annotations

import json
import re
import tomllib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from pokedreamer.config import EnvSettings
from pokedreamer.env.frames import unpack_frames
from pokedreamer.errors import (
    UserError,
    check_format_version,
    error_line,
    one_line,
    validation_summary,
)
from pokedreamer.planner.subgoals import Subgoal
from pokedreamer.world_model.replay import FIELDS

FOLDER = "demos"
LOG = "demos.jsonl"
FORMAT = "pokedreamer-demos"
VERSION = 1
"""The layout of demos.jsonl this code writes."""
OLDEST_VERSION = 1
CHANGES: dict[int, str] = {1: "demos.jsonl keeps each step's subgoal beside demos/"}

_CHUNK = re.compile(r"chunk-(\d+)-(\d+)\.npz")
_SUBGOAL: TypeAdapter[Any] = TypeAdapter(Subgoal)


class DemoLine(BaseModel):
    """One step of demos.jsonl."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    episode: int
    episode_step: int
    action: int
    subgoal: dict[str, Any] | None


def log_path(folder: Path) -> Path:
    """demos.jsonl beside the ``demos/`` replay folder."""
    return folder.with_name(LOG)


class DemoLog:
    """Writes demos.jsonl. Lines wait until ``write``, which the caller makes at the moments
    the replay writes its rows, so that the two files hold the same steps."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines: list[str] = []
        self._started = False

    def add(self, episode: int, episode_step: int, action: int, subgoal: Any | None) -> None:
        if not self._started:
            self._started = True
            self._lines.append(json.dumps({"format": FORMAT, "version": VERSION}))
        dumped = subgoal.model_dump() if subgoal is not None else None
        line = {"episode": episode, "episode_step": episode_step, "action": action,
                "subgoal": dumped}  # fmt: skip
        self._lines.append(json.dumps(line))

    def write(self) -> None:
        if not self._lines:
            return
        text = "".join(line + "\n" for line in self._lines)
        self._lines = []
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)


def chunk_files(folder: Path) -> list[Path]:
    """The replay's chunk files, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m[2]), p) for p in folder.iterdir() if (m := _CHUNK.fullmatch(p.name))]
    return [path for _, path in sorted(found)]


def recorded_steps(folder: Path) -> int:
    """The steps the ``demos/`` folder holds, read from the chunks' headers; an unreadable
    chunk counts none (``read_demos`` names it)."""
    total = 0
    for path in chunk_files(folder):
        try:
            with np.load(path, allow_pickle=False) as chunk:
                total += len(chunk["actions"])
        except Exception:  # noqa: BLE001 (a count for the dashboard; reading says what is wrong)
            continue
    return total


@dataclass(frozen=True)
class Demos:
    """A person's steps, in order, and the pairs to learn from."""

    frames: np.ndarray
    """(n, 144, 160) uint8 shade indices."""
    vectors: np.ndarray
    """(n, 30) float32 GameState vectors."""
    actions: np.ndarray
    """(n,) int64: the press that led to each row."""
    starts: np.ndarray
    """(n,) bool: a stretch begins here (an episode's start or a gap), so the filter resets."""
    subgoals: list[Any]
    """The subgoal of each row (None for none)."""
    labels: np.ndarray
    """(n,) int64: the press made on each row, -1 where the next row is not its next step."""

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def pairs(self) -> int:
        return int((self.labels >= 0).sum())

    @classmethod
    def join(cls, parts: Sequence[Demos]) -> Demos:
        return cls(
            np.concatenate([p.frames for p in parts]), np.concatenate([p.vectors for p in parts]),
            np.concatenate([p.actions for p in parts]), np.concatenate([p.starts for p in parts]),
            [s for p in parts for s in p.subgoals], np.concatenate([p.labels for p in parts]),
        )  # fmt: skip


def load_demos(names: Sequence[str], runs_dir: Path, buttons: Sequence[str]) -> Demos:
    """The demonstrations of every ``--demos`` run, in the order given."""
    demos = Demos.join([read_demos(find_run(name, runs_dir), buttons) for name in names])
    if demos.pairs == 0:
        raise UserError(
            f"{', '.join(names)}: {len(demos)} demonstration steps but no two in a row to learn "
            "from; play a few more steps"
        )
    return demos


def find_run(name: str, runs_dir: Path) -> Path:
    """A ``--demos`` argument as a folder: a run under ``runs_dir``, else a path."""
    for path in (runs_dir / name, Path(name)):
        if path.is_dir():
            return path
    raise UserError(f"--demos {name}: no run {name} in {runs_dir} and no such folder; check it")


def read_demos(run: Path, buttons: Sequence[str]) -> Demos:
    """The demonstrations of the run folder ``run``, played with ``buttons`` (UserError, one
    line, for none, another action set, another format or a damaged file)."""
    folder = run / FOLDER
    chunks = chunk_files(folder)
    log = log_path(folder)
    if not chunks:
        raise UserError(
            f"{run} has no demonstrations: record some with pokedreamer play, or press h in "
            "the dashboard to take control"
        )
    recorded = _run_buttons(run)
    if list(recorded) != list(buttons):
        raise UserError(
            f"{run}'s demonstrations were played with the buttons {','.join(recorded)}, these "
            f"settings have {','.join(buttons)}: use the env settings they were made with"
        )
    rows = [_read_chunk(path) for path in chunks]
    data = {name: np.concatenate([r[name] for r in rows]) for name in FIELDS}
    if not log.is_file():
        raise UserError(
            f"{folder} holds {len(data['actions'])} steps but {log} is missing (an older "
            "pokedreamer kept no subgoals with them): record the demonstrations again"
        )
    lines, session_starts = _read_log(log)
    n = len(data["actions"])
    # The replay drops its oldest chunks past its capacity; the log keeps every line.
    dropped = max(len(lines) - n, 0)
    lines, session_starts = lines[dropped:], session_starts[dropped:]
    actions = data["actions"].astype(np.int64)
    logged = np.array([line.action for line in lines], dtype=np.int64)
    if len(lines) != n or not np.array_equal(actions, logged):
        raise UserError(
            f"{folder} and {log} disagree ({n} steps against {len(lines)} lines): a run "
            "stopped between writing them; record the demonstrations again"
        )
    if actions.size and int(actions.max()) >= len(buttons):
        raise UserError(
            f"{folder} holds a press {int(actions.max())} beyond its {len(buttons)} buttons"
        )
    follows = np.array(
        [False]
        + [
            b.episode == a.episode and b.episode_step == a.episode_step + 1
            for a, b in zip(lines, lines[1:], strict=False)
        ]
    )
    starts = data["is_first"] | ~follows | np.array(session_starts)
    labels = np.where(np.append(~starts[1:], False), np.append(actions[1:], -1), -1)
    return Demos(
        frames=unpack_frames(data["frames"]), vectors=data["states"].astype(np.float32),
        actions=actions, starts=starts, subgoals=[_subgoal(line, log) for line in lines],
        labels=labels.astype(np.int64),
    )  # fmt: skip


def _run_buttons(run: Path) -> list[str]:
    """The actions the run was played with, from its saved settings."""
    saved = run / "config.toml"
    try:
        env = tomllib.loads(saved.read_text(encoding="utf-8")).get("env", {})
        return EnvSettings.model_validate(env).action_names
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as e:
        raise UserError(
            f"{saved} does not say which buttons the demonstrations used: {error_line(e)}"
        ) from None


def _read_chunk(path: Path) -> dict[str, np.ndarray]:
    """One chunk's fields, checked against the replay's layout."""
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is damaged (not an .npz archive): remove it")
    try:
        with np.load(path, allow_pickle=False) as chunk:
            data = {name: chunk[name] for name in chunk.files}
    except Exception as e:  # noqa: BLE001 (zip, header and pickle errors alike mean damaged)
        raise UserError(f"{path} is damaged ({one_line(error_line(e), 80)}): remove it") from None
    for name, (dtype, shape) in FIELDS.items():
        array = data.get(name)
        if array is None or array.dtype != dtype or array.shape[1:] != shape:
            raise UserError(
                f"{path} is not a demonstration chunk of this format ({name} is "
                f"{'missing' if array is None else f'{array.dtype} {array.shape}'}): remove it"
            )
    if len({len(data[name]) for name in FIELDS}) != 1:
        raise UserError(f"{path} is damaged (its fields differ in length): remove it")
    return data


def _read_log(log: Path) -> tuple[list[DemoLine], list[bool]]:
    """demos.jsonl's steps, and for each whether a session began with it. An unfinished last
    line (a run killed while writing it) is left out, as its row never reached the replay."""
    text = log.read_text(encoding="utf-8")
    raw = text.split("\n")
    if raw and raw[-1] == "":
        raw.pop()
    elif raw:
        raw.pop()  # no newline after it: cut short
    lines: list[DemoLine] = []
    starts: list[bool] = []
    new_session = False
    for number, line in enumerate(raw, 1):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            if "format" in record:
                if record["format"] != FORMAT:
                    raise ValueError(f"format {record['format']!r}")
                check_format_version(
                    int(record.get("version", 0)), VERSION, OLDEST_VERSION, CHANGES,
                    subject=f"{log} has", reads="reads", open_with="train on",
                )  # fmt: skip
                new_session = True
                continue
            lines.append(DemoLine.model_validate(record))
        except ValidationError as e:
            raise UserError(
                f"{log} line {number} is not a demonstration step ({validation_summary(e)})"
            ) from None
        except (ValueError, TypeError) as e:
            raise UserError(
                f"{log} line {number} is not a demonstration step ({one_line(error_line(e), 80)})"
            ) from None
        starts.append(new_session)
        new_session = False
    return lines, starts


def _subgoal(line: DemoLine, log: Path) -> Any | None:
    if line.subgoal is None:
        return None
    try:
        return _SUBGOAL.validate_python(line.subgoal)
    except ValidationError as e:
        raise UserError(
            f"{log} holds a subgoal this pokedreamer cannot read: {one_line(e, 80)}"
        ) from None
