"""The replay viewer: scrub a recorded episode with its state, rewards and subgoal trace
(``pokedreamer replay``). The App is thin: ``screens/replay.py`` is the viewer, ``episode_trace.py``
reads the episode."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from textual.app import App

from pokedreamer.agent.episodes import EpisodeReader, open_episode
from pokedreamer.config import NOOP
from pokedreamer.dashboard.episode_trace import EpisodeTrace
from pokedreamer.dashboard.screens.replay import ReplayScreen
from pokedreamer.rundir import RunDir


def run_buttons(run_path: Path) -> list[str]:
    """A run's action names (action index -> button), from its config.toml as the agent loop
    reads them; the defaults when the file is missing or unreadable."""
    from pokedreamer.config import EnvSettings

    env: dict[str, Any] = {}
    try:
        with (run_path / "config.toml").open("rb") as fh:
            env = tomllib.load(fh).get("env", {})
    except (OSError, tomllib.TOMLDecodeError):
        pass
    buttons = list(env.get("buttons") or EnvSettings().buttons)
    return [*buttons, *([NOOP] if env.get("noop") else [])]


class ReplayApp(App[None]):
    """The replay viewer over one recorded episode."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "pokedreamer replay"
    ENABLE_COMMAND_PALETTE = False

    def __init__(
        self, reader: EpisodeReader, run_name: str = "", buttons: list[str] | None = None
    ) -> None:
        super().__init__()
        self.trace = EpisodeTrace(reader)
        # episodes/<n>/ sits in the run folder, whose config.toml names the buttons.
        self.buttons = buttons if buttons is not None else run_buttons(reader.path.parent.parent)
        cut = "" if reader.ended else ", cut short"
        where = f"{run_name} " if run_name else ""
        self.episode_title = f"{where}episode {reader.number} ({len(self.trace)} steps{cut})"

    def get_default_screen(self) -> ReplayScreen:
        return ReplayScreen(self.trace, self.episode_title, self.buttons)


def run_replay(run_path: Path, episode: int | None = None) -> None:
    """Opens the replay viewer on episode ``episode`` of the run in ``run_path`` (default: the
    latest). A missing run or episode is a one-line UserError, raised before the UI starts."""
    run = RunDir.open(run_path)
    reader = open_episode(run, episode)
    ReplayApp(reader, run.path.name).run()
