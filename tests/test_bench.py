"""The bench package: its clock helpers (driven by a fake clock), the random-button game every
bench times, the verbs' JSON keys through the real command, and that nothing else imports it."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from clirun import cli

import pokedreamer
from pokedreamer.bench.env import headless_env, play, random_buttons
from pokedreamer.bench.timing import Alternated, alternate, repeat_for, timed
from pokedreamer.config import EnvSettings
from pokedreamer.env.state import GameState

PACKAGE = Path(pokedreamer.__file__).parent


class FakeClock:
    """A clock that reads ``now`` and moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 100.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now

    def work(self, seconds: float) -> Callable[[], None]:
        def run() -> None:
            self.now += seconds

        return run


def test_timed_counts_the_work_and_syncs_before_starting_and_stopping() -> None:
    clock = FakeClock()
    order: list[str] = []

    def work() -> None:
        order.append("work")
        clock.now += 2.5

    def sync() -> None:
        order.append(f"sync at {clock.reads} reads")
        clock.now += 1.0  # a device catching up before the clock starts is not counted

    assert timed(work, clock) == 2.5
    assert timed(work, clock, sync) == 3.5  # the sync before stopping waits for queued work
    assert order == ["work", "sync at 2 reads", "work", "sync at 3 reads"]


def test_repeat_for_runs_until_the_deadline_and_finishes_the_run_under_way() -> None:
    clock = FakeClock()
    assert repeat_for(1.0, clock.work(0.3), clock) == 4  # 0.3, 0.6, 0.9 < 1.0, then 1.2
    assert repeat_for(1.0, clock.work(0.25), clock) == 4
    assert repeat_for(0.0, clock.work(1.0), clock) == 0


def test_alternate_interleaves_and_the_ratio_is_the_median_of_pairs() -> None:
    order: list[str] = []
    firsts = iter([1.0, 2.0, 9.0])
    seconds = iter([2.0, 4.0, 3.0])

    def first() -> float:
        order.append("first")
        return next(firsts)

    def second() -> float:
        order.append("second")
        return next(seconds)

    times = alternate(3, first, second)
    assert order == ["first", "second"] * 3
    assert times == Alternated([1.0, 2.0, 9.0], [2.0, 4.0, 3.0])
    assert times.ratio() == 0.5  # pairs 0.5, 0.5, 3.0: the burst in round 3 does not count


def test_play_times_the_same_random_game_and_calls_back_after_every_step() -> None:
    env = headless_env(EnvSettings())
    try:
        actions = random_buttons(env, 30)
        assert actions == random_buttons(env, 30)
        assert all(isinstance(a, int) and 0 <= a < env.action_space.n for a in actions)
        assert len(set(actions)) > 1
        seen: list[tuple[int, GameState]] = []
        clock = FakeClock()
        assert play(env, actions, clock, lambda n, state: seen.append((n, state))) == 0.0
        assert clock.reads == 2  # started after the reset, stopped after the last step
        assert [n for n, _ in seen] == list(range(1, 31))
        assert seen[-1][1] == env.state
        first_game = [state for _, state in seen]
        seen.clear()
        play(env, actions, after_step=lambda n, state: seen.append((n, state)))
        assert [state for _, state in seen] == first_game  # reset with seed 0: one game
    finally:
        env.close()


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_nothing_outside_the_bench_imports_it_but_the_command() -> None:
    importers = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if "bench" not in path.relative_to(PACKAGE).parts[:1]
        and any(name.split(".")[:2] == ["pokedreamer", "bench"] for name in _imports(path))
    }
    assert importers <= {"cli.py"}


def _json(*args: str) -> dict:
    result = cli("bench", *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_bench_planner_json_keys() -> None:
    report = _json("planner", "--steps", "100", "--rounds", "1", "--latency-s", "0.01,0.02")
    assert list(report) == [
        "machine", "steps_per_round", "rounds", "llm_server", "llm_latency_s",
        "no_planner_steps_per_s", "llm_planner_steps_per_s", "with_over_without",
        "llm_plans_adopted", "mean_llm_latency_s", "llm_latencies_s",
        "heuristic_planner_steps_per_s", "llm_over_heuristic", "llm_requests",
    ]  # fmt: skip
    assert report["llm_server"] == "replaying" and report["llm_latencies_s"] == [0.01, 0.02]
    assert report["steps_per_round"] == 100 and report["rounds"] == 1
    assert report["with_over_without"] == pytest.approx(
        report["llm_planner_steps_per_s"] / report["no_planner_steps_per_s"], rel=1e-2
    )


def test_bench_planner_bad_latency_is_one_line() -> None:
    result = cli("bench", "planner", "--latency-s", "soon")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: --latency-s 'soon': give seconds, such as 40 or 38.5,41,44"
    ]


def test_bench_imagine_json_keys() -> None:
    report = _json(
        "imagine", "--preset", "tiny", "--batch", "4", "--horizon", "2", "--device", "cpu"
    )
    assert list(report) == [
        "machine", "device", "preset", "batch", "horizon", "imagined_transitions_per_s",
        "behavior_transitions_per_s", "behavior_ratio", "imagine_only_ratio", "env_steps_per_s",
        "ratio",
    ]  # fmt: skip
    assert report["preset"] == "tiny" and report["batch"] == 4 and report["horizon"] == 2
    assert report["imagined_transitions_per_s"] > 0 and report["env_steps_per_s"] > 0
    assert report["behavior_transitions_per_s"] > 0 and report["behavior_ratio"] > 0
    # Which side is faster is a measurement for the bench to report, not for a test to assert:
    # at batch 4 the fixed cost of each call rules, and a busy machine reorders the two.
    assert report["imagine_only_ratio"] > 0


def test_bench_train_times_pixels_and_tiles_in_one_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # A small batch: the bench's cost is not under test, and a loaded machine makes 16 x 64 slow.
    monkeypatch.setenv("POKEDREAMER_WORLD_MODEL__BATCH_SIZE", "4")
    monkeypatch.setenv("POKEDREAMER_WORLD_MODEL__BATCH_LENGTH", "16")
    report = _json("train", "--preset", "tiny", "--updates", "1", "--device", "cpu")
    assert list(report) == [
        "machine", "device", "preset", "batch", "processes", "length",
        "replayed_transitions_per_s", "tiles_transitions_per_s", "tiles_over_pixels",
        "env_steps_per_s", "ratio",
    ]  # fmt: skip
    assert report["preset"] == "tiny" and report["batch"] == 4 and report["length"] == 16
    assert report["replayed_transitions_per_s"] > 0 and report["tiles_transitions_per_s"] > 0
    ratio = report["tiles_transitions_per_s"] / report["replayed_transitions_per_s"]
    # One round: the median of one ratio is the ratio of the rates (as rounded).
    assert report["tiles_over_pixels"] == pytest.approx(ratio, rel=0.02)


def test_bench_loop_json_keys() -> None:
    report = _json("loop", "--preset", "tiny", "--envs", "1", "--steps", "10", "--train-steps", "0")
    assert list(report) == ["machine", "preset", "planner", "acting"]
    [acting] = report["acting"]
    assert list(acting) == [
        "envs", "steps", "steps_per_s", "env_ms_per_step", "model_ms_per_step",
        "overhead_ms_per_step", "hidden_ms_per_step", "wait_ms_per_step", "overhead_share",
        "model_share",
    ]  # fmt: skip
    assert acting["envs"] == 1 and acting["steps"] == 10
