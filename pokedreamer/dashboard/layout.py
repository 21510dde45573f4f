"""How the live screen is arranged in the terminal it has, chosen from the terminal's width and
height together (Textual's breakpoint classes follow one dimension each, while whether two
screens fit depends on both) and chosen again on every resize.

- **small**, from 80×24: one Game Boy screen at quarter size, 40×18 cells (at half size, 80×36,
  from 112×42), live or imagined (``i`` flips; its title says which), with the active subgoal
  under it. Beside it the dialog, which carries the words that no longer read on so small a
  screen, and the other panels in tabs: game state, goal and subgoals, planner trace, plots.
- **medium**, from 120×32: both screens at quarter size side by side, the state and the dialog
  beside them, the goal, the planner trace and the plots under them.
- **large**, from 194×50: the same with both screens at half size (80×36 cells each), and at full
  size (160×72) from 354×86.

Each tier starts where its panels fit: the screens in their borders, the side column's least
width and the bottom row's least height, the status bar and the footer. Nothing is cut at the
terminal's edge or squeezed to nothing; a panel whose text is longer than it is crops it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from textual.containers import Container, Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import TabbedContent, TabPane

from pokedreamer.dashboard.widgets.game_screen import SCALES

BORDER = 2
"""A bordered panel's two border cells, across and down."""
BARS = 2
"""Rows under the panels: the status bar and the footer."""
SIDE_MIN = 30
"""Columns the state and dialog need beside two half- or full-size screens (as in ``#side``)."""
MEDIUM_SIDE_MIN = 36
"""Beside two quarter-size screens: a party member's line of the game state without wrapping."""
BOTTOM_MIN = 10
"""Rows the goal, trace and plots need under the screens: the goal, the active subgoal, its
progress and five more, in a border."""
SMALL_SIDE_MIN = 30
"""Columns the dialog and the tabs need beside the one screen of a small terminal."""
SUBGOAL_ROWS = 2
"""The active subgoal under the one screen: the subgoal, then its progress."""

TierName = Literal["small", "medium", "large"]
TIER_NAMES: tuple[TierName, ...] = ("small", "medium", "large")
Showing = Literal["live", "imagined"]

SCREEN_TITLES = {"live": "live", "imagined": "imagined (world model)"}
FLIP_TITLES = {
    "live": "live · i: imagined",
    "imagined": "imagined (world model) · i: live",
}
"""A small terminal's one screen says what it shows and what ``i`` brings instead."""
TABS = ("state", "goal", "trace", "plots")
"""A small terminal's tabs, in order; the first is open at the start."""


@dataclass(frozen=True)
class Tier:
    """A terminal size's arrangement: its name and the screens' scale (pixels a cell is wide:
    4 quarter, 2 half, 1 full size)."""

    name: TierName
    scale: int

    @property
    def one_screen(self) -> bool:
        """One screen at a time, live or imagined, and the panels in tabs."""
        return self.name == "small"


def _both_fit(width: int, height: int, scale: int, side: int) -> bool:
    cells = SCALES[scale]
    return (
        width >= 2 * (cells.width + BORDER) + side
        and height >= cells.height + BORDER + BOTTOM_MIN + BARS
    )


def tier_for(width: int, height: int) -> Tier:
    """The arrangement for a terminal of ``width`` × ``height`` cells."""
    if _both_fit(width, height, 1, SIDE_MIN):
        return Tier("large", 1)
    if _both_fit(width, height, 2, SIDE_MIN):
        return Tier("large", 2)
    if _both_fit(width, height, 4, MEDIUM_SIDE_MIN):
        return Tier("medium", 4)
    half = SCALES[2]
    if width >= half.width + BORDER + SMALL_SIDE_MIN and height >= (
        half.height + BORDER + SUBGOAL_ROWS + BARS
    ):
        return Tier("small", 2)
    return Tier("small", 4)


def screen_box(screen: Widget, title: str, id: str) -> Vertical:
    """A Game Boy screen in its border, titled."""
    box = Vertical(screen, id=id, classes="screen-box")
    box.border_title = title
    return box


def side_by_side(
    live: Widget,
    imagined: Widget,
    state: Widget,
    dialog: Widget,
    goal: Widget,
    trace: Widget,
    plots: Widget,
) -> Container:
    """Medium and large terminals: both screens, the state and the dialog beside them, the goal,
    the trace and the plots under them."""
    return Container(
        Horizontal(
            screen_box(live, SCREEN_TITLES["live"], "live-box"),
            screen_box(imagined, SCREEN_TITLES["imagined"], "imagined-box"),
            Vertical(state, dialog, id="side"),
            id="top",
        ),
        Horizontal(goal, trace, plots, id="bottom"),
        id="body",
    )


def one_screen(
    live: Widget,
    imagined: Widget,
    subgoal: Widget,
    state: Widget,
    dialog: Widget,
    goal: Widget,
    trace: Widget,
    plots: Widget,
    *,
    showing: Showing,
) -> Container:
    """A small terminal: the screen ``showing`` (the other one hidden until ``i``), the active
    subgoal under it; beside it the dialog and the other panels in tabs, the first open."""
    live_box = screen_box(live, FLIP_TITLES["live"], "live-box")
    imagined_box = screen_box(imagined, FLIP_TITLES["imagined"], "imagined-box")
    live_box.display, imagined_box.display = showing == "live", showing == "imagined"
    # No initial tab: a tab strip that names one, taken out again before it has mounted (an
    # app closing at once), fails to find it; one that names none opens its first.
    tabs = TabbedContent(id="tabs")
    for name, panel in zip(TABS, (state, goal, trace, plots), strict=True):
        tabs.compose_add_child(TabPane(name, panel, id=f"tab-{name}"))  # as `with` would
    return Container(
        Vertical(live_box, imagined_box, subgoal, id="screen-column"),
        Vertical(dialog, tabs, id="side"),
        id="body",
        classes="one-screen",
    )
