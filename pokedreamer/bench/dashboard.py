"""``pokedreamer bench dashboard``: how fast the dashboard draws, and what watching costs the agent.

Two figures, both in a headless app (``App.run_test``, 200×60 unless other terminal sizes are
asked for: each size gets its own figures) whose screen updates are encoded to ANSI as a real
terminal driver would send them (headless Textual skips that step, which would flatter the
figures):

* **updates/s**: the live and imagined screens, the state and goal panels fed new cartridge
  frames faster than they can be drawn, with the dashboard aiming at ``UPDATE_TARGET`` updates a
  second (Textual's own cap is 60); plus the UI thread's CPU time per update, and the rate that
  CPU time would allow.
* **cost to the agent loop**: the loop's own step rate (its ``steps_per_s`` metrics) alone, with
  the dashboard attached at its default frame rate, and attached without imagined frames (the
  loop then decodes none), in alternating timed rounds, each round a fresh loop; a cost is
  1 - the median ratio to the neighbouring lone round. Watched rounds start the dashboard as
  ``pokedreamer run`` does, in a process of its own (``dashboard/process.py``), here headless at
  the size measured and encoding its updates to ANSI; it reports the frames it drew and the CPU
  its process took.

The loops the bench watches are ``LoopControl``s: the agent loop, or a stand-in of the bench's
own (``EnvLoop``, ``_Feeder``), which the dashboard reads the same way.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pokedreamer.agent.events import (
    EventBus,
    ImaginedEvent,
    MetricsEvent,
    Quit,
    StatusEvent,
    StepEvent,
)
from pokedreamer.agent.protocol import LoopControl
from pokedreamer.dashboard.app import FPS, UI_CPU_BUDGET, Dashboard
from pokedreamer.dashboard.process import DashboardProcess
from pokedreamer.dashboard.terminal import encode_like_a_terminal
from pokedreamer.errors import UserError

if TYPE_CHECKING:
    from pokedreamer.config import Settings
    from pokedreamer.planner.prompts import PromptLibrary

SIZE = (200, 60)
"""The terminal measured unless others are asked for."""
SCALE_NAMES = {1: "full", 2: "half", 4: "quarter"}
UPDATE_TARGET = 60
"""Frame rate asked of the dashboard when measuring updates/s: Textual's own ceiling."""
SWITCH_INTERVAL_S = 0.0002
"""The interpreter's thread switch interval while the updates/s figure is taken (Python's
default: 5 ms): the feeder's thread then gets the GIL soon after it wakes, so its steps arrive
at their pace rather than in clumps behind the UI's thread."""

LoopFactory = Callable[[], LoopControl]
Size = tuple[int, int]


def parse_sizes(texts: Sequence[str]) -> list[Size]:
    """``--size`` as terminal sizes: each WIDTHxHEIGHT, several in one value separated by commas
    or in several values."""
    sizes = []
    for text in texts:
        for part in text.split(","):
            width, x, height = part.strip().lower().partition("x")
            if not (x and width.isdigit() and height.isdigit() and int(width) and int(height)):
                raise UserError(f"--size {part.strip()!r}: give columns x rows, such as 80x24")
            sizes.append((int(width), int(height)))
    if not sizes:
        raise UserError("--size: give one terminal size at least, such as 80x24")
    return sizes


def size_name(size: Size) -> str:
    return f"{size[0]}x{size[1]}"


class _StandIn:
    """What the bench's stand-ins for the agent loop share: a bus, the settings, no prompt
    library, and a status of a loop that runs on its own (``steps`` so far)."""

    def __init__(self, settings: Settings) -> None:
        self.bus = EventBus()
        self.settings = settings
        self.steps = 0

    @property
    def prompts(self) -> PromptLibrary | None:
        return None

    def status(self, message: str = "", finished: bool = False) -> StatusEvent:
        return StatusEvent(
            step=self.steps, paused=False, human=False, planner=self.settings.planner.kind,
            speed=0, training=False, run_dir="", message=message, finished=finished,
            buttons=tuple(self.settings.env.buttons),
        )  # fmt: skip


