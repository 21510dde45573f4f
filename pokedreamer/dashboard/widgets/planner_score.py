"""The planner's score on the benchmark scenarios, as the prompt editor shows it: the edited
prompts beside the saved ones, on the quick subset and on all scenarios.

A score is one ``pokedreamer eval planner --json`` run in a child process (``ScoreRun``). The
child reads the settings and the API key as any command does, so the key never passes through
the dashboard (whose settings come without it); it keeps the planner's work, and a slow local
model's minutes, off the UI's interpreter; and ending it ends the scoring at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.widgets import Static

from pokedreamer.errors import one_line
from pokedreamer.planner.prompts import TEMPLATE_SUFFIX

SUBSETS = ("quick", "all")
"""Scored in this order: the quick subset answers first."""
_STOP_WAIT_S = 5.0


class ScoreFailed(Exception):
    """The scoring ended without a score; the message is one line (the command's own error)."""


class ScoreCancelled(Exception):
    """The scoring was cancelled."""


@dataclass(frozen=True)
class Score:
    """The totals of one ``eval planner`` report."""

    scenarios: int
    acceptable: int
    low: float
    high: float
    valid_first: int
    valid: int
    median_latency_s: float | None

    @classmethod
    def from_report(cls, report: Mapping[str, Any]) -> Score:
        low, high = report["accept_ci95"]
        return cls(
            scenarios=int(report["scenarios"]),
            acceptable=int(report["acceptable"]),
            low=float(low),
            high=float(high),
            valid_first=int(report["valid_first"]),
            valid=int(report["valid"]),
            median_latency_s=report["latency_s"]["median"],
        )

    def line(self) -> str:
        n = self.scenarios
        rate = self.acceptable / n if n else 0.0
        latency = self.median_latency_s
        return (
            f"acceptable {self.acceptable}/{n} ({rate:.0%}, 95% CI {self.low:.0%}–{self.high:.0%})"
            f" · valid first {self.valid_first}/{n}, after repair {self.valid}/{n}"
            + (f" · {latency:.2f} s a plan" if latency is not None and latency >= 0.01 else "")
        )


def write_prompts(folder: Path, texts: Mapping[str, str]) -> Path:
    """A prompts folder holding ``texts`` by template name."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (folder / f"{name}{TEMPLATE_SUFFIX}").write_text(text, encoding="utf-8")
    return folder


def eval_command(kind: str, prompts: Path, subset: str, config: Path | None = None) -> list[str]:
    """The ``pokedreamer eval planner`` command line that scores ``prompts``."""
    return [
        sys.executable, "-m", "pokedreamer", *(("--config", str(config)) if config else ()),
        "eval", "planner", "--json", "--progress", "--planner", kind,
        "--prompts", str(prompts), "--scenarios", subset,
    ]  # fmt: skip


class Scoring:
    """A chain of scoring commands, each in a child process, that one ``cancel`` (from any
    thread) ends: the command running is stopped and no other starts."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        """The child running now, or the last one."""
        self._cancelled = False
        self._lock = threading.Lock()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def run(
        self,
        command: list[str],
        report_path: Path,
        on_progress: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Runs one command to its end: its JSON report, or ScoreFailed / ScoreCancelled. The
        child's stdout goes to ``report_path``, a file, so that a long report never fills a
        pipe while its progress lines are read."""
        with report_path.open("w", encoding="utf-8") as report_file, self._lock:
            if self._cancelled:
                raise ScoreCancelled()
            process = self.process = subprocess.Popen(
                command, stdout=report_file, stderr=subprocess.PIPE, text=True
            )
        assert process.stderr is not None
        last = ""
        for raw in process.stderr:
            line = raw.strip()
            if line:
                last = line
                if on_progress is not None and line.startswith("["):
                    on_progress(line)
        process.wait()
        if self._cancelled:
            raise ScoreCancelled()
        if process.returncode != 0:
            reason = last.removeprefix("error: ") or f"exit status {process.returncode}"
            raise ScoreFailed(one_line(reason))
        try:
            return json.loads(report_path.read_text(encoding="utf-8"))
        except ValueError:
            raise ScoreFailed("eval planner printed no JSON report") from None

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(_STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()


class PlannerScore(Static):
    """The edited prompts' score beside the saved prompts', quick subset and all scenarios."""

    DEFAULT_CSS = """
    PlannerScore {
        height: auto;
        padding: 0 1;
        border-top: solid $secondary;
    }
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.planner = ""
        self.scores: dict[tuple[str, str], Score] = {}
        """By (edited or saved, subset)."""
        self.note = "ctrl+t scores the edited prompts on the planner benchmark"

    def on_mount(self) -> None:
        self.refresh_text()

    def refresh_text(self) -> None:
        text = Text()
        kind = self.planner + (", which reads no prompts" if self.planner == "heuristic" else "")
        title = f"planner score ({kind})" if self.planner else "planner score"
        text.append(title, style="bold")
        text.append(f" · {self.note}\n")
        for which in ("edited", "saved"):
            text.append(f"{which:<7}", style="bold")
            for subset in SUBSETS:
                score = self.scores.get((which, subset))
                cell = score.line() if score is not None else "-"
                text.append(f" {subset}: {cell}")
                if subset != SUBSETS[-1]:
                    text.append(" │")
            if which == "edited":
                text.append("\n")
        self.update(text)
