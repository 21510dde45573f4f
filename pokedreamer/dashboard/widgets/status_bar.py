"""The live screen's status bar: the loop's mode, the latest message, then the figures."""

from __future__ import annotations

import time
from collections.abc import Mapping

from rich.text import Text
from textual.widgets import Static

from pokedreamer.agent.events import StepEvent
from pokedreamer.agent.pace import speed_text
from pokedreamer.errors import first_line

MESSAGE_S = 10.0
"""How long a message stays in the status bar (an error stays until the next message)."""


def status_text(
    *,
    paused: bool,
    message: str,
    message_is_error: bool,
    step: StepEvent | None,
    metrics: Mapping[str, float],
    ui_fps: float,
    ui_cpu_share: float,
    planner: str,
    speed: int,
    human: bool,
    training: bool,
    run_dir: str,
) -> Text:
    """The mode, then the latest message (before the figures: a narrow terminal cuts the end of
    the line), then step, speeds, the pace (``speed`` times the Game Boy's own, 0 uncapped),
    planner (and the LLM's tokens), control, training and the run."""
    rate = metrics.get("steps_per_s")
    text = Text()
    if paused:
        text.append("⏸ paused", "bold yellow")
    else:
        text.append("▶ running", "bold")
    if message:
        text.append("  ")
        text.append(message, "bold red" if message_is_error else "bold cyan")
        text.append("  ")
    parts: list[tuple[str, str] | str] = [f"step {step.step:,}" if step else "step 0"]
    if step is not None and step.episode:
        parts.append(f"episode {step.episode} · {step.episode_step}")
    parts += [
        f"{rate:,.0f} steps/s" if rate is not None else "— steps/s",
        (f"speed {speed_text(speed)}", "bold"),
        f"ui {ui_fps:.0f} fps, {ui_cpu_share:.0%} cpu",
        f"planner {planner}" + spending(metrics),
        ("you play", "bold magenta") if human else "agent plays",
    ]
    if training:
        parts.append(f"training · {metrics.get('updates', 0):,.0f} updates")
    else:
        parts.append("not training")
    if run_dir:
        parts.append(run_dir)
    for part in parts:
        text.append(" · ", "dim")
        text.append(*(part if isinstance(part, tuple) else (part,)))
    return text


def spending(metrics: Mapping[str, float]) -> str:
    """The LLM's tokens so far, prompt + completion, and their cost when priced; "" before
    the first call."""
    prompt = metrics.get("planner/prompt_tokens")
    if prompt is None:
        return ""
    completion = metrics.get("planner/completion_tokens", 0.0)
    cost = metrics.get("planner/cost")
    return f", tokens {prompt:,.0f}+{completion:,.0f}" + (
        f" (cost {cost:.4f})" if cost is not None else ""
    )


class StatusBar(Static):
    """One line at the foot of the live screen; holds the latest message and how long it stays
    (errors too go here: the UI never prints)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.message = ""
        self.message_is_error = False
        self._message_at = 0.0

    def say(self, message: str, error: bool = False) -> None:
        """Keeps the first line of ``message``; it goes after MESSAGE_S, an error only when
        another message replaces it."""
        self.message = first_line(message)
        self.message_is_error = error
        self._message_at = time.monotonic()

    def expire(self, now: float) -> None:
        if self.message and not self.message_is_error and now - self._message_at > MESSAGE_S:
            self.message = ""

    def show(self, text: Text) -> None:
        # No layout pass: the bar's size is fixed by the CSS, and a layout of the whole screen
        # costs ~50 ms, more than a second of frames.
        self.update(text, layout=False)
        self.set_class(self.message_is_error, "-error")