def cartridge_events(count: int = 240, seed: int = 0) -> list[StepEvent]:
    """StepEvents of the fixture cartridge under random buttons: real screens and states."""
    from pokedreamer.config import EnvSettings
    from pokedreamer.env.gym_env import PokemonRedEnv

    env = PokemonRedEnv(EnvSettings())
    rng = np.random.default_rng(seed)
    try:
        obs, info = env.reset(seed=seed)
        events = []
        for i in range(count):
            action = int(rng.integers(env.action_space.n))
            obs, reward, _, _, info = env.step(action)
            events.append(
                StepEvent(
                    step=i + 1, env=0, episode=1, episode_step=i + 1, frame=obs["screen"],
                    state=info["state"], action=action, button=str(env.buttons[action]),
                    reward=float(reward), terms=info["rewards"], goal="bench",
                    subgoals=("go to PALLET_TOWN",), progress=i / count,
                )
            )  # fmt: skip
        return events
    finally:
        env.close()


class _Feeder(_StandIn):
    """A stand-in for the agent loop that only publishes recorded steps, for the draw figure."""

    def __init__(self, settings: Settings, events: list[StepEvent], per_s: float) -> None:
        super().__init__(settings)
        self.events = events
        self.per_s = per_s
        self.stop = threading.Event()

    def send(self, command: Any) -> None:
        if isinstance(command, Quit):
            self.stop.set()

    def run(self, steps: int | None = None) -> None:
        i = 0
        while not self.stop.is_set():
            event = self.events[i % len(self.events)]
            self.bus.publish(event)
            imagined = self.events[(i + 17) % len(self.events)].frame
            self.bus.publish(ImaginedEvent(event.step, 0, imagined))
            i += 1
            time.sleep(1 / self.per_s)


async def _measure_updates(
    settings: Settings, events: list[StepEvent], seconds: float, size: Size
) -> dict:
    """Screen updates a second over at least ``seconds``, and until one update was drawn."""
    feeder = _Feeder(settings, events, per_s=UPDATE_TARGET * 2)
    app = Dashboard(feeder, fps=UPDATE_TARGET, cpu_budget=None)  # what it can do, unthrottled
    encoded = encode_like_a_terminal(app, size)
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        return await _time_updates(app, feeder, encoded, seconds, size)
    finally:
        sys.setswitchinterval(switch_interval)


async def _time_updates(
    app: Dashboard, feeder: _Feeder, encoded: list[int], seconds: float, size: Size
) -> dict:
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.5)  # layout settled, first frames drawn
        board = app.board
        start_updates, start_encoded = board.live.updates, len(encoded)
        start_cpu, start = time.thread_time(), time.perf_counter()
        await pilot.pause(seconds)
        while board.live.updates == start_updates:  # a figure needs one update at least
            await pilot.pause(0.05)
        elapsed = time.perf_counter() - start
        cpu = time.thread_time() - start_cpu
        updates = board.live.updates - start_updates
        renders = encoded[start_encoded:]
        scale, tier = board.live.scale, board.tier.name
        feeder.stop.set()
        await app.action_quit()
    per_update = cpu / max(updates, 1)
    return {
        "terminal": size_name(size),
        "tier": tier,
        "screen_size": SCALE_NAMES[scale],
        "updates_per_s": updates / elapsed,
        "update_target_per_s": UPDATE_TARGET,
        "ui_cpu_ms_per_update": per_update * 1e3,
        "updates_per_s_cpu_allows": 1 / per_update if per_update else float("inf"),
        "terminal_bytes_per_update": float(np.mean(renders)) if renders else 0.0,
    }


