"""Live plots: reward terms and training losses as one-line sparklines.

Reward terms arrive with every step, far faster than anyone can read them, so they are averaged
over half-second bins (a bin closes only once steps arrived in it: a paused agent leaves no flat
stretch). Losses arrive with the loop's metrics, about once a second.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping

from rich.text import Text
from textual.widget import Widget

BARS = "▁▂▃▄▅▆▇█"
HISTORY = 240
REWARD_BIN_S = 0.5
NAME_CELLS = 18
VALUE_CELLS = 9
# Metrics that are counters or speeds, not curves worth a line of their own.
NOT_PLOTTED = frozenset({"updates", "replay_steps"})


def sparkline(values: Iterable[float], cells: int) -> str:
    """The last ``cells`` values as bar characters, scaled between their own min and max."""
    tail = list(values)[-cells:] if cells > 0 else []
    if not tail:
        return ""
    low, high = min(tail), max(tail)
    if high - low < 1e-12:
        return BARS[0 if high == 0 else 3] * len(tail)
    scale = (len(BARS) - 1) / (high - low)
    return "".join(BARS[round((v - low) * scale)] for v in tail)


def number(value: float) -> str:
    if value != value:  # NaN
        return "nan"
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.2e}"


class RewardBins:
    """Sums a step's reward terms into the current bin; ``close`` gives each term's mean."""

    def __init__(self, seconds: float = REWARD_BIN_S) -> None:
        self.seconds = seconds
        self._sums: dict[str, float] = {}
        self._steps = 0
        self._opened = time.monotonic()

    def add(self, reward: float, terms: Mapping[str, float]) -> None:
        sums = self._sums
        sums["reward"] = sums.get("reward", 0.0) + reward
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value
        self._steps += 1

    def close(self, now: float | None = None) -> dict[str, float] | None:
        """Each term's mean per step over the bin, once the bin is old enough and not empty."""
        now = time.monotonic() if now is None else now
        if not self._steps or now - self._opened < self.seconds:
            return None
        means = {name: total / self._steps for name, total in self._sums.items()}
        self._sums, self._steps, self._opened = {}, 0, now
        return means


class Plots(Widget):
    """One line per curve: name, latest value, sparkline. Reward terms that never moved are
    left out, so that the lines go to what is happening."""

    DEFAULT_CSS = """
    Plots {
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.series: dict[str, deque[float]] = {}
        self._moved: set[str] = set()
        self._new = False

    def continue_from(self, other: Plots) -> None:
        """Draws ``other``'s curves and adds to them: a widget taken out of the screen cannot be
        mounted again, so a re-arranged screen shows the curves in a new one."""
        self.series, self._moved = other.series, other._moved
        self._new = True

    def add(self, name: str, value: float) -> None:
        series = self.series.get(name)
        if series is None:
            series = self.series[name] = deque(maxlen=HISTORY)
        series.append(float(value))
        if value:
            self._moved.add(name)

    def add_rewards(self, means: Mapping[str, float]) -> None:
        for name, value in means.items():
            self.add("reward" if name == "reward" else f"reward/{name}", value)
        self._new = True

    def add_metrics(self, metrics: Mapping[str, float]) -> None:
        for name, value in metrics.items():
            if name not in NOT_PLOTTED:
                self.add(name, value)
        self._new = True

    def redraw(self) -> None:
        """Draws what was added since the last redraw (the app calls this with its panels)."""
        if self._new:
            self._new = False
            self.refresh()

    def shown(self) -> list[str]:
        """The curves drawn, in order: total reward, the terms that moved, then the metrics."""
        names = [n for n in self.series if n == "reward"]
        names += sorted(n for n in self.series if n.startswith("reward/") and n in self._moved)
        names += [n for n in self.series if not n.startswith("reward")]
        return names[: max(self.size.height, 0)] if self.size.height else names

    def render(self) -> Text:
        if not self.series:
            return Text("no rewards or losses yet", style="dim")
        cells = max(self.size.width - NAME_CELLS - VALUE_CELLS - 2, 0)
        lines = []
        for name in self.shown():
            values = self.series[name]
            label = name if len(name) <= NAME_CELLS else "…" + name[-(NAME_CELLS - 1) :]
            style = "green" if name.startswith("reward") else "magenta"
            lines.append(
                Text.assemble(
                    (f"{label:<{NAME_CELLS}}", style),
                    f"{number(values[-1]):>{VALUE_CELLS}} ",
                    (sparkline(values, cells), style),
                )
            )
        return Text("\n").join(lines)
