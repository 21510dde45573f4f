"""What a watcher — the dashboard, a bench — may use of a running agent loop, and nothing more.

The dashboard reads the loop through ``status()`` and the events on its bus, and steers it with
``send()``: commands are applied between steps, so a watcher never touches the loop's state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pokedreamer.agent.events import EventBus, StatusEvent
    from pokedreamer.config import Settings
    from pokedreamer.planner.prompts import PromptLibrary


class LoopControl(Protocol):
    """A loop that can be watched and steered (``pokedreamer.agent.loop.AgentLoop``)."""

    settings: Settings
    bus: EventBus

    @property
    def prompts(self) -> PromptLibrary | None:
        """The prompt library the LLM planner renders from, once there is one; a watcher that
        edits prompts hands the loop a folder with ``send(UsePrompts(folder))``."""
        ...

    def status(self, message: str = "", finished: bool = False) -> StatusEvent:
        """A snapshot of the loop's modes: step, paused, human, planner, speed, training, run
        folder and buttons (the same event the bus carries when a mode changes)."""
        ...

    def send(self, command: Any) -> None:
        """Queues a command from ``pokedreamer.agent.events``; applied before the next step."""
        ...

    def run(self, steps: int | None = None) -> Any:
        """Plays until ``steps`` more env steps (None: until Quit); blocks."""
        ...