class EnvLoop(_StandIn):
    """The fastest loop there is to watch: the fixture cartridge under random buttons, publishing
    what the agent loop publishes (a StepEvent a step, an ImaginedEvent every other step, its
    step rate twice a second) with no model at all. The world model's work releases the GIL in
    torch, the emulator's does not: this is where the dashboard's share of the interpreter
    weighs most on the step rate."""

    METRICS_EVERY_S = 0.5

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._quit = threading.Event()

    def send(self, command: Any) -> None:
        if isinstance(command, Quit):
            self._quit.set()

    def run(self, steps: int | None = None) -> dict[str, Any]:
        from pokedreamer.config import EnvSettings
        from pokedreamer.env.gym_env import PokemonRedEnv

        env = PokemonRedEnv(EnvSettings(), self.settings.rewards)
        rng = np.random.default_rng(0)
        bus = self.bus
        try:
            obs, info = env.reset(seed=0)
            last, last_steps = time.perf_counter(), 0
            while not self._quit.is_set() and (not steps or self.steps < steps):
                action = int(rng.integers(env.action_space.n))
                obs, reward, _, _, info = env.step(action)
                self.steps += 1
                if bus.wants(StepEvent):
                    bus.publish(
                        StepEvent(
                            step=self.steps, env=0, episode=1, episode_step=self.steps,
                            frame=obs["screen"], state=info["state"], action=action,
                            button=str(env.buttons[action]), reward=float(reward),
                            terms=info["rewards"], goal="", subgoals=(), progress=0.0,
                        )
                    )  # fmt: skip
                if self.steps % 2 == 0 and bus.wants(ImaginedEvent):
                    bus.publish(ImaginedEvent(self.steps, 0, obs["screen"]))
                now = time.perf_counter()
                if now - last >= self.METRICS_EVERY_S:
                    rate = (self.steps - last_steps) / (now - last)
                    bus.publish(MetricsEvent(self.steps, {"steps_per_s": rate}))
                    last, last_steps = now, self.steps
        finally:
            env.close()
        return {"steps": self.steps}


def _loop_rate(loop: LoopControl, run: Callable[[], None]) -> float:
    """The loop's step rate as it reports it: the median of its steps_per_s metrics, leaving
    out the first (it holds the start-up)."""
    metrics = loop.bus.subscribe(4096, kinds=(MetricsEvent,))
    start = time.perf_counter()
    run()
    elapsed = time.perf_counter() - start
    rates = [e.metrics["steps_per_s"] for e in metrics.drain() if "steps_per_s" in e.metrics]
    if len(rates) >= 3:
        return float(statistics.median(rates[1:]))
    return loop.status().step / elapsed


def _run_alone(loop: LoopControl, seconds: float, steps: int | None) -> None:
    timer = threading.Timer(seconds, loop.send, args=(Quit(),))
    timer.start()
    try:
        loop.run(steps)  # in the main thread, as under the dashboard
    finally:
        timer.cancel()


def _run_watched(
    loop: LoopControl,
    seconds: float,
    steps: int | None,
    drawn: list[float],
    shares: list[float],
    imagined: bool,
    size: Size = SIZE,
) -> None:
    """The loop under the dashboard as ``pokedreamer run`` starts it: the UI in a process of its
    own, here headless at ``size`` and encoding its updates to ANSI."""
    process = DashboardProcess(loop, imagined=imagined, headless=size, close_when_done=True)
    timer = threading.Timer(seconds, loop.send, args=(Quit(),))
    timer.start()
    try:
        process.run(steps)
    finally:
        timer.cancel()
    if process.ui_exit_code:
        raise RuntimeError(f"the dashboard's process exited with {process.ui_exit_code}")
    if process.ui_stats is not None:
        drawn.append(process.ui_stats.frames_per_s)
        shares.append(process.ui_stats.cpu_share)


