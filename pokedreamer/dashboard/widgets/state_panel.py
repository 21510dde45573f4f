"""What the game is doing: the GameState panel and the dialog text, as the player would say it."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from pokedreamer.agent.events import StatusEvent, StepEvent
from pokedreamer.env.state import BADGES, GameState

HP_BAR_CELLS = 10


def hp_bar(hp: int, max_hp: int, cells: int = HP_BAR_CELLS) -> Text:
    """A bar in the game's own colours: green above half, yellow above a fifth, red below."""
    fraction = min(max(hp / max_hp, 0.0), 1.0) if max_hp else 0.0
    filled = round(fraction * cells)
    if hp > 0 and filled == 0:
        filled = 1  # a fainting POKéMON with 1 HP still shows a sliver, as in the game
    colour = "green" if fraction > 0.5 else "yellow" if fraction > 0.2 else "red"
    return Text.assemble(("█" * filled, colour), ("░" * (cells - filled), "grey35"))


def state_text(state: GameState | None) -> Text:
    """The GameState for people: place, battle, party with HP bars, badges, money, progress."""
    if state is None:
        return Text("waiting for the first step…", style="dim")
    text = Text()
    text.append(state.map_name, "bold")
    text.append(f"  ${state.map_id:02X}\n", "dim")
    text.append(f"x {state.x}  y {state.y}  facing {state.facing}\n")
    if state.battle == "none":
        text.append("no battle\n", "dim")
    elif state.battle == "lost":
        text.append("battle lost: blacking out\n", "red")
    else:
        text.append(f"{state.battle} battle  ", "bold red")
        text.append_text(hp_bar(state.enemy_hp, state.enemy_max_hp, 6))
        text.append(f" {state.enemy_hp}/{state.enemy_max_hp}\n")
    if not state.party:
        text.append("party: none\n", "dim")
    for mon in state.party:
        text.append(f"{mon.name[:10]:<10} L{mon.level:<3} ")
        text.append_text(hp_bar(mon.hp, mon.max_hp))
        text.append(f" {mon.hp}/{mon.max_hp}\n")
    text.append("badges ")
    for i in range(len(BADGES)):
        earned = bool(state.badges >> i & 1)
        text.append("●" if earned else "○", "bold yellow" if earned else "grey50")
    text.append(f" {state.badge_count}/8\n")
    text.append(f"money ¥{state.money:,}\n")
    text.append(f"events {state.event_count}  dex {state.pokedex_owned}/{state.pokedex_seen}")
    return text


def dialog_text(state: GameState | None) -> Text:
    """The text box as decoded from RAM, line by line."""
    if state is None or not state.text_shown:
        return Text("no text on screen", style="dim")
    if not state.text:
        return Text("a menu is open", style="dim")
    return Text("\n".join(state.text))


class DemoTally:
    """The demonstration steps a run has recorded, as a watcher learns of them: the count each
    StatusEvent reports, and the person's steps since it (the loop reports its status when a
    mode changes, not at every step a person plays)."""

    def __init__(self) -> None:
        self.steps = 0
        self.human = False
        """A person has control of env 0."""
        self._as_of = -1
        """The loop's step count when the latest status was made: its count holds every
        step up to it."""

    def status(self, event: StatusEvent) -> None:
        self.steps, self.human, self._as_of = event.demo_steps, event.human, event.step

    def step(self, event: StepEvent) -> None:
        if event.human and event.env == 0 and event.step > self._as_of:
            self.steps += 1

    @property
    def shown(self) -> bool:
        """Worth a line: there are some, or a person is playing and adding to them."""
        return self.steps > 0 or self.human


def demos_text(steps: int) -> Text:
    """The line that counts a person's recorded steps, what ``train imitation --demos`` reads."""
    text = Text("demonstrations ", "dim")
    text.append(f"{steps:,} steps" if steps else "none yet: your steps are recorded")
    return text


class StatePanel(Static):
    """The GameState, and under it the run's demonstration steps once there are any; redrawn
    only when either changes."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(state_text(None), id=id)
        self.state: GameState | None = None
        self.demos = DemoTally()
        """Fed by the live screen with the loop's status and step events."""
        self._demos_shown: int | None = None

    def show(self, state: GameState | None) -> None:
        demos = self.demos.steps if self.demos.shown else None
        if state is not None and state == self.state and demos == self._demos_shown:
            return
        self.state, self._demos_shown = state, demos
        text = state_text(state)
        if demos is not None:
            text.append("\n")
            text.append_text(demos_text(demos))
        self.update(text, layout=False)  # its size is set by CSS


class DialogPanel(Static):
    """The dialog text; redrawn only when it changes."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(dialog_text(None), id=id)
        self._shown: tuple[bool, tuple[str, ...]] | None = None

    def show(self, state: GameState | None) -> None:
        key = (state.text_shown, state.text) if state is not None else None
        if key == self._shown:
            return
        self._shown = key
        self.update(dialog_text(state), layout=False)
