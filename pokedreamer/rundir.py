"""A run directory, ``runs/<name>/``: everything a run leaves behind, and all that replay, export,
evaluation and the dashboard read.

    format.json     the layout's version: {"format": "pokedreamer-run", "version": 2}
    config.toml     the resolved settings (secrets left out)
    metrics.jsonl   one JSON object per logged update or episode
    events.out.tfevents.*   the same figures for TensorBoard (``tensorboard --logdir runs``)
    checkpoints/    safetensors + JSON pairs
    replay/         the world model's experience, in chunk files
    episodes/<n>/   recorded episodes

A folder without format.json is version 1: the same layout without that file.
Opening a run checks its version; making or reusing one writes the current version.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pokedreamer.errors import UserError, check_format_version
from pokedreamer.files import write_atomic

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

    from pokedreamer.config import Settings

FORMAT = "pokedreamer-run"
FORMAT_FILE = "format.json"
VERSION = 2
"""The run directory layout this code writes."""
OLDEST_VERSION = 1
"""The oldest layout this code still reads."""
CHANGES: dict[int, str] = {
    1: "config.toml, metrics.jsonl, checkpoints/, replay/ and episodes/",
    2: "format.json records the layout's version",
}
"""What each version brought: a refusal of an old run names the changes since its version."""
FLUSH_SECONDS = 10
"""How often TensorBoard's writer thread writes its queue out (and at close)."""
STEP_KEYS = ("step", "update")
"""A record's x axis in TensorBoard: its env step, else its update count."""

_writers: dict[Path, SummaryWriter] = {}
"""One TensorBoard writer per run folder in this process, however many RunDirs name it."""
_writers_lock = threading.Lock()
_tensorboard_missing = False

log = logging.getLogger(__name__)


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, settings: Settings, name: str | None = None) -> RunDir:
        """Makes (or reuses) ``runs_dir/name`` and saves the resolved settings in it."""
        name = name or settings.run.name or time.strftime("%Y%m%d-%H%M%S")
        run = cls.make(Path(settings.run.runs_dir) / name)
        (run.path / "config.toml").write_text(settings.to_toml(), encoding="utf-8")
        return run

    @classmethod
    def make(cls, path: Path) -> RunDir:
        """The folders of a run at ``path`` (made if missing, checked if there), without saving
        settings: for throwaway runs such as a benchmark's or an evaluation's."""
        run = cls(path)
        if run.path.is_dir():
            run.check_version()
        for folder in (run.path, run.checkpoints, run.replay, run.episodes):
            folder.mkdir(parents=True, exist_ok=True)
        if run.version() != VERSION:
            record = {"format": FORMAT, "version": VERSION}
            write_atomic(run.format_path, (json.dumps(record) + "\n").encode())
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run of a layout this code reads, or a UserError saying what to do."""
        run = cls(Path(path))
        if not run.path.is_dir():
            raise UserError(
                f"run directory not found: {run.path} (make one with pokedreamer collect)"
            )
        run.check_version()
        return run

    @property
    def format_path(self) -> Path:
        return self.path / FORMAT_FILE

    def version(self) -> int:
        """The layout's version: format.json's, 1 without one (UserError if it is unreadable)."""
        try:
            text = self.format_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return 1
        except OSError as exc:
            raise UserError(f"cannot read {self.format_path}: {exc.strerror}") from None
        try:
            record = json.loads(text)
        except ValueError:
            record = None
        ours = isinstance(record, dict) and record.get("format") == FORMAT
        version = record.get("version") if ours else None
        # type() rather than isinstance: JSON's true is not a version.
        if type(version) is int:
            return version
        raise UserError(
            f"{self.format_path} is not a pokedreamer run directory's format record "
            f'(expected {{"format": "{FORMAT}", "version": N}}); fix or remove it'
        )

    def check_version(self) -> None:
        """Refuses (UserError, one line) a layout newer than this code or older than it reads."""
        check_format_version(
            self.version(), VERSION, OLDEST_VERSION, CHANGES,
            subject=f"{self.path} is a run directory of", reads="reads", open_with="open",
        )  # fmt: skip

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def replay(self) -> Path:
        return self.path / "replay"

    @property
    def episodes(self) -> Path:
        return self.path / "episodes"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    def log_metrics(self, record: dict[str, Any]) -> None:
        """Appends one JSON line (each line is written whole, so a killed run leaves valid
        lines) and hands its numbers to TensorBoard (``tensorboard_scalars``)."""
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self.metrics_path.open("a", encoding="utf-8") as fh:
            fh.write(line)
        step, scalars = tensorboard_scalars(record)
        if step is None or not scalars:
            return
        writer = self._writer()
        if writer is None:
            return
        for tag, value in scalars.items():
            writer.add_scalar(tag, value, step)

    def _writer(self) -> SummaryWriter | None:
        """This run's TensorBoard writer; None without the tensorboard package (told once):
        a broken install should not stop a training run."""
        global _tensorboard_missing
        key = self.path.resolve()
        with _writers_lock:
            writer = _writers.get(key)
            if writer is None and not _tensorboard_missing:
                try:
                    # Deferred: torch comes with the first metric, not with opening a run.
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:
                    _tensorboard_missing = True
                    log.warning(
                        "tensorboard is not installed: metrics go to metrics.jsonl only "
                        "(pip install 'tensorboard>=2.16')"
                    )
                    return None
                # Its own thread writes the events out: logging only queues them.
                writer = _writers[key] = SummaryWriter(str(key), flush_secs=FLUSH_SECONDS)
        return writer

    def close_metrics(self) -> None:
        """Writes out and closes this run's TensorBoard file (also done at exit)."""
        with _writers_lock:
            writer = _writers.pop(self.path.resolve(), None)
        if writer is not None:
            writer.close()

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        records = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
        return records


def tensorboard_scalars(record: dict[str, Any]) -> tuple[int | None, dict[str, float]]:
    """A metrics record as TensorBoard sees it: its step (``step``, else ``update``; None: not
    plotted) and its numbers by tag. A key named ``group/name`` is its own tag; any other is put
    under the record's ``kind`` (``world_model/loss``)."""
    step = next((record[k] for k in STEP_KEYS if type(record.get(k)) is int), None)
    kind = str(record.get("kind", "metrics"))
    scalars = {}
    for key, value in record.items():
        # type() rather than isinstance: a flag such as JSON's true is not a figure.
        if key in ("kind", *STEP_KEYS) or type(value) not in (int, float):
            continue
        scalars[key if "/" in key else f"{kind}/{key}"] = float(value)
    return step, scalars


@atexit.register
def close_all_metrics() -> None:
    """Every run's TensorBoard file written out and closed: at exit, Ctrl-C included."""
    with _writers_lock:
        writers = list(_writers.values())
        _writers.clear()
    for writer in writers:
        writer.close()