def _run_toggled(
    loop: LoopControl,
    seconds: float,
    window: float,
    settle: float,
    imagined: bool,
    size: Size = SIZE,
) -> tuple[list[float], list[float]]:
    """One loop under the dashboard's process for ``seconds``, the dashboard attached and
    detached in turn (``LoopBridge.attach``/``detach``): the step rate of each ``window``, after
    ``settle`` seconds for the change to take hold. Returns (watched rates, unwatched rates), in
    the order they alternated, watched first; one of each at least, however short ``seconds``.
    Neighbouring windows are seconds apart, so the machine's drift, which moves a lone loop's
    rate by tens of percent over minutes, mostly cancels out of their ratio."""
    process = DashboardProcess(loop, imagined=imagined, headless=size, close_when_done=True)
    watched: list[float] = []
    unwatched: list[float] = []
    done = threading.Event()

    def toggle() -> None:
        while (process.bridge is None or not loop.status().step) and not done.is_set():
            time.sleep(0.02)  # the UI's process is up and the loop is stepping
        bridge = process.bridge
        end = time.perf_counter() + seconds
        attached = True

        def more() -> bool:
            return time.perf_counter() < end or not unwatched

        while bridge is not None and more() and not done.wait(settle):
            steps, start = loop.status().step, time.perf_counter()
            if done.wait(window):
                break
            rate = (loop.status().step - steps) / (time.perf_counter() - start)
            (watched if attached else unwatched).append(rate)
            attached = not attached
            bridge.attach() if attached else bridge.detach()
        loop.send(Quit())

    toggler = threading.Thread(target=toggle, name="bench toggler")
    toggler.start()
    try:
        process.run(None)
    finally:
        done.set()
        toggler.join()
    if process.ui_exit_code:
        raise RuntimeError(f"the dashboard's process exited with {process.ui_exit_code}")
    return watched, unwatched


def toggled_cost(watched: list[float], unwatched: list[float]) -> dict[str, Any]:
    """1 - watched/unwatched over every pair of neighbouring windows (each unwatched window is
    paired with the watched one before it and the one after it): median, mean and the pairs."""
    ratios = []
    for i, alone in enumerate(unwatched):
        for j in (i, i + 1):
            if j < len(watched):
                ratios.append(watched[j] / alone)
    if not ratios:
        return {"cost_median": float("nan"), "cost_mean": float("nan"), "pairs": 0}
    return {
        "cost_median": 1 - statistics.median(ratios),
        "cost_mean": 1 - statistics.mean(ratios),
        "pairs": len(ratios),
    }


def agent_loop_factory(settings: Settings, folder: Path, train: bool = False) -> LoopFactory:
    """Fresh ``AgentLoop``s, each in its own run folder under ``folder`` (so none resumes
    another's checkpoint). ``train=False`` times acting alone."""
    from pokedreamer.agent.loop import AgentLoop
    from pokedreamer.rundir import RunDir

    settings = settings.model_copy(
        update={"run": settings.run.model_copy(update={"runs_dir": str(folder)})}
    )
    count = 0

    def make() -> LoopControl:
        nonlocal count
        count += 1
        return AgentLoop(settings, RunDir.create(settings, f"bench-{count}"), train=train)

    return make


def bench_dashboard(
    settings: Settings,
    seconds: float = 3.0,
    steps: int | None = 3000,
    rounds: int = 3,
    *,
    round_seconds: float = 10.0,
    loop: str = "agent",
    train: bool = False,
    loop_factory: LoopFactory | None = None,
    toggle_seconds: float = 0.0,
    window_seconds: float = 2.5,
    sizes: Sequence[Size] = (SIZE,),
) -> dict[str, Any]:
    """Updates/s of the dashboard (``seconds`` of drawing), and a loop's step rate alone,
    watched, and watched without imagined frames (``rounds`` times, a fresh loop each time; a
    round ends after ``steps`` steps or ``round_seconds``, whichever comes first), in a terminal
    of each of ``sizes`` in turn. ``loop``: "agent" (``AgentLoop`` on ``settings``, in a
    temporary folder; ``train`` says whether it learns) or "env" (``EnvLoop``: the emulator
    alone, the worst case). ``loop_factory`` overrides both. ``toggle_seconds`` > 0 adds the
    toggled measurement: one loop for that long with the dashboard attached and detached every
    ``window_seconds`` (``_run_toggled``), with imagined frames and then without.

    One size gives its figures at the top level of the result; several give them by size, under
    ``by_size`` ("80x24": figures), in the order asked."""
    from pokedreamer.bench.timing import machine_description

    if loop not in ("agent", "env"):
        raise ValueError(f"loop must be 'agent' or 'env', not {loop!r}")
    if not sizes:
        raise ValueError("sizes: one terminal size at least")
    events = cartridge_events()
    result: dict[str, Any] = {"machine": machine_description()}
    folder = Path(tempfile.mkdtemp(prefix="pokedreamer-bench-dashboard-"))
    try:
        if loop_factory is not None:
            make = loop_factory
        elif loop == "env":
            make = lambda: EnvLoop(settings)  # noqa: E731
        else:
            make = agent_loop_factory(settings, folder, train)
        by_size = {}
        for size in sizes:
            figures = asyncio.run(_measure_updates(settings, events, seconds, size))
            figures.update(
                _loop_cost(make, size, steps, rounds, round_seconds, toggle_seconds, window_seconds)
            )
            figures["loop"] = "custom" if loop_factory is not None else loop
            figures["loop_training"] = train if loop == "agent" and loop_factory is None else False
            by_size[size_name(size)] = figures
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if len(by_size) == 1:
        result.update(*by_size.values())
    else:
        result["by_size"] = by_size
    return result


