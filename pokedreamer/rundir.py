"""A run directory, ``runs/<name>/``: everything a run leaves behind, and all that replay, export,
evaluation and the dashboard read.

    config.toml     the resolved settings (secrets left out)
    metrics.jsonl   one JSON object per logged update or episode
    checkpoints/    safetensors + JSON pairs
    replay/         the world model's experience, in chunk files
    episodes/<n>/   recorded episodes (issue #6)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pokedreamer.errors import UserError

if TYPE_CHECKING:
    from pokedreamer.config import Settings


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
        """The folders of a run at ``path`` (made if missing), without saving settings: for
        throwaway runs such as a benchmark's or an evaluation's."""
        run = cls(path)
        for folder in (run.path, run.checkpoints, run.replay, run.episodes):
            folder.mkdir(parents=True, exist_ok=True)
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run, or a UserError saying what was expected."""
        run = cls(Path(path))
        if not run.path.is_dir():
            raise UserError(
                f"run directory not found: {run.path} (make one with pokedreamer collect)"
            )
        return run

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
        """Appends one JSON line; each line is written whole, so a killed run leaves valid lines."""
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self.metrics_path.open("a", encoding="utf-8") as fh:
            fh.write(line)

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
