"""The progress bar a ``train agent`` stage plays its agent loop under."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

if TYPE_CHECKING:
    from pokedreamer.agent.loop import AgentLoop
    from pokedreamer.agent.tally import LoopResult


@contextmanager
def stage_bar(loop: AgentLoop, name: str, end: int) -> Iterator[Callable[[str], None]]:
    """Draws ``loop``'s steps towards ``end`` while the block runs, and yields the way to tell
    a line meanwhile (an evaluation's table, the loop's notices): above the bar, not into it."""
    columns = (TextColumn(name), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
               TextColumn("{task.fields[rate]:.0f} steps/s, badges {task.fields[badges]}"),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(name, total=end, completed=loop.steps, rate=0.0, badges=0)

        def show(loop: AgentLoop, rate: float) -> None:
            bar.update(task, completed=loop.steps, rate=rate, badges=loop.tally.badge_episodes)

        say = partial(bar.console.print, markup=False, highlight=False, soft_wrap=True)
        loop.progress, loop.say = show, say
        yield say


def played(loop: AgentLoop, name: str, result: LoopResult) -> str:
    """The line that sums up a stage's play."""
    if loop.imitation is not None:
        updates = f"{loop.imitation.updates:,} imitation updates"
    else:
        updates = f"{result.updates:,} world-model updates"
    return (
        f"{name}: {loop.steps:,} steps, {result.episodes} episodes ({result.badges} with a "
        f"badge), {updates}; {result.seconds:.0f} s this time; checkpoint {result.checkpoint}"
    )