def _loop_cost(
    make: LoopFactory,
    size: Size,
    steps: int | None,
    rounds: int,
    round_seconds: float,
    toggle_seconds: float,
    window_seconds: float,
) -> dict[str, Any]:
    """The loop's step rate alone and watched at ``size`` in rounds, and toggled (see
    ``bench_dashboard``)."""
    alone: list[float] = []
    watched: list[float] = []
    plain: list[float] = []  # watched without imagined frames
    drawn: list[float] = []
    shares: list[float] = []
    for _ in range(rounds):
        fresh = make()
        alone.append(_loop_rate(fresh, lambda f=fresh: _run_alone(f, round_seconds, steps)))
        for imagined, rates in ((True, watched), (False, plain)):
            fresh = make()
            rates.append(
                _loop_rate(
                    fresh,
                    # The UI's own figures are kept for the usual case, imagined on.
                    lambda f=fresh, i=imagined: _run_watched(
                        f, round_seconds, steps, drawn if i else [], shares if i else [], i, size
                    ),
                )
            )
    toggled: dict[str, Any] = {}
    if toggle_seconds > 0:
        settle = min(1.0, window_seconds / 2)
        for imagined, key in ((True, "toggled"), (False, "toggled_without_imagined")):
            on, off = _run_toggled(make(), toggle_seconds, window_seconds, settle, imagined, size)
            toggled[key] = toggled_cost(on, off) | {
                "watched_steps_per_s": on,
                "unwatched_steps_per_s": off,
            }

    def cost(rates: list[float]) -> float:
        return 1 - statistics.median(w / a for a, w in zip(alone, rates, strict=True))

    result: dict[str, Any] = {
        "round_steps": steps,
        "round_seconds": round_seconds,
        "rounds": rounds,
        "loop_steps_per_s_by_round": {
            "alone": alone,
            "watched": watched,
            "watched_without_imagined": plain,
        },  # fmt: skip
        "loop_steps_per_s_alone": statistics.median(alone),
        "loop_steps_per_s_watched": statistics.median(watched),
        "loop_cost": cost(watched),
        "loop_steps_per_s_watched_without_imagined": statistics.median(plain),
        "loop_cost_without_imagined": cost(plain),
        "ui_frames_drawn_per_s_while_watching": statistics.median(drawn),
        "ui_cpu_share_while_watching": statistics.median(shares),
        "ui_fps_target": FPS,
        "ui_cpu_budget": UI_CPU_BUDGET,
    }
    if toggled:
        result.update(
            {
                "toggle_seconds": toggle_seconds,
                "window_seconds": window_seconds,
                "loop_cost_toggled": toggled["toggled"]["cost_median"],
                "loop_cost_toggled_without_imagined": toggled["toggled_without_imagined"][
                    "cost_median"
                ],
                **toggled,
            }
        )
    return result
