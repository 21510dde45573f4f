"""Remakes the dashboard pictures in this folder: a real agent loop on the fixture cartridge with
the shipped checkpoint (as ``pokedreamer run`` starts it, so the imagined screen is the trained
world model's), a person playing to the GUIDE, the agent taking over in a 200×60, a 120×40 and an
80×24 terminal, the prompt editor, and the replay viewer on the episode that left. A developer's
tool, not part of the package: it needs cairosvg to turn Textual's SVG screenshots into PNG,
from ``pip install cairosvg`` or Debian's python3-cairosvg:

    PYTHONPATH=$PWD:/usr/lib/python3/dist-packages .venv/bin/python docs/images/make_pictures.py

It takes about two minutes on 2 cores. Look at the imagined pane of dashboard.png before
committing: the shipped tiny model dreams the town blocky (36×40 shades) but recognisable; noise
there means the checkpoint was not loaded.

With ``--tiles RUN_DIR`` (or an agent checkpoint in one) it makes only dashboard-tiles.png:
that run's latest agent checkpoint (or the one named), a token model (world_model.observation =
"tiles"), acting on its own, its imagined pane drawn through the vocabulary at 160×144. No token
agent ships, so the run is one you trained (docs/benchmarks.md names the one pictured and its
command).
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "tests"))  # the scripted route to the GUIDE

from cartridge_driver import MOM_TO_TOWN, TO_MOM, TOWN_TO_GUIDE  # noqa: E402
from textual.pilot import Pilot  # noqa: E402

from pokedreamer.agent.episodes import open_episode  # noqa: E402
from pokedreamer.agent.loop import AgentLoop  # noqa: E402
from pokedreamer.agent.play import make_loop  # noqa: E402
from pokedreamer.config import Settings  # noqa: E402
from pokedreamer.dashboard.app import Dashboard  # noqa: E402
from pokedreamer.dashboard.replay import ReplayApp  # noqa: E402
from pokedreamer.rundir import RunDir  # noqa: E402

SIZE = (200, 60)
SMALLER = ((120, 40), (80, 24))
"""The live dashboard is pictured at SIZE (dashboard.png) and at these (dashboard-WxH.png)."""
CELL_PX = 8
"""Pixels a terminal cell is wide in the pictures: the same for every size, so that a smaller
terminal makes a smaller picture."""
KEYS = {"up": "up", "down": "down", "left": "left", "right": "right", "a": "z"}
AGENT_SECONDS = 20
DIALOG_WAIT_S = 30
"""How long a picture waits for a text box, so that the dialog panel has words in it."""


def to_png(svg: str, name: str, width: int) -> None:
    import cairosvg

    # Textual's SVG asks for Fira Code; without it the fallback is a proportional font whose
    # block characters are wider than a cell and smear across the panels.
    svg = re.sub(r"font-family: [^;]*;", 'font-family: "DejaVu Sans Mono", monospace;', svg)
    path = HERE / f"{name}.png"
    cairosvg.svg2png(bytestring=svg.encode(), write_to=str(path), output_width=width * CELL_PX)
    print(f"wrote {path}")


async def with_dialog(app: Dashboard, pilot: Pilot[object]) -> None:
    """Waits (a while at most) until the dialog panel shows a text box's words."""
    deadline = time.monotonic() + DIALOG_WAIT_S
    while time.monotonic() < deadline:
        text = app.board.last_step.state.text if app.board.last_step else ()
        if text and text[0] in str(app.board.dialog.render()):
            return
        await pilot.pause(0.05)


async def live(loop: AgentLoop) -> None:
    app = Dashboard(loop, human=True)
    async with app.run_test(size=SIZE) as pilot:
        while app.board.last_step is None:
            await pilot.pause(0.2)
        for button in (*TO_MOM[:-1], *MOM_TO_TOWN, *TOWN_TO_GUIDE, "a"):
            steps = loop.steps
            await pilot.press(KEYS[button])
            while loop.steps == steps:
                await pilot.pause(0.1)
        await pilot.pause(1.0)
        to_png(app.export_screenshot(), "play", SIZE[0])
        await pilot.press("h")  # the agent takes over
        await pilot.pause(AGENT_SECONDS)
        await with_dialog(app, pilot)
        to_png(app.export_screenshot(), "dashboard", SIZE[0])
        for width, height in SMALLER:  # the same dashboard, re-arranged
            await pilot.resize_terminal(width, height)
            await pilot.pause(1.0)
            await with_dialog(app, pilot)
            to_png(app.export_screenshot(), f"dashboard-{width}x{height}", width)
        await pilot.resize_terminal(*SIZE)
        await pilot.pause(1.0)
        await pilot.press("e")
        await pilot.pause(1.0)
        to_png(app.export_screenshot(), "prompt_editor", SIZE[0])
        await pilot.press("escape", "q")
        while not app.loop_done.is_set():
            await pilot.pause(0.2)


async def replay(run: RunDir, step: int) -> None:
    app = ReplayApp(open_episode(run, 1), run.path.name)
    async with app.run_test(size=SIZE) as pilot:
        app.screen.go(step)
        await pilot.pause(0.5)
        to_png(app.export_screenshot(), "replay", SIZE[0])


async def dreaming(loop: AgentLoop) -> None:
    app = Dashboard(loop)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(AGENT_SECONDS)
        to_png(app.export_screenshot(), "dashboard-tiles", SIZE[0])
        await pilot.press("q")
        while not app.loop_done.is_set():
            await pilot.pause(0.2)


def tiles(path: Path) -> None:
    """dashboard-tiles.png from a token agent's run or checkpoint, played on in a folder of its
    own with the run's settings."""
    from pokedreamer.agent.checkpointer import resolve_checkpoint
    from pokedreamer.config import load_settings

    checkpoint = resolve_checkpoint(path)
    run_dir = checkpoint.parent.parent  # <run>/checkpoints/<name>
    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings(run_dir / "config.toml")
        assert settings.world_model.observation == "tiles", f"{run_dir} is not a token run"
        settings = settings.model_copy(
            update={
                "run": settings.run.model_copy(update={"runs_dir": folder}),
                # One env in this process: under Textual's test harness stdout is no file, and
                # env processes cannot be started.
                "agent": settings.agent.model_copy(update={"envs": 1}),
            }
        )
        print(f"acting with {checkpoint}")
        # At 4x the Game Boy's speed (about 10 steps/s) the imagined pane, refreshed a few times
        # a second, guesses a screen a step or two old, not dozens.
        loop = make_loop(settings, checkpoint=checkpoint, train=False, name="tiles-demo", speed=4)
        asyncio.run(dreaming(loop))


def main() -> None:
    if sys.argv[1:2] == ["--tiles"] and len(sys.argv) == 3:
        tiles(Path(sys.argv[2]))
        return
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings()
        settings = settings.model_copy(
            update={
                "world_model": settings.world_model.model_copy(update={"preset": "tiny"}),
                "run": settings.run.model_copy(update={"runs_dir": folder}),
            }
        )
        start = time.monotonic()
        # As `pokedreamer run` makes it: on the fixture, the shipped checkpoint's weights.
        loop = make_loop(settings, train=False, name="demo", human=True)
        run = loop.run_dir
        asyncio.run(live(loop))
        guide = len((*TO_MOM[:-1], *MOM_TO_TOWN, *TOWN_TO_GUIDE, "a"))
        asyncio.run(replay(run, guide))
        print(f"done in {time.monotonic() - start:.0f} s")


if __name__ == "__main__":
    main()
