"""The pace a person watches at: speeds as multiples of the Game Boy's own, the sleeps the loop
asks for on a fake clock (never timed), training kept per env step, the agent.speed setting with
the configs from before it, and the --speed flag through the real command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from clirun import cli
from test_cli import call_main, fake_play
from test_loop import settings

from pokedreamer.agent.events import EventBus, SetSpeed, StatusEvent
from pokedreamer.agent.loop import AgentLoop
from pokedreamer.agent.pace import (
    GAME_BOY_FPS,
    SPEEDS,
    UNCAPPED,
    Pace,
    faster,
    slower,
    speed_text,
    watched_speed,
)
from pokedreamer.config import Settings, load_settings
from pokedreamer.errors import UserError
from pokedreamer.rundir import RunDir

STEP_1X = 24 / GAME_BOY_FPS  # action_repeat 24: one step at the Game Boy's own speed


class FakeClock:
    """A clock that moves only when told; ``sleep`` remembers what was asked and moves it on."""

    def __init__(self, per_call: float = 0.0) -> None:
        self.now = 0.0
        self.per_call = per_call
        self.slept: list[float] = []

    def __call__(self) -> float:
        self.now += self.per_call
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


# --- the ladder and one step's wait ---------------------------------------------------------------


def test_the_keys_step_along_the_ladder_and_stop_at_its_ends() -> None:
    assert SPEEDS == (1, 2, 4, 8, 16, UNCAPPED)
    up = [1]
    while faster(up[-1]) != up[-1]:
        up.append(faster(up[-1]))
    assert up == [1, 2, 4, 8, 16, UNCAPPED]
    down = [UNCAPPED]
    while slower(down[-1]) != down[-1]:
        down.append(slower(down[-1]))
    assert down == [UNCAPPED, 16, 8, 4, 2, 1]
    assert (faster(3), slower(3)) == (4, 2)  # a speed from a config between the rungs
    assert [speed_text(s) for s in (1, 16, UNCAPPED)] == ["1×", "16×", "uncapped"]


def test_a_step_waits_out_what_is_left_of_its_time() -> None:
    clock = FakeClock()
    pace = Pace(24, clock=clock, sleep=clock.sleep)
    assert pace.step_s(1) == pytest.approx(0.4018, abs=1e-4)  # 2.5 steps/s at 1×
    assert pace.step_s(8) == pytest.approx(STEP_1X / 8) and pace.step_s(UNCAPPED) == 0.0
    pace.begin()
    clock.now += 0.01  # the step itself took 10 ms
    assert pace.wait(4) == pytest.approx(STEP_1X / 4 - 0.01)
    pace.begin()
    clock.now += 1.0  # slower than its share: no wait
    assert pace.wait(4) == 0.0
    pace.begin()
    assert pace.wait(UNCAPPED) == 0.0
    assert clock.slept == [pytest.approx(STEP_1X / 4 - 0.01)]


def test_only_a_watched_run_keeps_the_pace() -> None:
    paced = load_settings(None, {"agent.speed": 8})
    assert watched_speed(paced, dashboard=True) == 8
    assert watched_speed(paced, dashboard=False) == UNCAPPED  # headless, piped: uncapped
    window = load_settings(None, {"agent.speed": 8, "env.headless": False})
    assert watched_speed(window, dashboard=False) == 8  # the emulator's window is watched
    assert watched_speed(Settings(), dashboard=True) == Settings().agent.speed == 4


# --- the loop -------------------------------------------------------------------------------------


def test_pacing_slows_acting_not_learning(tmp_path: Path) -> None:
    # The clock stands still: each step asks for its whole share, and the test reads the sleeps
    # asked for.
    s = settings(**{"run.runs_dir": str(tmp_path), "agent.train_after": 16})
    clock = FakeClock()
    paced = AgentLoop(s, RunDir.create(s, "paced"), speed=4)
    paced.pace = Pace(s.env.action_repeat, clock=clock, sleep=clock.sleep)
    result = paced.run(40)
    assert clock.slept == [pytest.approx(STEP_1X / 4)] * 40
    uncapped = AgentLoop(s, RunDir.create(s, "uncapped"))
    assert uncapped.status().speed == UNCAPPED  # a loop no one paces is uncapped
    alone = uncapped.run(40)
    assert result.updates == alone.updates > 0  # the same updates per env step at any speed


def test_several_envs_step_as_one_and_the_speed_changes_between_steps(tmp_path: Path) -> None:
    s = settings(**{"run.runs_dir": str(tmp_path), "agent.envs": 2, "agent.train_ratio": 0.0})
    clock = FakeClock()
    loop = AgentLoop(s, RunDir.create(s, "two"), speed=4)

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.slept) == 4:
            loop.send(SetSpeed(16))  # applied before the next step
        if len(clock.slept) == 6:
            loop.send(SetSpeed(UNCAPPED))

    loop.pace = Pace(s.env.action_repeat, clock=clock, sleep=sleep)
    events = loop.bus.subscribe(kinds=(StatusEvent,))
    assert loop.run(20).steps == 20  # 10 steps of both envs
    assert clock.slept == [pytest.approx(STEP_1X / 4)] * 4 + [pytest.approx(STEP_1X / 16)] * 2
    assert [e.speed for e in events.drain()][:3] == [4, 16, UNCAPPED]


def test_the_loop_reports_its_speed_and_takes_a_new_one(tmp_path: Path) -> None:
    s = settings(**{"run.runs_dir": str(tmp_path), "agent.train_ratio": 0.0})
    bus = EventBus()
    statuses = bus.subscribe(kinds=(StatusEvent,))
    loop = AgentLoop(s, RunDir.create(s, "speeds"), bus=bus, speed=2)
    assert loop.status().speed == 2
    clock = FakeClock()
    loop.pace = Pace(s.env.action_repeat, clock=clock, sleep=clock.sleep)
    loop.send(SetSpeed(8))
    loop.run(3)
    said = [e.message for e in statuses.drain()]
    assert "speed 8×" in said and clock.slept == [pytest.approx(STEP_1X / 8)] * 3


# --- the setting, old configs and the flag ------------------------------------------------------


def test_speed_from_file_env_and_configs_from_before_it(monkeypatch: pytest.MonkeyPatch) -> None:
    Path("config.toml").write_text("[agent]\nspeed = 16\n", encoding="utf-8")
    assert load_settings().agent.speed == 16
    monkeypatch.setenv("POKEDREAMER_AGENT__SPEED", "2")
    assert load_settings().agent.speed == 2
    monkeypatch.delenv("POKEDREAMER_AGENT__SPEED")
    # A config written before agent.speed: realtime = true was the Game Boy's own speed, false
    # uncapped; both still load (a run directory's saved config among them).
    Path("config.toml").write_text("[agent]\nrealtime = true\n", encoding="utf-8")
    assert load_settings().agent.speed == 1
    Path("config.toml").write_text("[agent]\nrealtime = false\n", encoding="utf-8")
    assert load_settings().agent.speed == UNCAPPED
    old = Path(__file__).parent / "data" / "run-before-format-version" / "config.toml"
    assert "realtime = false" in old.read_text() and load_settings(old).agent.speed == UNCAPPED
    Path("config.toml").write_text("[agent]\nspeed = 32\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"^config.toml: agent.speed: .*less than or equal to 16"):
        load_settings()
    saved = Settings().to_toml()
    assert "\nspeed = 4\n" in saved and "realtime" not in saved


@pytest.mark.parametrize(("flag", "speed"), [("8", 8), ("uncapped", UNCAPPED), ("1", 1)])
def test_the_speed_flag_sets_agent_speed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, flag: str, speed: int
) -> None:
    received: list[tuple[Settings, dict[str, Any]]] = []
    fake_play(monkeypatch, lambda settings, **kwargs: received.append((settings, kwargs)))
    Path("config.toml").write_text("[agent]\nspeed = 2\n", encoding="utf-8")
    # Piped here, so no dashboard: the emulator's window is what someone watches.
    code, _, err = call_main(capsys, "run", "--no-headless", "--speed", flag)
    assert code == 0, err
    [(got, kwargs)] = received
    assert got.agent.speed == speed and kwargs["dashboard"] is False


def test_play_takes_the_speed_flag(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[Settings] = []
    fake_play(monkeypatch, lambda settings, **_: received.append(settings))
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    code, _, err = call_main(capsys, "play", "--speed", "16")
    assert code == 0, err
    assert received[0].agent.speed == 16


def test_a_speed_no_one_would_watch_is_refused_in_one_line() -> None:
    result = cli("run", "--headless", "--steps", "3", "--speed", "4")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: --speed paces a run someone watches")
    assert result.stderr.count("\n") == 1
    bad = cli("run", "--speed", "3")
    assert bad.returncode == 2 and "--speed" in bad.stderr and "Traceback" not in bad.stderr


def test_an_old_config_with_realtime_still_runs() -> None:
    Path("old.toml").write_text(
        '[agent]\nrealtime = true\n[world_model]\npreset = "tiny"\n', encoding="utf-8"
    )
    result = cli("--config", "old.toml", "run", "--headless", "--no-train", "--steps", "5")
    assert result.returncode == 0, result.stderr
    assert "done: 5 steps" in result.stdout
    saved = next(Path("runs").iterdir()) / "config.toml"
    assert "\nspeed = 1\n" in saved.read_text()  # the run keeps it as the setting it now is
